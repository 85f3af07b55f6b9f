// CheckpointWriter: a parameter server's background thread that writes the
// in-memory copies of its shards (taken by the shard threads at a
// checkpoint's cut) to crash-safe files while the server goes on serving.
//
// Files, in the checkpoint's directory: server-R.shard-S (the rows of shard
// S, ps/table/sparse_table.h WriteSparseSnapshot), for an incremental
// checkpoint also server-R.shard-S.delta-<id> (the rows changed since the
// previous checkpoint) after the previous checkpoint's shard files, linked
// (hard links: no copy) from its directory, and server-R.dense (the dense
// block, DenseStore::Serialize) and server-R.window (the pushes applied,
// ps/server/push_window.h). Each is written under a temporary name,
// fsynced and renamed (common/base/durable_file.h). A finished job's
// result (the files with sizes and checksums, or the error) is handed back
// through `on_done`, called on the writer thread.
#ifndef MTPS_PS_SERVER_CHECKPOINT_WRITER_H_
#define MTPS_PS_SERVER_CHECKPOINT_WRITER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proto/wire.pb.h"
#include "ps/table/sparse_table.h"

namespace mtps {

struct CheckpointWriteJob {
  uint64_t id = 0;
  std::string dir;
  int server_rank = 0;                      // names the files: the key partition they hold
  std::vector<SparseTableSnapshot> shards;  // full or deltas (all alike)
  bool delta = false;
  // Delta: the previous checkpoint's files of this server, linked into dir.
  std::string base_dir;
  std::vector<wire::CheckpointFile> base_files;
  std::string dense;
  std::string window;       // PushWindow::Serialize
  double copy_seconds = 0;  // how long the shards took to copy (reported)
};

struct CheckpointWriteResult {
  uint64_t id = 0;
  int partition = 0;  // the job's server_rank: whose files these are
  std::vector<wire::CheckpointFile> files;
  std::string error;  // empty on success
  double copy_seconds = 0;
  double write_seconds = 0;
};

class CheckpointWriter {
 public:
  using DoneCallback = std::function<void(CheckpointWriteResult)>;

  // `hold_ms` > 0 (checkpoint.test_write_delay_ms, a testing aid): each
  // file is held that long before its commit.
  explicit CheckpointWriter(DoneCallback on_done, int hold_ms = 0);
  // Writes what is queued, then joins.
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Queues a job (any thread); jobs are written in order.
  void Submit(CheckpointWriteJob job);
  // Jobs queued or being written.
  int pending() const;

 private:
  void Loop();
  CheckpointWriteResult Write(const CheckpointWriteJob& job) const;

  DoneCallback on_done_;
  const int hold_ms_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<CheckpointWriteJob> queue_;  // guarded by mu_
  int busy_ = 0;                          // guarded by mu_
  bool stopping_ = false;                 // guarded by mu_
  std::thread thread_;                    // last: started by the constructor
};

}  // namespace mtps

#endif  // MTPS_PS_SERVER_CHECKPOINT_WRITER_H_
