// Crash-safe files for checkpoints: written under a temporary name, fsynced,
// renamed into place and the directory fsynced, so after a crash a reader
// finds either nothing or the whole file; each file's size and zlib crc32
// are computed while it is written and checked when it is read back.
#ifndef MTPS_COMMON_BASE_DURABLE_FILE_H_
#define MTPS_COMMON_BASE_DURABLE_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/base/status.h"

namespace mtps {

// zlib's crc32 of data[0..size), continuing from `crc` (0 to start).
uint32_t Crc32(uint32_t crc, const char* data, size_t size);

// One file being written durably (see the file comment). Not thread-safe.
// Destroying it before Commit removes the temporary file.
class DurableFileWriter {
 public:
  // Creates PATH.tmp (replacing a leftover one).
  static StatusOr<std::unique_ptr<DurableFileWriter>> Create(const std::string& path);
  ~DurableFileWriter();
  DurableFileWriter(const DurableFileWriter&) = delete;
  DurableFileWriter& operator=(const DurableFileWriter&) = delete;

  Status Append(const char* data, size_t size);
  // fsync, close, rename to PATH, fsync PATH's directory.
  Status Commit();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  uint32_t crc32() const { return crc_; }

 private:
  DurableFileWriter(std::string path, int fd);

  std::string path_;
  int fd_;
  uint64_t size_ = 0;
  uint32_t crc_ = 0;
  bool committed_ = false;
};

// Writes `content` to `path` durably; returns its size and crc32.
Status WriteFileDurably(const std::string& path, const std::string& content,
                        uint64_t* size = nullptr, uint32_t* crc = nullptr);

// fsyncs a directory, so that renames and unlinks in it survive a crash.
Status SyncDirectory(const std::string& dir);

// The whole content of `path`.
StatusOr<std::string> ReadWholeFile(const std::string& path);

// The whole content of `path` when it has `size` bytes and crc32 `crc`;
// Corruption naming the file and what differs otherwise ("ckpt-3/server-0.dense:
// 812 bytes, the manifest says 1024 (truncated?)").
StatusOr<std::string> ReadVerifiedFile(const std::string& path, uint64_t size, uint32_t crc);

}  // namespace mtps

#endif  // MTPS_COMMON_BASE_DURABLE_FILE_H_
