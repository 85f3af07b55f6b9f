// Writes the binary seed corpora of the fuzz targets, made by the real
// encoders, so they follow the formats as they change: encoded requests
// and responses (fuzz_wire, fuzz_server), table snapshots, deltas and dense
// blocks (fuzz_table_snapshot), push windows (fuzz_request_window), a
// small real checkpoint (fuzz_checkpoint_store) and a worker's and a
// server's metrics snapshots (fuzz_metrics_snapshot). The text seeds (data
// slices, configs) are committed under tests/fuzz/corpus/ instead.
//
// Usage: fuzz_seeds OUT_DIR  (writes OUT_DIR/<target>/<seed>; tests/run_fuzz
// runs it before the targets).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/fuzz/checkpoint_fuzz.h"
#include "tests/fuzz/fuzz_support.h"

#include "common/base/deadline.h"
#include "common/base/durable_file.h"
#include "common/metrics/metrics.h"
#include "common/net/request_window.h"
#include "common/net/wire.h"
#include "proto/checkpoint.pb.h"
#include "ps/table/dense_store.h"
#include "ps/table/sparse_table.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

class SeedWriter {
 public:
  explicit SeedWriter(fs::path root) : root_(std::move(root)) {}
  void Write(const std::string& target, const std::string& name, const std::string& bytes) {
    const fs::path dir = root_ / target;
    fs::create_directories(dir);
    fuzz::WriteFileOrDie(dir / name, bytes);
    ++written_;
  }
  int written() const { return written_; }

 private:
  fs::path root_;
  int written_ = 0;
};

// A message's frames joined with kFrameSeparator (fuzz_wire's input).
std::string Frames(Message msg) {
  std::vector<std::string> parts;
  for (const zmq::message_t& f : EncodeMessage(std::move(msg))) {
    parts.emplace_back(static_cast<const char*>(f.data()), f.size());
  }
  return fuzz::Join(parts, fuzz::kFrameSeparator);
}

// A data-plane request as a worker (node 3) sends it to server rank 0 in
// epoch 1 (fuzz_server's setting).
Message Request(wire::Op op, uint64_t id) {
  Message m(op);
  m.meta.set_request_id(id);
  m.meta.set_sender(3);
  m.meta.set_cluster_epoch(1);
  m.meta.set_timeout_ms(5000);
  m.meta.set_incarnation(77);
  m.meta.set_done_below(id > 3 ? id - 3 : 0);
  return m;
}

Message Keys(wire::Op op, uint64_t id, std::vector<uint64_t> keys, int dim) {
  Message m = Request(op, id);
  const size_t n = keys.size();
  m.payloads.push_back(Payload::FromVector(std::move(keys)));
  if (op == wire::PUSH_SPARSE) {
    std::vector<float> grads(n * static_cast<size_t>(dim));
    for (size_t i = 0; i < grads.size(); ++i) grads[i] = 0.01f * static_cast<float>(i % 7) - 0.02f;
    m.payloads.push_back(Payload::FromVector(std::move(grads)));
  }
  return m;
}

Message Dense(wire::Op op, uint64_t id, size_t n) {
  Message m = Request(op, id);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.1f * static_cast<float>(i);
  m.payloads.push_back(Payload::FromVector(std::move(v)));
  if (op == wire::INIT_DENSE) m.meta.set_dense_total(static_cast<int64_t>(2 * n));
  return m;
}

