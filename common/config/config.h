// Loading, overriding, validating and printing job configurations
// (proto/config.proto, Protobuf text format, configs/*.pbtxt).
//
// Every function here is a pure function of its arguments (no globals), so it
// is safe to call from any thread. Errors are InvalidArgument (or NotFound /
// IoError for the file itself) whose message names the file, line and column
// or the dotted field path, and why.
#ifndef MTPS_COMMON_CONFIG_CONFIG_H_
#define MTPS_COMMON_CONFIG_CONFIG_H_

#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"

namespace mtps {

// Most shard threads a server may run (server.shard_threads).
constexpr int kMaxShardThreads = 64;

// Loads a text-format Config. Unknown or ill-typed fields are InvalidArgument
// naming "file:line:column" and the field. Relative data paths (train_path,
// test_path, train_common_path, test_common_path) are resolved against the
// config file's directory. Then applies each override (see ApplyOverride) in
// order and finally ValidateConfig.
StatusOr<config::Config> LoadConfig(const std::string& path,
                                    const std::vector<std::string>& overrides);

// Applies one "a.b.c=value" assignment: a dotted path of field names from
// Config. Scalars parse by type, enums by value name, bools as true/false/1/0;
// a repeated scalar field takes a comma-separated list that replaces the list
// (an empty value clears it); a singular message field takes a text-format
// body that replaces the message ("model.esmm=tower_hidden: [8]"). Message
// fields on the way are created; setting a oneof member clears its siblings.
// Repeated message fields cannot be overridden. Errors name the path and why;
// on error *config is unchanged.
Status ApplyOverride(const std::string& assignment, config::Config* config);

// Semantic checks that the schema cannot express (required fields, positive
// sizes and rates, one-character delimiters, consistent column roles). Does
// not look at the data files; the readers do. Errors name the field.
Status ValidateConfig(const config::Config& config);

// The config in text format (as written to RUN_DIR/config.pbtxt); LoadConfig
// of the result yields an equal Config.
std::string ConfigToText(const config::Config& config);

}  // namespace mtps

#endif  // MTPS_COMMON_CONFIG_CONFIG_H_
