// Crash-safe checkpoint files (see common/base/durable_file.h).
#include "common/base/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace mtps {
namespace {

Status Errno(const std::string& what, const std::string& path) {
  return Status::IoError(what + " " + path + ": " + std::strerror(errno));
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

uint32_t Crc32(uint32_t crc, const char* data, size_t size) {
  uLong c = crc;
  while (size > 0) {
    // zlib takes uInt lengths.
    const uInt n = static_cast<uInt>(std::min<size_t>(size, std::numeric_limits<uInt>::max()));
    c = ::crc32(c, reinterpret_cast<const Bytef*>(data), n);
    data += n;
    size -= n;
  }
  return static_cast<uint32_t>(c);
}

DurableFileWriter::DurableFileWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

StatusOr<std::unique_ptr<DurableFileWriter>> DurableFileWriter::Create(const std::string& path) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  return std::unique_ptr<DurableFileWriter>(new DurableFileWriter(path, fd));
}

DurableFileWriter::~DurableFileWriter() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink((path_ + ".tmp").c_str());
}

Status DurableFileWriter::Append(const char* data, size_t size) {
  if (fd_ < 0) return Status::Internal("append to " + path_ + " after its commit or a failure");
  crc_ = Crc32(crc_, data, size);
  size_ += size;
  while (size > 0) {
    ssize_t n = ::write(fd_, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path_ + ".tmp");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::OK();
}

Status DurableFileWriter::Commit() {
  const std::string tmp = path_ + ".tmp";
  if (fd_ < 0) return Status::Internal("commit of " + path_ + " twice");
  if (::fsync(fd_) != 0) return Errno("cannot fsync", tmp);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return Errno("cannot close", tmp);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return Errno("cannot rename to", path_);
  committed_ = true;
  return SyncDirectory(DirOf(path_));
}

Status WriteFileDurably(const std::string& path, const std::string& content, uint64_t* size,
                        uint32_t* crc) {
  MTPS_ASSIGN_OR_RETURN(auto writer, DurableFileWriter::Create(path));
  MTPS_RETURN_IF_ERROR(writer->Append(content.data(), content.size()));
  MTPS_RETURN_IF_ERROR(writer->Commit());
  if (size != nullptr) *size = writer->size();
  if (crc != nullptr) *crc = writer->crc32();
  return Status::OK();
}

Status SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open directory", dir);
  Status s;
  if (::fsync(fd) != 0) s = Errno("cannot fsync directory", dir);
  ::close(fd);
  return s;
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = Errno("cannot stat", path);
    ::close(fd);
    return s;
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, &out[done], out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = n < 0 ? Errno("cannot read", path)
                       : Status::IoError(path + ": file shrank while being read");
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return out;
}

StatusOr<std::string> ReadVerifiedFile(const std::string& path, uint64_t size, uint32_t crc) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::Corruption(
        path + ": listed in the manifest but cannot be read: " + std::strerror(errno));
  }
  if (static_cast<uint64_t>(st.st_size) != size) {
    return Status::Corruption(path + ": " + std::to_string(st.st_size) +
                              " bytes, the manifest says " + std::to_string(size) +
                              (static_cast<uint64_t>(st.st_size) < size ? " (truncated)" : ""));
  }
  MTPS_ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
  const uint32_t actual = Crc32(0, data.data(), data.size());
  if (actual != crc) {
    return Status::Corruption(path + ": checksum " + std::to_string(actual) +
                              ", the manifest says " + std::to_string(crc) + " (corrupt)");
  }
  return data;
}

}  // namespace mtps
