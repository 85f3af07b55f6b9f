// ExampleReader: streams Batches of examples from the data files a
// DataConfig describes.
//
// Formats (DataConfig.format): the raw census-income lines, CSV with a header
// (worker/data/census_format.h, worker/data/csv_format.h), the raw Ali-CCP release
// joined with its common-features file (worker/data/aliccp_reader.h) and
// PaddleRec's field:id lines (worker/data/field_id_reader.h). Files are plain or
// gzip. Every error names the file and line.
//
// Which data lines a reader keeps (LineSelector): line i (0-based, counting
// data lines only: no header, no blank lines) belongs to part i % num_parts,
// so each worker reads its own share; with data.holdout_fraction > 0 a
// pseudo-random fraction of train_path's lines (IsHeldOut) is the test side
// and the rest the training side. Training readers may shuffle within a
// window of data.shuffle_buffer examples (NewShufflingReader).
//
// Malformed data lines: the readers skip them within a BadLineBudget
// (data.max_bad_lines, worker/data/bad_line_budget.h), which a worker shares
// between all its readers; only the reader that keeps a line counts it, once.
// Readers are not thread-safe; one reader per thread.
#ifndef MTPS_WORKER_DATA_EXAMPLE_READER_H_
#define MTPS_WORKER_DATA_EXAMPLE_READER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/data/bad_line_budget.h"
#include "worker/data/example.h"

namespace mtps {

// The side of the data a reader serves.
enum class DataSplit { kTrain, kTest };

// True if data line `line_index` of train_path is held out for testing when a
// fraction `fraction` (in [0, 1)) is held out with `seed`: a fixed hash of
// (seed, line_index) mapped to [0, 1) is below `fraction`. Pure function.
bool IsHeldOut(uint64_t line_index, double fraction, uint64_t seed);

// Decides which data lines (by 0-based data line index) a reader keeps:
// those of its part and, with a holdout, those of its side. A value type.
class LineSelector {
 public:
  // Every line.
  LineSelector() = default;
  // Lines i with i % num_parts == part and, if holdout_fraction > 0, with
  // IsHeldOut(i, holdout_fraction, holdout_seed) == (split == kTest).
  // Requires 0 <= part < num_parts.
  LineSelector(int part, int num_parts, double holdout_fraction = 0, uint64_t holdout_seed = 0,
               DataSplit split = DataSplit::kTrain);

  bool Keep(int64_t line_index) const {
    if (line_index % num_parts_ != part_) return false;
    if (!(holdout_fraction_ > 0)) return true;
    return IsHeldOut(static_cast<uint64_t>(line_index), holdout_fraction_, holdout_seed_) ==
           (split_ == DataSplit::kTest);
  }

  int part() const { return part_; }
  int num_parts() const { return num_parts_; }

 private:
  int part_ = 0;
  int num_parts_ = 1;
  double holdout_fraction_ = 0;
  uint64_t holdout_seed_ = 0;
  DataSplit split_ = DataSplit::kTrain;
};

class ExampleReader {
 public:
  virtual ~ExampleReader() = default;

  // The reader for one side of the data, for worker `part` of `num_parts`:
  // kTrain reads train_path (ALICCP_RAW: joined with train_common_path);
  // kTest reads test_path (with test_common_path), or, when
  // data.holdout_fraction > 0, the held-out lines of train_path (test_path
  // must then be empty). The training side skips the held-out lines and, when
  // data.shuffle_buffer > 0, is shuffled (seeded by shuffle_seed, part and
  // epoch; each Rewind starts the next epoch). The test side is never
  // shuffled. Config or file problems are InvalidArgument/NotFound/IoError
  // naming the field or file. Malformed lines are skipped within `budget`,
  // which the reader shares (null: a budget of its own, of
  // data.max_bad_lines).
  static StatusOr<std::unique_ptr<ExampleReader>> Open(
      const config::DataConfig& config, DataSplit split, int part, int num_parts,
      std::shared_ptr<BadLineBudget> budget = nullptr);

  // Deprecated (the trainer moves to the DataSplit form): reads every data
  // line of `path` of this part, in file order; no holdout, no shuffling.
  // For ALICCP_RAW, `path` must be train_path or test_path, which picks the
  // common-features file.
  static StatusOr<std::unique_ptr<ExampleReader>> Open(
      const config::DataConfig& config, const std::string& path, int part, int num_parts,
      std::shared_ptr<BadLineBudget> budget = nullptr);

  // The schema of every batch this reader returns.
  virtual const FeatureSchema& schema() const = 0;

  // Replaces *batch with up to max_examples examples; batch->num_examples is 0
  // at end of data. A malformed line is skipped within the budget, and
  // beyond it an InvalidArgument naming file:line, why and the budget; after
  // an error the reader should not be used again.
  virtual Status Next(int max_examples, Batch* batch) = 0;

  // Starts over from the first line (for the next epoch).
  virtual Status Rewind() = 0;
};

// The schema a data config yields. Opens `path` only for CSV (whose header
// names the columns); the other formats' schemas follow from the config.
StatusOr<FeatureSchema> ReadSchema(const config::DataConfig& config, const std::string& path);
// The same for config.train_path.
StatusOr<FeatureSchema> ReadSchema(const config::DataConfig& config);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_EXAMPLE_READER_H_
