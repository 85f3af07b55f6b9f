// Delimited text with a header line (DataConfig.format CSV): the header names
// the columns, every data line has one value per column. No quoting: a value
// cannot contain the delimiter (true of every bundled data set). Values and
// names are stripped of surrounding spaces; a UTF-8 byte order mark before
// the header is skipped.
#ifndef MTPS_WORKER_DATA_CSV_FORMAT_H_
#define MTPS_WORKER_DATA_CSV_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace mtps {

// Splits `line` at `delimiter` into stripped views into `line`.
void SplitDelimited(std::string_view line, char delimiter, std::vector<std::string_view>* fields);

// Parses the header (line 1 of `path`): names must be non-empty and unique.
StatusOr<std::vector<std::string>> ParseCsvHeader(std::string_view line, char delimiter,
                                                  const std::string& path);

// Splits a data line; a value count other than num_columns is
// InvalidArgument naming path:line_number and both counts.
Status SplitCsvLine(std::string_view line, char delimiter, size_t num_columns,
                    const std::string& path, int64_t line_number,
                    std::vector<std::string_view>* fields);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_CSV_FORMAT_H_
