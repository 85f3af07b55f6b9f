// ExampleReader: streams Batches from a data file described by a DataConfig.
//
// Opens the raw census-income format or a CSV with a header (by
// DataConfig.format), reads plain or gzip files, and keeps only the data
// lines whose 0-based index i satisfies i % num_parts == part, so each worker
// reads its own share. Every error names the file and line.
// Not thread-safe; one reader per thread.
#ifndef MTPS_WORKER_READER_H_
#define MTPS_WORKER_READER_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "proto/config.pb.h"
#include "worker/example.h"

namespace mtps {

class ExampleReader {
 public:
  virtual ~ExampleReader() = default;

  // Opens `path` (ignores config.train_path/test_path).
  static StatusOr<std::unique_ptr<ExampleReader>> Open(const config::DataConfig& config,
                                                       const std::string& path, int part,
                                                       int num_parts);

  // The schema of every batch this reader returns.
  virtual const FeatureSchema& schema() const = 0;

  // Replaces *batch with up to max_examples examples; batch->num_examples is 0
  // at end of file. A malformed line is an InvalidArgument naming file:line.
  virtual Status Next(int max_examples, Batch* batch) = 0;

  // Starts over from the first line (for the next epoch).
  virtual Status Rewind() = 0;
};

// The schema a data config yields, without opening the file for a format
// whose columns are fixed (census); for CSV the header is needed, so this
// opens the file to read it.
StatusOr<FeatureSchema> ReadSchema(const config::DataConfig& config, const std::string& path);

}  // namespace mtps

#endif  // MTPS_WORKER_READER_H_
