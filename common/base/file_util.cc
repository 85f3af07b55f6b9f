// File helpers (see common/base/file_util.h).
#include "common/base/file_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/base/durable_file.h"

namespace mtps {
namespace {
Status Errno(const std::string& what, const std::string& path) {
  return Status::IoError(what + " " + path + ": " + std::strerror(errno));
}
}  // namespace

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  return WriteFileDurably(path, content);
}

Status AppendLine(const std::string& path, const std::string& line) {
  FILE* f = std::fopen(path.c_str(), "ae");
  if (f == nullptr) return Errno("cannot open", path);
  bool ok = std::fputs(line.c_str(), f) >= 0 && std::fputc('\n', f) != EOF;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return Errno("cannot append to", path);
  return Status::OK();
}

}  // namespace mtps
