// JSON output files, written with nlohmann::json (Debian's
// nlohmann-json3-dev): the one JSON writer of mtps.
//
// Json is nlohmann::ordered_json, so objects keep the order keys were set in.
// Numbers keep their C++ type: integers (int64_t, uint64_t) print exactly,
// doubles with the shortest text that reads back as the same double (always
// with a '.' or exponent, e.g. 1.0), and NaN or infinity print as null.
// Strings that are not valid UTF-8 are written with U+FFFD in place of the
// bad bytes rather than failing. Pure functions over the arguments; any
// thread.
#ifndef MTPS_COMMON_BASE_JSON_FILE_H_
#define MTPS_COMMON_BASE_JSON_FILE_H_

#include <string>

#include <nlohmann/json.hpp>

#include "common/base/file_util.h"
#include "common/base/status.h"

namespace mtps {

using Json = nlohmann::ordered_json;

// `value` as JSON text: one line without spaces for indent < 0, else one
// key or element per line indented by `indent` spaces per level.
inline std::string JsonText(const Json& value, int indent) {
  return value.dump(indent, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

// Writes `value` to `path` atomically (WriteFileAtomically), indented by two
// spaces, with a final newline.
inline Status WriteJsonFile(const std::string& path, const Json& value) {
  return WriteFileAtomically(path, JsonText(value, 2) + "\n");
}

// Appends `value` to `path` as one line (JSON Lines: a compact object and a
// newline; AppendLine).
inline Status AppendJsonLine(const std::string& path, const Json& value) {
  return AppendLine(path, JsonText(value, -1));
}

}  // namespace mtps

#endif  // MTPS_COMMON_BASE_JSON_FILE_H_
