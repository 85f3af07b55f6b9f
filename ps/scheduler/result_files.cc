// The scheduler's output files, mirrored to a stream (see result_files.h).
#include "ps/scheduler/result_files.h"

#include <glog/logging.h>

#include "common/base/file_util.h"
#include "common/base/json_file.h"

namespace mtps {

Status ResultFiles::Write(const std::string& name, const std::string& content) const {
  Status s = WriteFileAtomically(PathOf(name), content);
  Mirror(name, "write", content);
  return s;
}

Status ResultFiles::Append(const std::string& name, const std::string& line) const {
  Status s = AppendLine(PathOf(name), line);
  Mirror(name, "append", line);
  return s;
}

void ResultFiles::Mirror(const std::string& name, const char* mode, const std::string& text) const {
  if (mirror_ == nullptr) return;
  Json record;
  record["file"] = name;
  record[mode] = text;
  const std::string line = JsonText(record, -1) + "\n";
  // A launcher that went away is not the job's failure: its loss is seen
  // (stdin EOF) and handled by mtps-node.
  if (std::fwrite(line.data(), 1, line.size(), mirror_) != line.size() ||
      std::fflush(mirror_) != 0) {
    LOG_EVERY_N(WARNING, 100) << "cannot report " << name << " on the result stream";
  }
}

}  // namespace mtps
