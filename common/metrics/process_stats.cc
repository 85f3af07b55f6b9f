// Reading the process's figures from /proc (see common/metrics/process_stats.h).
#include "common/metrics/process_stats.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace mtps {

StatusOr<int64_t> ParseStatmResidentBytes(const std::string& text, const std::string& path,
                                          int64_t page_size) {
  std::istringstream in(text);
  int64_t size_pages = -1, resident_pages = -1;
  if (!(in >> size_pages >> resident_pages) || resident_pages < 0 || page_size <= 0) {
    return Status::IoError(path + ": expected 'size resident ...' in pages, got '" +
                           text.substr(0, 80) + "'");
  }
  return resident_pages * page_size;
}

StatusOr<int64_t> ResidentMemoryBytes() {
  const char* path = "/proc/self/statm";
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) {
    return Status::IoError(std::string("cannot open ") + path + ": " + std::strerror(errno));
  }
  char buffer[256];
  const size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, f);
  std::fclose(f);
  return ParseStatmResidentBytes(std::string(buffer, n), path, sysconf(_SC_PAGESIZE));
}

}  // namespace mtps
