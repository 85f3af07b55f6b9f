// ConfigProblems (see common/config/config_check.h).
#include "common/config/config_check.h"

#include <cmath>

namespace mtps {

void ConfigProblems::Add(const std::string& field, const std::string& why) {
  problems_.push_back(Problem{field, why});
}

void ConfigProblems::AddError(const Status& error) {
  if (error.ok()) return;
  const std::string& message = error.message();
  const size_t space = message.find(' ');
  if (space == std::string::npos) {
    Add(message, "invalid");
    return;
  }
  std::string field = message.substr(0, space);
  if (!field.empty() && field.back() == ':') field.pop_back();
  Add(field, message.substr(space + 1));
}

void ConfigProblems::PositiveFinite(const std::string& field, double value) {
  if (!(value > 0)) {
    Positive(field, value);
  } else if (!std::isfinite(value)) {
    Add(field, "must be finite (got " + ToString(value) + ")");
  }
}

void ConfigProblems::NonNegativeFinite(const std::string& field, double value) {
  if (!(value >= 0)) {
    NonNegative(field, value);
  } else if (!std::isfinite(value)) {
    Add(field, "must be finite (got " + ToString(value) + ")");
  }
}

Status ConfigProblems::ToStatus(const std::string& what) const {
  if (problems_.empty()) return Status::OK();
  std::string joined;
  for (const Problem& p : problems_) {
    joined += (joined.empty() ? "" : "; ") + p.field + ": " + p.why;
  }
  return Status::InvalidArgument(what + ": " + joined);
}

void RunConfigChecks(const config::Config& config, const std::vector<ConfigCheck>& checks,
                     ConfigProblems* problems) {
  for (const ConfigCheck& check : checks) check(config, problems);
}

}  // namespace mtps