void WriteMessageSeeds(SeedWriter* out) {
  const int dim = 4;  // fuzz_server's embedding dim
  std::vector<Message> session;
  session.push_back(Dense(wire::INIT_DENSE, 1, 5));
  session.push_back(Keys(wire::PULL_SPARSE, 2, {1, 2, 3, 0x9e3779b97f4a7c15ULL}, dim));
  session.push_back(Keys(wire::PUSH_SPARSE, 3, {1, 2, 3, 0x9e3779b97f4a7c15ULL}, dim));
  session.push_back(Keys(wire::PUSH_SPARSE, 3, {1, 2, 3, 0x9e3779b97f4a7c15ULL}, dim));  // a resend
  session.push_back(Request(wire::PULL_DENSE, 4));
  session.push_back(Dense(wire::PUSH_DENSE, 5, 5));
  session.push_back(Keys(wire::PULL_SPARSE, 6, {2, 5}, dim));
  session.back().meta.set_create_missing(false);
  session.push_back(Request(wire::UPDATE_COUNTS, 7));
  session.push_back(Request(wire::PING, 8));
  Message snapshot = Request(wire::SNAPSHOT, 9);
  snapshot.meta.set_sender(kSchedulerNodeId);
  snapshot.meta.mutable_checkpoint()->set_id(1);
  snapshot.meta.mutable_checkpoint()->set_dir("ckpt-00000001");
  session.push_back(std::move(snapshot));
  Message replicate = Keys(wire::REPLICATE, 10, {4, 6}, dim);
  replicate.payloads.push_back(Payload::FromVector(std::vector<float>(2 * dim, 0.5f)));
  replicate.meta.set_sender(2);
  replicate.meta.set_partition(1);
  replicate.meta.set_replica_seq(0);
  replicate.meta.set_replica_op(wire::PUSH_SPARSE);
  replicate.meta.mutable_origin()->set_sender(3);
  replicate.meta.mutable_origin()->set_incarnation(77);
  replicate.meta.mutable_origin()->set_request_id(40);
  session.push_back(std::move(replicate));

  // fuzz_wire: each message alone, and a few responses.
  for (size_t i = 0; i < session.size(); ++i) {
    out->Write("fuzz_wire", "request-" + std::to_string(i), Frames(session[i].Clone()));
  }
  Message error = Request(wire::PUSH_SPARSE, 11);
  error.meta.set_is_response(true);
  error.meta.set_status(wire::INVALID_ARGUMENT);
  error.meta.set_status_message("PUSH_SPARSE of 4 keys needs 16 gradient values");
  out->Write("fuzz_wire", "error-response", Frames(std::move(error)));
  Message beat(wire::HEARTBEAT);
  beat.meta.set_is_response(true);
  beat.meta.set_job_state(wire::JOB_RUNNING);
  wire::PartitionMap::Placement* place = beat.meta.mutable_partition_map()->add_partitions();
  place->set_primary(1);
  place->set_backup(2);
  out->Write("fuzz_wire", "heartbeat-response", Frames(std::move(beat)));

  // fuzz_server: the whole session under several configs (byte 0).
  std::vector<std::string> messages;
  for (const Message& m : session) messages.push_back(Frames(m.Clone()));
  const std::string joined = fuzz::Join(messages, fuzz::kMessageSeparator);
  for (int pick : {0, 1, 2, 3, 5, 6, 11, 0x30, 0x43, 0x8e}) {
    out->Write("fuzz_server", "session-" + std::to_string(pick),
               std::string(1, static_cast<char>(pick)) + joined);
  }
}

// A table of `pick` after a few pulls and pushes, its full snapshot, and
// the delta of a few more.
void WriteTableSeeds(SeedWriter* out, std::vector<std::string>* shard_files) {
  for (int pick = 0; pick < 32; pick += (pick < 4 ? 1 : 7)) {
    SparseTable table(fuzz::TableOptionsOf(static_cast<uint8_t>(pick)));
    std::vector<uint64_t> keys = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0};
    std::vector<float> rows(keys.size() * fuzz::kTableDim);
    std::vector<float> grads(keys.size() * fuzz::kTableDim, 0.125f);
    for (int step = 0; step < 3; ++step) {
      table.Pull(keys.data(), keys.size(), true, rows.data());
      table.Push(keys.data(), keys.size(), grads.data());
    }
    const std::string full = fuzz::SnapshotBytes(table.Snapshot());
    table.StartDelta();
    std::vector<uint64_t> more = {2, 11, 12, 13};
    table.Push(more.data(), more.size(), grads.data());
    table.Erase(5);
    const std::string delta = fuzz::SnapshotBytes(table.DeltaSnapshot());
    const std::string tag(1, static_cast<char>(pick));
    out->Write("fuzz_table_snapshot", "full-" + std::to_string(pick), tag + full);
    out->Write("fuzz_table_snapshot", "chain-" + std::to_string(pick),
               tag + full + std::string(fuzz::kFileSeparator) + delta);
    if (pick == 0) {
      shard_files->push_back(full);
      shard_files->push_back(delta);
    }
  }
}

