// A server's checkpoint file writer thread (see ps/server/checkpoint_writer.h).
#include "ps/server/checkpoint_writer.h"

#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/base/deadline.h"
#include "common/base/durable_file.h"

namespace mtps {
namespace {

// A hard link of `from` at `to` (no data copied; the file lives while any
// checkpoint lists it), or a copy where the file system has no hard links.
Status LinkOrCopy(const std::string& from, const std::string& to) {
  ::unlink(to.c_str());
  if (::link(from.c_str(), to.c_str()) == 0) return Status::OK();
  std::error_code ec;
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return Status::IoError("cannot link or copy " + from + " to " + to + ": " + ec.message());
  return Status::OK();
}

}  // namespace

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
  result.partition = job.server_rank;
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
  if (job.delta) {
    // The chain so far: the full shard files and their deltas.
    for (const wire::CheckpointFile& f : job.base_files) {
      if (f.name().find(".shard-") == std::string::npos) continue;
      s = LinkOrCopy(job.base_dir + "/" + f.name(), job.dir + "/" + f.name());
      if (!s.ok()) break;
      result.files.push_back(f);
    }
  }
  char delta_suffix[32];
  std::snprintf(delta_suffix, sizeof(delta_suffix), ".delta-%08llu",
                static_cast<unsigned long long>(job.id));
  for (size_t i = 0; i < job.shards.size() && s.ok(); ++i) {
    const std::string name =
        prefix + ".shard-" + std::to_string(i) + (job.delta ? delta_suffix : "");
    s = write_one(name, [&](DurableFileWriter* w) {
      return WriteSparseSnapshot(
          job.shards[i], [w](const char* data, size_t size) { return w->Append(data, size); });
    });
  }
  if (s.ok() && job.delta) s = SyncDirectory(job.dir);  // the links
  if (s.ok()) {
    s = write_one(prefix + ".dense", [&](DurableFileWriter* w) {
      return w->Append(job.dense.data(), job.dense.size());
    });
  }
  if (s.ok()) {
    s = write_one(prefix + ".window", [&](DurableFileWriter* w) {
      return w->Append(job.window.data(), job.window.size());
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
