// Fuzzes a parameter server's request handling in-process, without sockets:
// a real ParameterServer (ps/server/server.h) with its ClusterMember, Rpc,
// shard threads, tables, push window and checkpoint writer, whose Transport
// is a loopback here that plays the scheduler and hands the server the
// fuzzed requests. So every request takes the path of the real one from
// DecodeMessage on: Rpc::Dispatch (dedupe), ParameterServer::Handle (epoch,
// deadline, op, partition), PrepareSparse/PrepareDense, the push window,
// SubmitToShards and the shard threads, replication, snapshots, the replies.
//
// Input: byte 0 picks the server's config (shard threads 1 or 2, replicas,
// sparse optimizer, admission, eviction, row cap, dense optimizer); the rest
// is requests separated by kMessageSeparator, each its frames separated by
// kFrameSeparator (tests/fuzz/fuzz_support.h), as fuzz_wire reads them. The
// server is rank 0 of 2 servers in cluster epoch 1 (with replicas: primary of
// partition 0, backup of partition 1); requests claim to come from the worker
// (node 3) or whoever their meta says. After the last request the scheduler's
// heartbeat answer finishes the job; each input starts from a new server.
//
// Checked beyond "no crash" (ASan, UBSan, leaks): the server's loop keeps
// serving (a bad request never stops it) until the job finishes; every reply is a response to a
// request of this input and encodes to frames that decode again.
//
// Found here and fixed: Deadline::In overflowed on a huge timeout_ms (it
// clamps now). Skipped, on purpose: SNAPSHOT's directories are replaced by this process's scratch
// directory (the server writes where the scheduler says, and the scheduler is trusted).
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_server -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_server build-fuzz/fuzz-seeds/fuzz_server
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.h"

#include "common/cluster/cluster_member.h"
#include "common/config/config.h"
#include "common/net/transport.h"
#include "common/net/wire.h"
#include "ps/server/server.h"

namespace mtps {
namespace {

constexpr uint64_t kEpoch = 1;
constexpr int kServers = 2;
constexpr int kSelf = 1;    // node id of server rank 0
constexpr int kWorker = 3;  // node id of the one worker

// The job config of the byte that picks it.
config::Config ServerConfigOf(uint8_t pick) {
  static const config::Config base = [] {
    auto loaded = LoadConfig(MTPS_SOURCE_DIR "/configs/census_mmoe.pbtxt", {});
    if (!loaded.ok()) fuzz::Fail("cannot load the base config: " + loaded.status().ToString());
    return *loaded;
  }();
  config::Config c = base;
  c.mutable_model()->set_embedding_dim(4);
  config::ServerConfig* s = c.mutable_server();
  s->set_shard_threads(1 + (pick & 1));
  s->set_replicas((pick >> 1) & 1);
  config::SparseOptimizer* opt = s->mutable_sparse_optimizer();
  switch ((pick >> 2) & 3) {
    case 0:
      opt->mutable_adagrad();
      break;
    case 1:
      opt->mutable_adam();
      break;
    case 2:
      opt->mutable_ftrl()->set_l1(0.01f);
      break;
    default:
      opt->mutable_sgd();
      break;
  }
  if (pick & 16) s->set_admission_min_count(2);
  if (pick & 32) s->set_evict_after_steps(3);
  if (pick & 64) s->set_max_rows(16);
  if (pick & 128) s->mutable_dense_optimizer()->mutable_adagrad();
  config::ClusterConfig* cl = c.mutable_cluster();
  cl->set_heartbeat_interval_ms(1);
  cl->set_heartbeat_timeout_ms(60000);
  cl->set_barrier_timeout_ms(5000);
  c.mutable_checkpoint()->set_test_write_delay_ms(0);
  return c;
}

wire::NodeInfo Node(wire::Role role, int rank, int id) {
  wire::NodeInfo n;
  n.set_role(role);
  n.set_rank(rank);
  n.set_node_id(id);
  n.set_host("127.0.0.1");
  n.set_port(7000 + id);
  return n;
}

// The server's Transport: hands it the input's requests, answers its own
// requests as the scheduler (REGISTER, HEARTBEAT, CHECKPOINT_FILES, LEAVE)
// and the other server (REPLICATE) would, and records its replies. Used by
// the server's receive thread; Wake from its shard and writer threads.
class LoopbackTransport : public Transport {
 public:
  LoopbackTransport(const config::Config& config, std::deque<Incoming> requests)
      : config_bytes_(config.SerializeAsString()),
        replicas_(config.server().replicas() > 0),
        queue_(std::move(requests)) {
    for (const Incoming& in : queue_) request_ids_.insert(in.msg.meta.request_id());
  }

  StatusOr<int> Bind(const std::string&, int) override { return 7000 + kSelf; }
  Status Connect(int, const std::string&) override { return Status::OK(); }

