// TextExampleReader: the CENSUS_RAW and CSV readers. See
// worker/data/text_reader.h.
#include "worker/data/text_reader.h"

#include <string_view>
#include <utility>
#include <vector>

#include "worker/data/census_format.h"
#include "worker/data/csv_format.h"
#include "worker/data/feature_extractor.h"
#include "worker/data/line_reader.h"

namespace mtps {
namespace {

// Reads the CSV header from the first line of `lines`.
StatusOr<std::vector<std::string>> ReadCsvHeader(const config::DataConfig& config,
                                                 LineReader* lines) {
  std::string_view line;
  bool eof = false;
  MTPS_RETURN_IF_ERROR(lines->ReadLine(&line, &eof));
  if (eof) return Status::InvalidArgument(lines->path() + ": empty file, expected a header line");
  return ParseCsvHeader(line, config.delimiter()[0], lines->path());
}

// The column names of the file behind `lines` (nullptr for census, whose
// columns are fixed).
StatusOr<std::vector<std::string>> ColumnsOf(const config::DataConfig& config, LineReader* lines) {
  if (config.format() == config::DataConfig::CENSUS_RAW) return CensusColumnNames();
  return ReadCsvHeader(config, lines);
}

// A census or CSV file's reader: splits each kept data line into its
// column values and appends the example the FeatureExtractor makes of them.
// Owns its LineReader; not thread-safe.
class TextExampleReader : public LineExampleReader {
 public:
  TextExampleReader(const config::DataConfig& config, std::unique_ptr<LineReader> lines,
                    FeatureExtractor extractor, const LineSelector& selector,
                    std::shared_ptr<BadLineBudget> budget)
      : LineExampleReader(std::move(lines), selector, std::move(budget)),
        census_(config.format() == config::DataConfig::CENSUS_RAW),
        delimiter_(census_ ? ',' : config.delimiter()[0]),
        extractor_(std::move(extractor)) {}

  const FeatureSchema& schema() const override { return extractor_.schema(); }

  Status Rewind() override {
    MTPS_RETURN_IF_ERROR(LineExampleReader::Rewind());
    if (census_) return Status::OK();
    std::string_view header;
    bool eof = false;                        // An empty file ends the next Next.
    return lines().ReadLine(&header, &eof);  // Skip it.
  }

 private:
  void ResetBatch(Batch* batch) const override { extractor_.ResetBatch(batch); }

  Status ReadDataLine(std::string_view line, bool keep, Batch* batch) override {
    if (!keep) return Status::OK();  // not parsed: the reader that keeps it checks it
    const Status parsed = ParseLine(line, batch);
    return parsed.ok() ? parsed : SkipBadLine(keep, parsed);
  }

  // Appends the example of one kept data line; every error is the line's.
  Status ParseLine(std::string_view line, Batch* batch) {
    const LineReader& lines = this->lines();
    if (census_) {
      MTPS_RETURN_IF_ERROR(SplitCensusLine(line, lines.path(), lines.line_number(), &fields_));
    } else {
      MTPS_RETURN_IF_ERROR(SplitCsvLine(line, delimiter_, extractor_.num_columns(), lines.path(),
                                        lines.line_number(), &fields_));
    }
    return extractor_.Append(fields_, lines.line_number(), batch);
  }

  const bool census_;
  const char delimiter_;
  const FeatureExtractor extractor_;
  std::vector<std::string_view> fields_;  // scratch, views into the current line
};

}  // namespace

StatusOr<std::unique_ptr<ExampleReader>> OpenTextReader(const config::DataConfig& config,
                                                        const std::string& path,
                                                        const LineSelector& selector,
                                                        std::shared_ptr<BadLineBudget> budget) {
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<LineReader> lines, LineReader::Open(path));
  MTPS_ASSIGN_OR_RETURN(std::vector<std::string> columns, ColumnsOf(config, lines.get()));
  MTPS_ASSIGN_OR_RETURN(FeatureExtractor extractor,
                        FeatureExtractor::Create(config, columns, path));
  return std::unique_ptr<ExampleReader>(new TextExampleReader(
      config, std::move(lines), std::move(extractor), selector, std::move(budget)));
}

StatusOr<FeatureSchema> ReadTextSchema(const config::DataConfig& config, const std::string& path) {
  std::unique_ptr<LineReader> lines;
  if (config.format() == config::DataConfig::CSV) {
    MTPS_ASSIGN_OR_RETURN(lines, LineReader::Open(path));
  }
  MTPS_ASSIGN_OR_RETURN(std::vector<std::string> columns, ColumnsOf(config, lines.get()));
  MTPS_ASSIGN_OR_RETURN(FeatureExtractor extractor,
                        FeatureExtractor::Create(config, columns, path));
  return extractor.schema();
}

}  // namespace mtps
