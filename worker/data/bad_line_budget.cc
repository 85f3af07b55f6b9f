// BadLineBudget: counting, rate-limited logging and the error beyond the
// budget. See worker/data/bad_line_budget.h.
#include "worker/data/bad_line_budget.h"

#include <glog/logging.h>

#include <string>

namespace mtps {
namespace {

bool IsPowerOfTen(int64_t n) {
  if (n < 1) return false;
  while (n % 10 == 0) n /= 10;
  return n == 1;
}

}  // namespace

BadLineBudget::BadLineBudget(int64_t max_bad_lines, Logging logging)
    : max_bad_lines_(max_bad_lines < 0 ? 0 : max_bad_lines), logging_(logging) {
  DCHECK_GE(max_bad_lines, 0);
}

Status BadLineBudget::Skip(const Status& error) {
  DCHECK(!error.ok());
  std::lock_guard<std::mutex> lock(mu_);
  if (skipped_ >= max_bad_lines_) {
    return Status(error.code(), error.message() + " (malformed line " +
                                    std::to_string(skipped_ + 1) +
                                    ", beyond the data error budget: data.max_bad_lines = " +
                                    std::to_string(max_bad_lines_) + ")");
  }
  ++skipped_;
  if (logging_ == Logging::kWarn) {
    if (skipped_ <= kLogEach) {
      LOG(WARNING) << "skipped malformed data line " << skipped_ << " of at most " << max_bad_lines_
                   << " (data.max_bad_lines): " << error.message();
    } else if (IsPowerOfTen(skipped_)) {
      LOG(WARNING) << skipped_ << " malformed data lines skipped so far, of at most "
                   << max_bad_lines_ << " (data.max_bad_lines); the latest: " << error.message();
    }
  }
  return Status::OK();
}

int64_t BadLineBudget::skipped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skipped_;
}

}  // namespace mtps
