// Small file helpers: whole-file atomic writes and appends, with Status errors.
#ifndef MTPS_COMMON_BASE_FILE_UTIL_H_
#define MTPS_COMMON_BASE_FILE_UTIL_H_

#include <string>

#include "common/base/status.h"

namespace mtps {

// Writes `content` to `path` so readers see either the old file or the whole
// new one: WriteFileDurably (common/base/durable_file.h: path.tmp, fsync,
// rename, fsync of the directory).
Status WriteFileAtomically(const std::string& path, const std::string& content);

// Appends `line` plus a newline to `path` (created if missing).
Status AppendLine(const std::string& path, const std::string& line);

// JSON files: common/base/json_file.h.

}  // namespace mtps

#endif  // MTPS_COMMON_BASE_FILE_UTIL_H_
