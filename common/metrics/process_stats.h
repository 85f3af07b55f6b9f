// Figures of the calling process from /proc, for the metrics every node
// exports (mtps_process_resident_memory_bytes). Linux only; any thread.
#ifndef MTPS_COMMON_METRICS_PROCESS_STATS_H_
#define MTPS_COMMON_METRICS_PROCESS_STATS_H_

#include <cstdint>
#include <string>

#include "common/base/status.h"

namespace mtps {

// Resident set size in bytes: the second field of /proc/self/statm (pages)
// times the page size. IoError when the file cannot be read or parsed.
StatusOr<int64_t> ResidentMemoryBytes();

// The same from the text of a statm file (`path` names it in errors).
StatusOr<int64_t> ParseStatmResidentBytes(const std::string& text, const std::string& path,
                                          int64_t page_size);

}  // namespace mtps

#endif  // MTPS_COMMON_METRICS_PROCESS_STATS_H_
