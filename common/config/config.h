// Loading, overriding, validating and printing job configurations
// (proto/config.proto, Protobuf text format, configs/*.pbtxt).
//
// The checks here are those of the sections nobody else owns (train, cluster,
// eval). The rules of the other sections live with the code that relies on
// them and reach LoadConfig as ConfigChecks (common/config/config_check.h):
// the process that loads a job's config passes every owner's check
// (launcher/node_main.cc).
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
#include "common/config/config_check.h"
#include "proto/config.pb.h"

namespace mtps {

// Loads a text-format Config. Unknown or ill-typed fields are InvalidArgument
// "file:line:column: field 'a.b': why" (the field when it can be told).
// Relative data paths (train_path, test_path, train_common_path,
// test_common_path) are resolved against the config file's directory. Then
// applies each override (see ApplyOverride) in order and finally
// ValidateConfig(config, checks): a broken rule is InvalidArgument
// "<path>: invalid config: <field>: <why>; <field>: <why>...".
StatusOr<config::Config> LoadConfig(const std::string& path,
                                    const std::vector<std::string>& overrides,
                                    const std::vector<ConfigCheck>& checks = {});

// Applies one "a.b.c=value" assignment: a dotted path of field names from
// Config. Scalars parse by type, enums by value name, bools as true/false/1/0;
// a repeated scalar field takes a comma-separated list that replaces the list
// (an empty value clears it); a singular message field takes a text-format
// body that replaces the message ("model.esmm=tower_hidden: [8]"). Message
// fields on the way are created; setting a oneof member clears its siblings.
// Repeated message fields cannot be overridden. Errors name the path and why;
// on error *config is unchanged.
Status ApplyOverride(const std::string& assignment, config::Config* config);

// Semantic checks that the schema cannot express: this library's own
// (train: positive sizes and intervals, staleness and throttle >= 0; cluster:
// positive timeouts, heartbeat timeout above the interval; eval.auc_bins in
// range), then every check of `checks` in order. Every problem found is
// reported: InvalidArgument "invalid config: <field>: <why>; ...".
Status ValidateConfig(const config::Config& config, const std::vector<ConfigCheck>& checks = {});

// The config in text format (as written to RUN_DIR/config.pbtxt); LoadConfig
// of the result yields an equal Config.
std::string ConfigToText(const config::Config& config);

// The name of the set member of the model's `kind` oneof ("esmm", "mmoe",
// "shared_bottom", "ple", "single_task", ...), read from the schema by
// reflection, so a new kind needs no change here; "" when none is set. The
// model registry (worker/models/model_registry.h) is keyed by it and
// summary.json's "model" is it.
std::string ModelKindName(const config::ModelConfig& model);

}  // namespace mtps

#endif  // MTPS_COMMON_CONFIG_CONFIG_H_
