// ExampleReader: picks the format from the DataConfig and the files from
// the split, selects lines (part, holdout side), and wraps training readers
// in the shuffling reader. The census and CSV readers live here (they fill
// Batches through the FeatureExtractor); the field-id formats in
// worker/aliccp_reader.cc and worker/field_id_reader.cc. See worker/reader.h.
#include "worker/reader.h"

#include <cmath>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "worker/aliccp_reader.h"
#include "worker/census_reader.h"
#include "worker/csv_reader.h"
#include "worker/feature_extractor.h"
#include "worker/field_id_reader.h"

namespace mtps {

bool IsHeldOut(uint64_t line_index, double fraction, uint64_t seed) {
  // Top 53 bits of a mix of (seed, index) as a uniform double in [0, 1).
  const uint64_t h = Mix64(Mix64(seed) ^ line_index);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < fraction;
}

LineSelector::LineSelector(int part, int num_parts, double holdout_fraction, uint64_t holdout_seed,
                           DataSplit split)
    : part_(part),
      num_parts_(num_parts),
      holdout_fraction_(holdout_fraction),
      holdout_seed_(holdout_seed),
      split_(split) {
  CHECK(num_parts >= 1 && part >= 0 && part < num_parts) << part << " of " << num_parts;
}

namespace {

Status CheckFormat(const config::DataConfig& config) {
  switch (config.format()) {
    case config::DataConfig::CENSUS_RAW:
    case config::DataConfig::ALICCP_RAW:
    case config::DataConfig::FIELD_ID:
      return Status::OK();
    case config::DataConfig::CSV:
      if (config.delimiter().size() != 1) {
        return Status::InvalidArgument("data.delimiter must be one character, got '" +
                                       config.delimiter() + "'");
      }
      return Status::OK();
    default:
      return Status::InvalidArgument("data.format must be CENSUS_RAW, CSV, ALICCP_RAW or FIELD_ID");
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

class TextExampleReader : public LineExampleReader {
 public:
  TextExampleReader(const config::DataConfig& config, std::unique_ptr<LineReader> lines,
                    FeatureExtractor extractor, const LineSelector& selector)
      : LineExampleReader(std::move(lines), selector),
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
    if (!keep) return Status::OK();
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

// Opens the census or CSV reader of `path`.
StatusOr<std::unique_ptr<ExampleReader>> OpenTextReader(const config::DataConfig& config,
                                                        const std::string& path,
                                                        const LineSelector& selector) {
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<LineReader> lines, LineReader::Open(path));
  MTPS_ASSIGN_OR_RETURN(std::vector<std::string> columns, ColumnsOf(config, lines.get()));
  MTPS_ASSIGN_OR_RETURN(FeatureExtractor extractor,
                        FeatureExtractor::Create(config, columns, path));
  return std::unique_ptr<ExampleReader>(
      new TextExampleReader(config, std::move(lines), std::move(extractor), selector));
}

// Opens the reader of the format; `common_path` is for ALICCP_RAW only.
StatusOr<std::unique_ptr<ExampleReader>> OpenFormat(const config::DataConfig& config,
                                                    const std::string& path,
                                                    const std::string& common_path,
                                                    const LineSelector& selector) {
  MTPS_RETURN_IF_ERROR(CheckFormat(config));
  switch (config.format()) {
    case config::DataConfig::ALICCP_RAW:
      return OpenAliccpReader(config, path, common_path, selector);
    case config::DataConfig::FIELD_ID:
      return OpenFieldIdReader(config, path, selector);
    default:
      return OpenTextReader(config, path, selector);
  }
}

Status CheckPart(const std::string& what, int part, int num_parts) {
  if (num_parts < 1 || part < 0 || part >= num_parts) {
    return Status::InvalidArgument("ExampleReader::Open(" + what + "): part " +
                                   std::to_string(part) + " of " + std::to_string(num_parts) +
                                   " is out of range");
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Shuffling
// ---------------------------------------------------------------------------

class ShufflingReader : public ExampleReader {
 public:
  ShufflingReader(std::unique_ptr<ExampleReader> inner, int window, uint64_t seed)
      : inner_(std::move(inner)), window_(window), seed_(seed) {
    CHECK_GE(window, 1);
    StartEpoch();
  }

  const FeatureSchema& schema() const override { return inner_->schema(); }

  Status Next(int max_examples, Batch* batch) override {
    MTPS_RETURN_IF_ERROR(CheckMaxExamples(max_examples));
    const FeatureSchema& s = schema();
    batch->Clear();
    batch->num_slots = static_cast<int>(s.slots.size());
    batch->num_dense = static_cast<int>(s.dense_names.size());
    batch->num_labels = static_cast<int>(s.label_names.size());
    while (batch->num_examples < max_examples) {
      while (size_ < static_cast<size_t>(window_) && !inner_done_) {
        MTPS_RETURN_IF_ERROR(PullOne());
      }
      if (size_ == 0) break;
      const size_t j = Pick(NextRandom(), size_);
      AppendRow(rows_[j], batch);
      std::swap(rows_[j], rows_[size_ - 1]);
      --size_;
      PrefetchNextPicks();
    }
    return Status::OK();
  }

  Status Rewind() override {
    MTPS_RETURN_IF_ERROR(inner_->Rewind());
    ++epoch_;
    StartEpoch();
    return Status::OK();
  }

 private:
  void StartEpoch() {
    random_state_ = Mix64(seed_ ^ Mix64(epoch_));
    size_ = 0;
    inner_done_ = false;
  }

  uint64_t NextRandom() { return Mix64(random_state_++); }

  // A uniform pick among n rows (Lemire's multiply-shift).
  static size_t Pick(uint64_t random, size_t n) {
    return static_cast<size_t>((static_cast<unsigned __int128>(random) * n) >> 64);
  }

  // (gcc 12 drops __builtin_prefetch here, at -O1 and above; the asm stays.)
  static void PrefetchBytes(const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p);
    for (size_t i = 0; i < bytes; i += 64) {
#if defined(__x86_64__)
      asm volatile("prefetcht0 %0" : : "m"(c[i]));
#else
      __builtin_prefetch(c + i);
#endif
    }
  }

  // The window (~10 MB for Ali-CCP rows) does not fit in cache and picks are
  // random, so copying a picked row used to wait on DRAM for its Batch and then
  // for its arrays. The picks to come are known (the random sequence, and the
  // window is refilled to window_ before each pick until the input ends), so
  // fetch the Batch of the pick after next and the arrays of the next one
  // ahead of time. Only a hint: a wrong guess (the input ending) costs a
  // wasted prefetch, never a different order.
  void PrefetchNextPicks() const {
    const size_t n = inner_done_ ? size_ : static_cast<size_t>(window_);
    if (n == 0) return;
    const size_t next = Pick(Mix64(random_state_), n);
    if (next < rows_.size()) {
      const Batch& row = rows_[next];  // prefetched one pick ago
      PrefetchBytes(row.keys.data(), row.keys.size() * sizeof(uint64_t));
      PrefetchBytes(row.weights.data(), row.weights.size() * sizeof(float));
      PrefetchBytes(row.offsets.data(), row.offsets.size() * sizeof(uint32_t));
      PrefetchBytes(row.dense.data(), row.dense.size() * sizeof(float));
      PrefetchBytes(row.labels.data(), row.labels.size() * sizeof(float));
    }
    const size_t after = Pick(Mix64(random_state_ + 1), n);
    if (after < rows_.size()) PrefetchBytes(&rows_[after], sizeof(Batch));
  }

  // Reads the next input example into rows_[size_] (a batch of one: the
  // inner reader parses straight into the window, so an example is copied
  // once, on its way out), or sets inner_done_.
  Status PullOne() {
    if (size_ == rows_.size()) rows_.emplace_back();
    Batch& row = rows_[size_];
    MTPS_RETURN_IF_ERROR(inner_->Next(1, &row));
    if (row.num_examples == 0) {
      inner_done_ = true;
      return Status::OK();
    }
    ++size_;
    return Status::OK();
  }

  // Appends the one example of `row` to *batch.
  static void AppendRow(const Batch& row, Batch* batch) {
    const uint32_t base = static_cast<uint32_t>(batch->keys.size());
    batch->keys.insert(batch->keys.end(), row.keys.begin(), row.keys.end());
    batch->weights.insert(batch->weights.end(), row.weights.begin(), row.weights.end());
    const size_t at = batch->offsets.size();
    batch->offsets.resize(at + row.num_slots);
    uint32_t* const offsets = batch->offsets.data() + at;
    for (int s = 0; s < row.num_slots; ++s) offsets[s] = base + row.offsets[s + 1];
    batch->dense.insert(batch->dense.end(), row.dense.begin(), row.dense.end());
    batch->labels.insert(batch->labels.end(), row.labels.begin(), row.labels.end());
    ++batch->num_examples;
  }

  const std::unique_ptr<ExampleReader> inner_;
  const int window_;
  const uint64_t seed_;
  uint64_t epoch_ = 0;
  uint64_t random_state_ = 0;
  // rows_[0, size_) is the window, one example per Batch; the rest keep
  // their capacity.
  std::vector<Batch> rows_;
  size_t size_ = 0;
  bool inner_done_ = false;
};

}  // namespace

std::unique_ptr<ExampleReader> NewShufflingReader(std::unique_ptr<ExampleReader> inner, int window,
                                                  uint64_t seed) {
  return std::make_unique<ShufflingReader>(std::move(inner), window, seed);
}

StatusOr<std::unique_ptr<ExampleReader>> ExampleReader::Open(const config::DataConfig& config,
                                                             DataSplit split, int part,
                                                             int num_parts) {
  const char* side = split == DataSplit::kTrain ? "train" : "test";
  MTPS_RETURN_IF_ERROR(CheckPart(side, part, num_parts));
  const double holdout = config.holdout_fraction();
  if (!(holdout >= 0 && holdout < 1)) {
    return Status::InvalidArgument("data.holdout_fraction must be in [0, 1), got " +
                                   std::to_string(holdout));
  }
  if (config.shuffle_buffer() < 0) {
    return Status::InvalidArgument("data.shuffle_buffer must be >= 0, got " +
                                   std::to_string(config.shuffle_buffer()));
  }
  std::string path = config.train_path();
  std::string common_path = config.train_common_path();
  if (split == DataSplit::kTest && holdout > 0) {
    if (!config.test_path().empty() || !config.test_common_path().empty()) {
      return Status::InvalidArgument(
          "data.test_path / data.test_common_path must be empty when data.holdout_fraction > 0 "
          "(the test side is the held-out part of data.train_path)");
    }
  } else if (split == DataSplit::kTest) {
    path = config.test_path();
    common_path = config.test_common_path();
  }
  if (path.empty()) {
    return Status::InvalidArgument(std::string("data.") + side + "_path is not set");
  }
  const LineSelector selector(part, num_parts, holdout, config.holdout_seed(), split);
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<ExampleReader> reader,
                        OpenFormat(config, path, common_path, selector));
  if (split == DataSplit::kTrain && config.shuffle_buffer() > 0) {
    // Each worker shuffles its share differently; StartEpoch mixes in the epoch.
    const uint64_t seed = Mix64(Mix64(config.shuffle_seed()) ^ static_cast<uint64_t>(part));
    reader = NewShufflingReader(std::move(reader), config.shuffle_buffer(), seed);
  }
  return reader;
}

StatusOr<std::unique_ptr<ExampleReader>> ExampleReader::Open(const config::DataConfig& config,
                                                             const std::string& path, int part,
                                                             int num_parts) {
  MTPS_RETURN_IF_ERROR(CheckPart(path, part, num_parts));
  std::string common_path;
  if (config.format() == config::DataConfig::ALICCP_RAW) {
    if (path == config.train_path()) {
      common_path = config.train_common_path();
    } else if (path == config.test_path()) {
      common_path = config.test_common_path();
    } else {
      return Status::InvalidArgument(
          "ExampleReader::Open(" + path +
          "): ALICCP_RAW needs its common_features file, known only for data.train_path and "
          "data.test_path");
    }
  }
  return OpenFormat(config, path, common_path, LineSelector(part, num_parts));
}

StatusOr<FeatureSchema> ReadSchema(const config::DataConfig& config, const std::string& path) {
  MTPS_RETURN_IF_ERROR(CheckFormat(config));
  if (config.format() == config::DataConfig::ALICCP_RAW) {
    MTPS_ASSIGN_OR_RETURN(FieldSlots slots,
                          FieldSlots::Create(config, AliccpLabelColumns(), "ALICCP_RAW"));
    return slots.schema();
  }
  if (config.format() == config::DataConfig::FIELD_ID) {
    MTPS_ASSIGN_OR_RETURN(FieldSlots slots,
                          FieldSlots::Create(config, FieldIdLabelColumns(), "FIELD_ID"));
    return slots.schema();
  }
  std::unique_ptr<LineReader> lines;
  if (config.format() == config::DataConfig::CSV) {
    MTPS_ASSIGN_OR_RETURN(lines, LineReader::Open(path));
  }
  MTPS_ASSIGN_OR_RETURN(std::vector<std::string> columns, ColumnsOf(config, lines.get()));
  MTPS_ASSIGN_OR_RETURN(FeatureExtractor extractor,
                        FeatureExtractor::Create(config, columns, path));
  return extractor.schema();
}

StatusOr<FeatureSchema> ReadSchema(const config::DataConfig& config) {
  return ReadSchema(config, config.train_path());
}

}  // namespace mtps
