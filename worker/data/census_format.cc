// Raw UCI census-income line splitting. See worker/data/census_format.h.
#include "worker/data/census_format.h"

#include "worker/data/feature_extractor.h"

namespace mtps {

std::vector<std::string> CensusColumnNames() {
  return std::vector<std::string>(kCensusColumnNames.begin(), kCensusColumnNames.end());
}

Status SplitCensusLine(std::string_view line, const std::string& path, int64_t line_number,
                       std::vector<std::string_view>* fields) {
  // Values are separated by ", "; no value contains a comma, so splitting at
  // ',' and stripping is exact and also accepts a missing space.
  fields->clear();
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    fields->push_back(TrimField(line.substr(start, comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (fields->size() != kCensusNumColumns) {
    return Status::InvalidArgument(path + ":" + std::to_string(line_number) + ": expected " +
                                   std::to_string(kCensusNumColumns) +
                                   " census-income values separated by ', ', found " +
                                   std::to_string(fields->size()));
  }
  return Status::OK();
}

}  // namespace mtps