  Status Send(int peer, Message msg) override {
    Message reply;
    reply.meta.set_op(msg.meta.op());
    reply.meta.set_request_id(msg.meta.request_id());
    reply.meta.set_is_response(true);
    reply.meta.set_sender(peer);
    reply.meta.set_cluster_epoch(kEpoch);
    switch (msg.meta.op()) {
      case wire::REGISTER: {
        wire::RegisterReply* r = reply.meta.mutable_register_reply();
        *r->mutable_you() = Node(wire::SERVER, 0, kSelf);
        *r->add_nodes() = Node(wire::SCHEDULER, 0, kSchedulerNodeId);
        *r->add_nodes() = Node(wire::SERVER, 0, kSelf);
        *r->add_nodes() = Node(wire::SERVER, 1, kSelf + 1);
        *r->add_nodes() = Node(wire::WORKER, 0, kWorker);
        r->set_cluster_epoch(kEpoch);
        r->set_config(config_bytes_);
        if (replicas_) {
          wire::PartitionMap* map = reply.meta.mutable_partition_map();
          for (int p = 0; p < kServers; ++p) {
            wire::PartitionMap::Placement* place = map->add_partitions();
            place->set_primary(kSelf + p);
            place->set_backup(kSelf + (p + 1) % kServers);
          }
        }
        break;
      }
      case wire::HEARTBEAT:
        // The job ends once the server has taken every request.
        reply.meta.set_job_state(queue_.empty() ? wire::JOB_FINISHED : wire::JOB_RUNNING);
        break;
      default:  // CHECKPOINT_FILES, REPLICATE, LEAVE: acknowledged
        break;
    }
    Incoming in;
    in.msg = std::move(reply);
    in.peer = peer;
    queue_.push_back(std::move(in));
    return Status::OK();
  }

  // Messages other than heartbeat answers handed to the server, and
  // replies it sent, so far.
  int64_t activity() const { return activity_; }

  Status Reply(const std::string& reply_to, Message msg) override {
    ++activity_;
    if (reply_to.rfind("input-", 0) != 0) fuzz::Fail("a reply to an unknown address " + reply_to);
    if (!msg.meta.is_response() || request_ids_.count(msg.meta.request_id()) == 0) {
      fuzz::Fail("a reply that answers no request of the input");
    }
    StatusOr<Message> again = DecodeMessage(EncodeMessage(std::move(msg)));
    if (!again.ok()) fuzz::Fail("the server sent a malformed reply: " + again.status().ToString());
    return Status::OK();
  }

  StatusOr<Incoming> Receive(Deadline deadline) override {
    if (queue_.empty()) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_until(lock, deadline.at(), [this] { return woken_; });
      woken_ = false;
      return Status::DeadlineExceeded("nothing to receive");
    }
    Incoming in = std::move(queue_.front());
    queue_.pop_front();
    if (in.msg.meta.op() != wire::HEARTBEAT) ++activity_;  // heartbeats never stop
    return in;
  }

  void Wake() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      woken_ = true;
    }
    wake_.notify_one();
  }

 private:
  const std::string config_bytes_;
  const bool replicas_;
  std::deque<Incoming> queue_;  // requests of the input, then answers to the server
  std::set<uint64_t> request_ids_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool woken_ = false;  // guarded by mu_
  int64_t activity_ = 0;
};

}  // namespace
}  // namespace mtps

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  if (size == 0) return 0;
  const config::Config config = ServerConfigOf(data[0]);
  std::deque<Incoming> requests;
  int index = 0;
  for (std::string_view message :
       fuzz::Split(fuzz::AsView(data + 1, size - 1), fuzz::kMessageSeparator)) {
    std::vector<zmq::message_t> frames;
    for (std::string_view f : fuzz::Split(message, fuzz::kFrameSeparator)) {
      frames.emplace_back(f.data(), f.size());
    }
    // A malformed message is answered by the transport and never reaches
    // the server (ZmqTransport::Receive); fuzz_wire covers that part.
    StatusOr<Message> msg = DecodeMessage(std::move(frames));
    if (!msg.ok()) continue;
    wire::Meta& meta = msg->meta;
    if (meta.has_checkpoint()) {
      wire::Checkpoint* c = meta.mutable_checkpoint();
      const std::string dir = (fuzz::ScratchDir::Get() / "snapshot").string();
      if (!c->dir().empty()) c->set_dir(dir);
      if (!c->base_dir().empty()) c->set_base_dir(dir);
    }
    Incoming in;
    in.msg = std::move(*msg);
    in.reply_to = "input-" + std::to_string(index++);
    requests.push_back(std::move(in));
  }
  auto owned = std::make_unique<LoopbackTransport>(config, std::move(requests));
  const LoopbackTransport* transport = owned.get();  // owned by the member
  MemberOptions options;
  options.role = wire::SERVER;
  options.scheduler_endpoint = "tcp://127.0.0.1:7000";
  ClusterMember member(std::move(owned), options);
  Status joined = member.Join();
  if (!joined.ok()) fuzz::Fail("joining the loopback scheduler: " + joined.ToString());
  auto server = ParameterServer::Create(&member);
  if (!server.ok()) fuzz::Fail("creating the server: " + server.status().ToString());
  // ParameterServer::Run's loop, in 1 ms ticks rather than 100 ms ones (Run
  // would spend 100 ms per input after the last request): serve until the
  // job finished, then until the shards' answers stopped coming (3 quiet
  // ticks); the server's destructor serves whatever is still queued.
  int quiet = 0;
  for (int tick = 0; tick < 5000 && quiet < 3; ++tick) {
    const int64_t before = transport->activity();
    Status s = member.Tick(Deadline::In(1));
    if (!s.ok()) fuzz::Fail("the server stopped serving: " + s.ToString());
    quiet = member.finished() && transport->activity() == before ? quiet + 1 : 0;
  }
  if (!member.finished()) fuzz::Fail("the job did not finish within 5000 ticks");
  return 0;
}