std::string DenseBytes(bool adagrad) {
  config::DenseOptimizer optimizer;
  if (adagrad) {
    optimizer.mutable_adagrad();
  } else {
    optimizer.mutable_adam();
  }
  DenseStore store(optimizer);
  std::vector<float> values = {0.5f, -0.25f, 1.0f, 0.0f, 2.0f};
  store.Init(values.data(), values.size());
  if (!store.Push(values.data(), values.size()).ok()) fuzz::Fail("a dense seed's push");
  return store.Serialize();
}

std::string WindowBytes() {
  RequestWindow window;
  const SteadyClock::time_point now = SteadyClock::now();
  for (uint64_t id = 1; id <= 6; ++id) {
    const RequestKey key{3, 77, id};
    window.Begin(key, id > 4 ? 2 : 0, now);
    window.Finish(key, id % 2 ? "" : "outcome");
  }
  const RequestKey other{4, 99, 5};
  window.Begin(other, 0, now);
  window.Finish(other, "");
  return window.Serialize();
}

void WriteCheckpointSeeds(SeedWriter* out, const std::vector<std::string>& shard_files) {
  out->Write("fuzz_table_snapshot", "dense-adam", std::string(1, 32) + DenseBytes(false));
  out->Write("fuzz_table_snapshot", "dense-adagrad", std::string(1, 33) + DenseBytes(true));
  const std::string window = WindowBytes();
  out->Write("fuzz_request_window", "window", window);
  out->Write("fuzz_request_window", "empty", RequestWindow().Serialize());

  // A real small checkpoint of one server: its shard and the shard's delta,
  // the dense block, the window.
  const std::vector<std::pair<std::string, std::string>> files = {
      {"server-0.shard-0", shard_files.at(0)},
      {"server-0.shard-0.delta-00000002", shard_files.at(1)},
      {"server-0.dense", DenseBytes(false)},
      {"server-0.window", window}};
  checkpoint::Manifest manifest;
  manifest.set_id(1);
  manifest.set_step(3);
  manifest.set_num_servers(1);
  manifest.set_num_workers(1);
  manifest.set_shard_threads(1);
  manifest.set_reason("seed");
  std::vector<std::string> records = {""};
  for (const auto& [name, bytes] : files) {
    wire::CheckpointFile* f = manifest.add_files();
    f->set_name(name);
    f->set_size(bytes.size());
    f->set_crc32(Crc32(0, bytes.data(), bytes.size()));
    records.push_back(bytes);
  }
  records[0] = manifest.SerializeAsString();
  const std::string body = fuzz::Join(records, fuzz::kFileSeparator);
  out->Write("fuzz_checkpoint_store", "intact", std::string(1, 0) + body);
  out->Write("fuzz_checkpoint_store", "fixed-up", std::string(1, 1) + body);
}

// Snapshots as a worker and a server send them with their heartbeats.
void WriteMetricsSeeds(SeedWriter* out) {
  MetricRegistry worker;
  worker.GetCounter("mtps_train_examples_total", "examples")->Increment(557710);
  worker.GetGauge("mtps_train_auc", "auc", {{"task", "income"}})->Set(0.93);
  worker.GetGauge("mtps_train_auc", "auc", {{"task", "never_married"}})->Set(0.99);
  Histogram* h = worker.GetHistogram("mtps_client_pull_latency_seconds", "latency",
                                     LatencyBuckets(), {{"op", "PULL_SPARSE"}});
  for (double v : {0.0004, 0.002, 0.003, 0.02, 3.0}) h->Observe(v);
  out->Write("fuzz_metrics_snapshot", "worker", worker.Snapshot().SerializeAsString());
  MetricRegistry server;
  server.GetCounter("mtps_server_requests_total", "requests", {{"op", "PUSH_SPARSE"}})
      ->Increment(2187);
  server.GetGauge("mtps_server_rows", "rows")->Set(235);
  out->Write("fuzz_metrics_snapshot", "server", server.Snapshot().SerializeAsString());
}

}  // namespace
}  // namespace mtps

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  mtps::fuzz::QuietLogging();
  mtps::SeedWriter out{std::filesystem::path(argv[1])};
  std::vector<std::string> shard_files;
  mtps::WriteMessageSeeds(&out);
  mtps::WriteTableSeeds(&out, &shard_files);
  mtps::WriteCheckpointSeeds(&out, shard_files);
  mtps::WriteMetricsSeeds(&out);
  std::printf("fuzz_seeds: %d seeds in %s\n", out.written(), argv[1]);
  return 0;
}
