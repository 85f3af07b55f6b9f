// ResultFiles: where the scheduler's output files go — RUN_DIR, and, for a
// launcher that shares no filesystem with the scheduler's host (mtps-launch
// ssh or slurm), also the scheduler's stdout.
//
// Mirrored, every write becomes one JSON line on the stream:
//   {"file": "summary.json", "write": "<the whole new content>"}
//   {"file": "progress.jsonl", "append": "<one line, without its newline>"}
// which the launcher replays into its own run dir (launcher/mtps_launch/
// records.py), so the files it reads are the same either way. Names are
// plain file names (no '/'). Called from the scheduler's thread only; not
// thread-safe. Copyable: a run dir and a stream it does not own.
#ifndef MTPS_PS_SCHEDULER_RESULT_FILES_H_
#define MTPS_PS_SCHEDULER_RESULT_FILES_H_

#include <cstdio>
#include <string>

#include "common/base/status.h"

namespace mtps {

class ResultFiles {
 public:
  // Files go to `run_dir`; with `mirror` (not owned, e.g. stdout) every
  // write is also reported there and flushed.
  explicit ResultFiles(std::string run_dir, std::FILE* mirror = nullptr)
      : run_dir_(std::move(run_dir)), mirror_(mirror) {}

  const std::string& run_dir() const { return run_dir_; }
  std::string PathOf(const std::string& name) const { return run_dir_ + "/" + name; }

  // Replaces RUN_DIR/name with `content` atomically.
  Status Write(const std::string& name, const std::string& content) const;
  // Appends `line` and a newline to RUN_DIR/name.
  Status Append(const std::string& name, const std::string& line) const;

 private:
  void Mirror(const std::string& name, const char* mode, const std::string& text) const;

  std::string run_dir_;
  std::FILE* mirror_;
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_RESULT_FILES_H_
