// A scheduler and parameter servers on threads for ps_bench (see
// tests/bench/bench_cluster.h).
#include "tests/bench/bench_cluster.h"

#include <pthread.h>
#include <stdlib.h>

#include <filesystem>

#include <glog/logging.h>

#include "common/cluster/job_phase.h"
#include "common/net/zmq_transport.h"

namespace mtps {
namespace bench {
namespace {

StatusOr<std::string> MakeTempDir() {
  std::error_code ec;
  std::string base = std::filesystem::temp_directory_path(ec).string();
  if (ec) return Status::IoError("no temporary directory: " + ec.message());
  std::string pattern = base + "/mtps_ps_bench_XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return Status::IoError("mkdtemp " + pattern + " failed");
  }
  return pattern;
}

MemberOptions NodeOptions(wire::Role role, int rank, int scheduler_port, int register_timeout_ms) {
  MemberOptions o;
  o.role = role;
  o.requested_rank = rank;
  o.scheduler_endpoint = "tcp://127.0.0.1:" + std::to_string(scheduler_port);
  o.register_timeout_ms = register_timeout_ms;
  return o;
}

// A node's transport; with CURVE (keys_dir not empty) its keys are loaded
// and the ZAP handler of its context started into *zap.
StatusOr<std::unique_ptr<ZmqTransport>> NodeTransport(zmq::context_t* ctx,
                                                      const std::string& keys_dir,
                                                      const std::string& name,
                                                      std::unique_ptr<ZapHandler>* zap) {
  auto t = std::make_unique<ZmqTransport>(ctx);
  if (keys_dir.empty()) return t;
  MTPS_ASSIGN_OR_RETURN(CurveKeys keys, LoadCurveKeys(keys_dir, name));
  *zap = std::make_unique<ZapHandler>(ctx, keys);
  t->EnableCurve(std::move(keys));
  return t;
}

}  // namespace

StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(const LocalClusterOptions& options) {
  if (options.num_servers < 1) {
    return Status::InvalidArgument("a cluster needs at least one server, got " +
                                   std::to_string(options.num_servers));
  }
  std::unique_ptr<LocalCluster> c(new LocalCluster(options));
  MTPS_ASSIGN_OR_RETURN(c->run_dir_, MakeTempDir());

  std::string keys_dir;
  if (options.curve) {
    keys_dir = c->run_dir_ + "/keys";
    std::vector<std::string> names = {CurveNodeName(wire::SCHEDULER, 0),
                                      CurveNodeName(wire::WORKER, 0)};
    for (int r = 0; r < options.num_servers; ++r) names.push_back(CurveNodeName(wire::SERVER, r));
    MTPS_RETURN_IF_ERROR(WriteCurveKeys(keys_dir, names));
  }
  SchedulerOptions so;
  so.config = options.config;
  so.config.mutable_cluster()->set_curve(options.curve);
  so.num_servers = options.num_servers;
  so.num_workers = 1;
  so.run_dir = c->run_dir_;
  c->scheduler_ctx_ = std::make_unique<zmq::context_t>(1);
  MTPS_ASSIGN_OR_RETURN(auto scheduler_transport,
                        NodeTransport(c->scheduler_ctx_.get(), keys_dir,
                                      CurveNodeName(wire::SCHEDULER, 0), &c->scheduler_zap_));
  c->scheduler_ = std::make_unique<Scheduler>(std::move(scheduler_transport), so);
  MTPS_RETURN_IF_ERROR(c->scheduler_->Start());
  const int port = c->scheduler_->port();
  LocalCluster* raw = c.get();
  c->scheduler_thread_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "ps-scheduler");
    raw->scheduler_status_ = raw->scheduler_->Run();
  });

  const int register_ms = options.config.cluster().register_timeout_ms();
  c->server_status_.assign(options.num_servers, Status::OK());
  c->server_stats_.assign(options.num_servers, ParameterServer::Stats());
  for (int rank = 0; rank < options.num_servers; ++rank) {
    c->server_threads_.emplace_back([raw, rank, port, register_ms, keys_dir] {
      pthread_setname_np(pthread_self(), ("ps-server-" + std::to_string(rank)).c_str());
      zmq::context_t ctx(1);            // outlives the member below
      std::unique_ptr<ZapHandler> zap;  // likewise
      auto transport = NodeTransport(&ctx, keys_dir, CurveNodeName(wire::SERVER, rank), &zap);
      if (!transport.ok()) {
        raw->server_status_[rank] = transport.status();
        return;
      }
      ClusterMember member(std::move(transport).value(),
                           NodeOptions(wire::SERVER, rank, port, register_ms));
      Status s = member.Join();
      if (s.ok()) {
        auto server = ParameterServer::Create(&member);
        if (server.ok()) {
          s = server.value()->Run();
          raw->server_stats_[rank] = server.value()->stats();
        } else {
          s = server.status();
        }
        member.Leave();
      }
      raw->server_status_[rank] = s;
    });
  }

  c->worker_ctx_ = std::make_unique<zmq::context_t>(1);
  MTPS_ASSIGN_OR_RETURN(auto worker_transport,
                        NodeTransport(c->worker_ctx_.get(), keys_dir,
                                      CurveNodeName(wire::WORKER, 0), &c->worker_zap_));
  c->worker_ = std::make_unique<ClusterMember>(std::move(worker_transport),
                                               NodeOptions(wire::WORKER, 0, port, register_ms));
  Status joined = c->worker_->Join();
  if (!joined.ok()) {
    c->worker_.reset();  // the destructor then only waits for the nodes to give up
    return Status(joined.code(), "bench worker: " + joined.message());
  }
  return c;
}

