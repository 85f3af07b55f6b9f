// BadLineBudget: the data error budget of one worker (data.max_bad_lines).
//
// A malformed data line (one its format's parser rejects: a wrong number of
// values, a bad number or label, a broken feature) fails the job when the
// budget is 0, the default. With data.max_bad_lines = N > 0 the readers skip
// up to N of them and go on; the next one fails the job with its own error
// plus the budget. Read and gzip errors, a bad CSV header and an Ali-CCP
// join out of order are never budgeted: they are not one bad line.
//
// The budget is per worker. The trainer makes one and hands it to every
// reader it opens (the training and the test side), so it covers every line
// the worker reads. Each data line belongs to exactly one reader of one
// worker (LineSelector: the part, and the holdout side), and only that reader
// counts it (LineExampleReader::SkipBadLine, once however many epochs read
// it), so the workers' counts add up to the number of malformed lines in the
// job's files.
//
// Logging: each of the first kLogEach skipped lines is a WARNING naming its
// file:line and why; after that one WARNING at every power of ten (100,
// 1000, ...) with the count and the latest line, so a bad file cannot flood
// the log.
//
// Thread-safe: a mutex, taken only for malformed lines.
#ifndef MTPS_WORKER_DATA_BAD_LINE_BUDGET_H_
#define MTPS_WORKER_DATA_BAD_LINE_BUDGET_H_

#include <cstdint>
#include <mutex>

#include "common/base/status.h"

namespace mtps {

class BadLineBudget {
 public:
  // The skipped lines logged one by one.
  static constexpr int64_t kLogEach = 20;

  // kQuiet logs nothing: for a reader that reads lines another reader of the
  // worker reads (and logs) too, such as the trainer's label sample.
  enum class Logging { kWarn, kQuiet };

  // `max_bad_lines` >= 0 (CheckDataErrorBudget, worker/data/data_config.h).
  explicit BadLineBudget(int64_t max_bad_lines, Logging logging = Logging::kWarn);
  BadLineBudget(const BadLineBudget&) = delete;
  BadLineBudget& operator=(const BadLineBudget&) = delete;

  // `error` is why one data line is malformed: an InvalidArgument whose
  // message starts with "path:line: ". Within the budget the line is counted
  // and logged, and the result is OK (the caller skips the line). Beyond it
  // the result is InvalidArgument: error's message, then "(malformed line K,
  // beyond the data error budget: data.max_bad_lines = N)"; nothing is
  // counted.
  Status Skip(const Status& error);

  // Lines skipped so far.
  int64_t skipped() const;
  int64_t max_bad_lines() const { return max_bad_lines_; }

 private:
  const int64_t max_bad_lines_;
  const Logging logging_;
  mutable std::mutex mu_;
  int64_t skipped_ = 0;  // guarded by mu_
};

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_BAD_LINE_BUDGET_H_
