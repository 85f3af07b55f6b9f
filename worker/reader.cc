// ExampleReader over text files: picks the format (census or CSV) from the
// DataConfig, shards data lines by index, and fills Batches through the
// FeatureExtractor. See worker/reader.h.
#include "worker/reader.h"

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/census_reader.h"
#include "worker/csv_reader.h"
#include "worker/feature_extractor.h"

namespace mtps {
namespace {

Status CheckFormat(const config::DataConfig& config) {
  switch (config.format()) {
    case config::DataConfig::CENSUS_RAW:
      return Status::OK();
    case config::DataConfig::CSV:
      if (config.delimiter().size() != 1) {
        return Status::InvalidArgument("data.delimiter must be one character, got '" +
                                       config.delimiter() + "'");
      }
      return Status::OK();
    default:
      return Status::InvalidArgument("data.format must be CENSUS_RAW or CSV");
  }
}

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

class TextExampleReader : public ExampleReader {
 public:
  TextExampleReader(const config::DataConfig& config, std::unique_ptr<LineReader> lines,
                    FeatureExtractor extractor, int part, int num_parts)
      : census_(config.format() == config::DataConfig::CENSUS_RAW),
        delimiter_(census_ ? ',' : config.delimiter()[0]),
        part_(part),
        num_parts_(num_parts),
        lines_(std::move(lines)),
        extractor_(std::move(extractor)) {}

  const FeatureSchema& schema() const override { return extractor_.schema(); }

  Status Next(int max_examples, Batch* batch) override {
    if (max_examples <= 0) {
      return Status::InvalidArgument("ExampleReader::Next: max_examples must be > 0, got " +
                                     std::to_string(max_examples));
    }
    extractor_.ResetBatch(batch);
    while (batch->num_examples < max_examples && !eof_) {
      std::string_view line;
      MTPS_RETURN_IF_ERROR(lines_->ReadLine(&line, &eof_));
      if (eof_) break;
      // Blank lines (e.g. trailing ones) are not data lines.
      if (TrimField(line).empty()) continue;
      const int64_t index = data_index_++;
      if (index % num_parts_ != part_) continue;
      if (census_) {
        MTPS_RETURN_IF_ERROR(
            SplitCensusLine(line, lines_->path(), lines_->line_number(), &fields_));
      } else {
        MTPS_RETURN_IF_ERROR(SplitCsvLine(line, delimiter_, extractor_.num_columns(),
                                          lines_->path(), lines_->line_number(), &fields_));
      }
      MTPS_RETURN_IF_ERROR(extractor_.Append(fields_, lines_->line_number(), batch));
    }
    return Status::OK();
  }

  Status Rewind() override {
    MTPS_RETURN_IF_ERROR(lines_->Rewind());
    data_index_ = 0;
    eof_ = false;
    if (!census_) {
      std::string_view header;
      MTPS_RETURN_IF_ERROR(lines_->ReadLine(&header, &eof_));  // Skip it.
    }
    return Status::OK();
  }

 private:
  const bool census_;
  const char delimiter_;
  const int part_;
  const int num_parts_;
  const std::unique_ptr<LineReader> lines_;
  const FeatureExtractor extractor_;
  int64_t data_index_ = 0;  // 0-based index of the next data line
  bool eof_ = false;
  std::vector<std::string_view> fields_;  // scratch, views into the current line
};

}  // namespace

StatusOr<std::unique_ptr<ExampleReader>> ExampleReader::Open(const config::DataConfig& config,
                                                             const std::string& path, int part,
                                                             int num_parts) {
  if (num_parts < 1 || part < 0 || part >= num_parts) {
    return Status::InvalidArgument("ExampleReader::Open(" + path + "): part " +
                                   std::to_string(part) + " of " + std::to_string(num_parts) +
                                   " is out of range");
  }
  MTPS_RETURN_IF_ERROR(CheckFormat(config));
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<LineReader> lines, LineReader::Open(path));
  MTPS_ASSIGN_OR_RETURN(std::vector<std::string> columns, ColumnsOf(config, lines.get()));
  MTPS_ASSIGN_OR_RETURN(FeatureExtractor extractor,
                        FeatureExtractor::Create(config, columns, path));
  return std::unique_ptr<ExampleReader>(
      new TextExampleReader(config, std::move(lines), std::move(extractor), part, num_parts));
}

StatusOr<FeatureSchema> ReadSchema(const config::DataConfig& config, const std::string& path) {
  MTPS_RETURN_IF_ERROR(CheckFormat(config));
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
