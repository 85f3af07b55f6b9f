// File helpers (see common/base/file_util.h).
#include "common/base/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mtps {
namespace {
Status Errno(const std::string& what, const std::string& path) {
  return Status::IoError(what + " " + path + ": " + std::strerror(errno));
}
}  // namespace

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = Errno("cannot write", tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = Errno("cannot fsync", tmp);
    ::close(fd);
    return s;
  }
  if (::close(fd) != 0) return Errno("cannot close", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot rename to", path);
  return Status::OK();
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
