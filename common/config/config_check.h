// ConfigProblems and ConfigCheck: how the code that owns a config rule
// contributes its check to LoadConfig (common/config/config.h) without
// common/ depending on it.
//
// A rule is written once, by its owner: the readers own the data section
// (worker/data/data_config.h), the model kinds the model section
// (worker/models/model_registry.h), the tables the optimizers and table limits
// (ps/table/table_config.h), the server its threads (ps/server/server_config.h).
// Each owner exports a ConfigCheck; the process that loads the config
// (launcher/node_main.cc) passes every one to LoadConfig, and the owner's own
// code runs the same rule functions on what it is given.
#ifndef MTPS_COMMON_CONFIG_CONFIG_CHECK_H_
#define MTPS_COMMON_CONFIG_CONFIG_CHECK_H_

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"

namespace mtps {

// The problems found in a config, each a dotted field path
// ("data.labels[1].column", "server.sparse_optimizer.adam.beta1") and why
// ("must be > 0 (got 0)"), in the order the checks found them. Value type;
// not thread-safe.
class ConfigProblems {
 public:
  struct Problem {
    std::string field;
    std::string why;
  };

  void Add(const std::string& field, const std::string& why);

  // The error of a check that returns a Status whose message starts with the
  // field path (as worker/nn/layers.h's do: "model.dropout must be in [0, 1),
  // got 1"): the path is the message up to the first space (a ':' ending it
  // is dropped), why the rest. An OK status adds nothing.
  void AddError(const Status& error);

  // value > 0, else "must be > 0 (got <value>)" (NaN fails).
  template <typename T>
  void Positive(const std::string& field, T value) {
    if (!(value > 0)) Add(field, "must be > 0 (got " + ToString(value) + ")");
  }
  // value >= 0, else "must be >= 0 (got <value>)" (NaN fails).
  template <typename T>
  void NonNegative(const std::string& field, T value) {
    if (!(value >= 0)) Add(field, "must be >= 0 (got " + ToString(value) + ")");
  }
  // Positive / NonNegative, and not infinite ("must be finite (got inf)").
  void PositiveFinite(const std::string& field, double value);
  void NonNegativeFinite(const std::string& field, double value);

  bool empty() const { return problems_.empty(); }
  const std::vector<Problem>& problems() const { return problems_; }

  // OK when empty, else InvalidArgument "<what>: <field>: <why>; <field>:
  // <why>" (LoadConfig prefixes the file: "<path>: invalid config: ...").
  Status ToStatus(const std::string& what = "invalid config") const;

 private:
  template <typename T>
  static std::string ToString(T value) {
    std::ostringstream os;
    os << value;
    return os.str();
  }

  std::vector<Problem> problems_;
};

// One owner's check of a loaded config: adds a problem for every rule the
// config breaks. Must be a pure function of the config.
using ConfigCheck = std::function<void(const config::Config& config, ConfigProblems* problems)>;

// Runs every check on config, in order, into *problems.
void RunConfigChecks(const config::Config& config, const std::vector<ConfigCheck>& checks,
                     ConfigProblems* problems);

}  // namespace mtps

#endif  // MTPS_COMMON_CONFIG_CONFIG_CHECK_H_
