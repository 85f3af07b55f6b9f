// A server's checkpoint file writer thread (see ps/server/checkpoint_writer.h).
#include "ps/server/checkpoint_writer.h"

#include <pthread.h>

#include <chrono>

#include "common/base/deadline.h"
#include "common/base/durable_file.h"

namespace mtps {

CheckpointWriter::CheckpointWriter(DoneCallback on_done, int hold_ms)
    : on_done_(std::move(on_done)), hold_ms_(hold_ms), thread_([this] { Loop(); }) {}

CheckpointWriter::~CheckpointWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void CheckpointWriter::Submit(CheckpointWriteJob job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

int CheckpointWriter::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size()) + busy_;
}

void CheckpointWriter::Loop() {
  pthread_setname_np(pthread_self(), "ps-ckpt-writer");
  for (;;) {
    CheckpointWriteJob job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
    }
    CheckpointWriteResult result = Write(job);
    job = CheckpointWriteJob();  // free the copies before reporting
    on_done_(std::move(result));
    std::lock_guard<std::mutex> lock(mu_);
    --busy_;
  }
}

CheckpointWriteResult CheckpointWriter::Write(const CheckpointWriteJob& job) const {
  const auto start = SteadyClock::now();
  CheckpointWriteResult result;
  result.id = job.id;
  result.copy_seconds = job.copy_seconds;
  const std::string prefix = "server-" + std::to_string(job.server_rank);
  auto record = [&](const std::string& name, const DurableFileWriter& w) {
    wire::CheckpointFile f;
    f.set_name(name);
    f.set_size(w.size());
    f.set_crc32(w.crc32());
    result.files.push_back(f);
  };
  auto write_one = [&](const std::string& name,
                       const std::function<Status(DurableFileWriter*)>& fill) -> Status {
    MTPS_ASSIGN_OR_RETURN(auto writer, DurableFileWriter::Create(job.dir + "/" + name));
    MTPS_RETURN_IF_ERROR(fill(writer.get()));
    if (hold_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms_));
    MTPS_RETURN_IF_ERROR(writer->Commit());
    record(name, *writer);
    return Status::OK();
  };
  Status s;
  for (size_t i = 0; i < job.shards.size() && s.ok(); ++i) {
    s = write_one(prefix + ".shard-" + std::to_string(i), [&](DurableFileWriter* w) {
      return WriteSparseSnapshot(
          job.shards[i], [w](const char* data, size_t size) { return w->Append(data, size); });
    });
  }
  if (s.ok()) {
    s = write_one(prefix + ".dense", [&](DurableFileWriter* w) {
      return w->Append(job.dense.data(), job.dense.size());
    });
  }
  if (!s.ok()) {
    result.files.clear();
    result.error = s.message();
  }
  result.write_seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return result;
}

}  // namespace mtps