Status LocalCluster::EndJob() {
  // The scheduler closes a job after every worker reported its evaluation
  // and passed the end barrier; the report here is a token one.
  Message report(wire::EVAL_REPORT);
  report.meta.mutable_eval_report()->add_tasks("bench");
  report.meta.mutable_eval_report()->set_train_examples(2);
  report.payloads.push_back(Payload::FromVector(std::vector<float>{0.9f, 0.1f}));
  report.payloads.push_back(Payload::FromVector(std::vector<float>{1, 0}));
  auto r = worker_->rpc().Call(kSchedulerNodeId, std::move(report),
                               options_.config.cluster().request_timeout_ms());
  if (!r.ok()) return Status(r.status().code(), "evaluation report: " + r.status().message());
  for (JobBarrier b : {JobBarrier::kStart, JobBarrier::kTrained, JobBarrier::kEnd}) {
    const char* barrier = JobBarrierName(b);
    Status s = worker_->Barrier(barrier, 1);
    if (!s.ok()) return Status(s.code(), std::string("barrier ") + barrier + ": " + s.message());
  }
  worker_->Leave();
  return Status::OK();
}

void LocalCluster::JoinThreads() {
  // Every node thread returns by itself: when the job finished, or at the
  // latest a heartbeat timeout after its peers went silent.
  worker_.reset();
  for (std::thread& t : server_threads_) {
    if (t.joinable()) t.join();
  }
  if (scheduler_thread_.joinable()) scheduler_thread_.join();
}

Status LocalCluster::Finish() {
  if (finished_) return Status::OK();
  finished_ = true;
  Status first = EndJob();
  JoinThreads();
  if (first.ok()) first = scheduler_status_;
  for (size_t r = 0; first.ok() && r < server_status_.size(); ++r) {
    if (!server_status_[r].ok()) {
      first = Status(server_status_[r].code(),
                     "server " + std::to_string(r) + ": " + server_status_[r].message());
    }
  }
  return first;
}

LocalCluster::~LocalCluster() {
  if (!finished_) {
    if (worker_ != nullptr) {
      Status s = Finish();
      if (!s.ok()) LOG(WARNING) << "stopping the bench cluster: " << s;
    } else {
      finished_ = true;
      JoinThreads();
    }
  }
  scheduler_.reset();
  if (!run_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(run_dir_, ec);
    if (ec) LOG(WARNING) << "removing " << run_dir_ << ": " << ec.message();
  }
}

}  // namespace bench
}  // namespace mtps
