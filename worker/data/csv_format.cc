// Header and line splitting of delimited text. See worker/data/csv_format.h.
#include "worker/data/csv_format.h"

#include <unordered_set>

#include "worker/data/feature_extractor.h"

namespace mtps {

void SplitDelimited(std::string_view line, char delimiter, std::vector<std::string_view>* fields) {
  fields->clear();
  size_t start = 0;
  while (true) {
    const size_t end = line.find(delimiter, start);
    fields->push_back(TrimField(line.substr(start, end - start)));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
}

StatusOr<std::vector<std::string>> ParseCsvHeader(std::string_view line, char delimiter,
                                                  const std::string& path) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (line.substr(0, kBom.size()) == kBom) line.remove_prefix(kBom.size());
  std::vector<std::string_view> views;
  SplitDelimited(line, delimiter, &views);
  std::vector<std::string> names;
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < views.size(); ++i) {
    if (views[i].empty()) {
      return Status::InvalidArgument(path + ":1: header column " + std::to_string(i + 1) +
                                     " has no name (delimiter '" + std::string(1, delimiter) +
                                     "')");
    }
    if (!seen.insert(views[i]).second) {
      return Status::InvalidArgument(path + ":1: header names column '" + std::string(views[i]) +
                                     "' twice");
    }
    names.emplace_back(views[i]);
  }
  return names;
}

Status SplitCsvLine(std::string_view line, char delimiter, size_t num_columns,
                    const std::string& path, int64_t line_number,
                    std::vector<std::string_view>* fields) {
  SplitDelimited(line, delimiter, fields);
  if (fields->size() != num_columns) {
    return Status::InvalidArgument(
        path + ":" + std::to_string(line_number) + ": expected " + std::to_string(num_columns) +
        " values (as in the header), found " + std::to_string(fields->size()));
  }
  return Status::OK();
}

}  // namespace mtps
