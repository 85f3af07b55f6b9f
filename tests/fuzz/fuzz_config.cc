// Fuzzes the config loader (common/config/config.h): LoadConfig of a
// Protobuf text config with `--set` overrides, run with every check
// mtps-node passes that these libraries own (data, tables, server, network;
// not the model kinds': their library is the Eigen models), and
// ApplyOverride alone.
//
// Input: the config text, then optionally kFileSeparator
// (tests/fuzz/fuzz_support.h) and the overrides, one "a.b.c=value" per line.
//
// Checked beyond "no crash": an error says why (a message); a config that
// loads prints (ConfigToText) to text that loads again to the same config
// (the run dir's config.pbtxt is read back this way on --resume); an
// override that fails leaves the config unchanged, as documented; any config
// that parses, checked or not, goes through the server's own validation of
// the scheduler's config (ParameterServer::Create) without a crash or
// undefined behaviour.
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_config -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_config tests/fuzz/corpus/fuzz_config
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_support.h"

#include "common/config/config.h"
#include "common/config/config_check.h"
#include "common/net/fault_transport.h"
#include "ps/server/server_config.h"
#include "ps/server/server_shard.h"
#include "ps/table/dense_store.h"
#include "ps/table/sparse_table.h"
#include "ps/table/table_config.h"
#include "worker/data/data_config.h"

namespace mtps {
namespace {

void CheckNetwork(const config::Config& config, ConfigProblems* problems) {
  for (const auto& [field, why] : CheckFaultConfig(config.cluster().faults(), "cluster.faults")) {
    problems->Add(field, why);
  }
}

const std::vector<ConfigCheck>& Checks() {
  static const std::vector<ConfigCheck> checks = {CheckDataConfig, CheckTableConfig,
                                                  CheckServerConfig, CheckNetwork};
  return checks;
}

// What a server does with the config the scheduler sends it, before it
// trusts it (ParameterServer::Create): the table options of its shards and
// the dense optimizer are validated, and only then built (their
// constructors CHECK the same rules). A config that reaches a server
// unchecked (the scheduler's checks are not the server's defence) must be
// refused there with a Status, never crash it.
void ServerSideChecks(const config::Config& config) {
  const SparseTableOptions table = ShardTableOptions(config);
  if (ValidateSparseTableOptions(table).ok()) {
    SparseTable built(table);
    (void)built.size();
  }
  if (ValidateDenseOptimizer(config.server().dense_optimizer()).ok()) {
    DenseStore built(config.server().dense_optimizer());
    (void)built.size();
  }
}

}  // namespace
}  // namespace mtps

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  const std::vector<std::string_view> parts =
      fuzz::Split(fuzz::AsView(data, size), fuzz::kFileSeparator);
  std::vector<std::string> overrides;
  if (parts.size() > 1) {
    for (std::string_view line : fuzz::Split(parts[1], "\n")) overrides.emplace_back(line);
  }
  // ApplyOverride alone: a failed one changes nothing.
  config::Config plain;
  for (const std::string& o : overrides) {
    const std::string before = plain.SerializeAsString();
    Status s = ApplyOverride(o, &plain);
    if (!s.ok() && plain.SerializeAsString() != before) {
      fuzz::Fail("a failed override changed the config: " + s.ToString());
    }
    if (!s.ok() && s.message().empty()) fuzz::Fail("an override error without a message");
  }
  const auto path = fuzz::ScratchDir::Get() / "job.pbtxt";
  fuzz::WriteFileOrDie(path, parts[0]);
  // The server's view: the config as parsed, before anyone's checks.
  auto unchecked = LoadConfig(path.string(), overrides);
  if (unchecked.ok()) ServerSideChecks(*unchecked);
  auto loaded = LoadConfig(path.string(), overrides, Checks());
  if (!loaded.ok()) {
    if (loaded.status().message().empty()) fuzz::Fail("a LoadConfig error without a message");
    return 0;
  }
  (void)ModelKindName(loaded->model());
  // Printed and loaded again (from the same directory, so relative paths,
  // already resolved, stay as they are): the same config. Compared as
  // text, where a NaN equals itself.
  const std::string text = ConfigToText(*loaded);
  const auto again_path = fuzz::ScratchDir::Get() / "again.pbtxt";
  fuzz::WriteFileOrDie(again_path, text);
  auto again = LoadConfig(again_path.string(), {}, Checks());
  if (!again.ok()) fuzz::Fail("a printed config does not load again: " + again.status().ToString());
  if (ConfigToText(*again) != text) fuzz::Fail("a printed config loads to another config");
  return 0;
}
