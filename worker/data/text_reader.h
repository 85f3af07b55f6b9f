// The readers of the one-line-per-example text formats, CENSUS_RAW and CSV:
// each line splits into column values (worker/data/census_format.h,
// worker/data/csv_format.h) that a FeatureExtractor turns into an example.
// ExampleReader::Open picks them by data.format.
#ifndef MTPS_WORKER_DATA_TEXT_READER_H_
#define MTPS_WORKER_DATA_TEXT_READER_H_

#include <memory>
#include <string>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/data/bad_line_budget.h"
#include "worker/data/example.h"
#include "worker/data/example_reader.h"

namespace mtps {

// Opens the census or CSV reader of the lines of `path` that `selector`
// keeps (a CSV file's first line is its header). Errors name the file, line
// and column. A malformed data line (wrong number of values, a bad number or
// label) is skipped within `budget` (not null); a bad header never is.
StatusOr<std::unique_ptr<ExampleReader>> OpenTextReader(const config::DataConfig& config,
                                                        const std::string& path,
                                                        const LineSelector& selector,
                                                        std::shared_ptr<BadLineBudget> budget);

// The schema of a census or CSV file: census columns are fixed; a CSV file's
// header is read from `path`.
StatusOr<FeatureSchema> ReadTextSchema(const config::DataConfig& config, const std::string& path);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_TEXT_READER_H_
