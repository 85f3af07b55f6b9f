// LocalCluster: a real mtps scheduler and S parameter servers on threads of
// this process, plus one worker-role member for the caller, talking ZeroMQ
// TCP over 127.0.0.1 on ephemeral ports -- the benchmark's stand-in for a
// cluster of processes. Every node has its own zmq::context_t (one I/O
// thread), as separate mtps-node processes would.
//
// Ownership: the cluster owns its threads, nodes and run directory (a fresh
// temporary directory, removed by the destructor). Thread-safety: the worker
// member and the cluster object are used from the creating thread only.
#ifndef MTPS_TESTS_BENCH_BENCH_CLUSTER_H_
#define MTPS_TESTS_BENCH_BENCH_CLUSTER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "common/base/status.h"
#include "common/cluster/cluster_member.h"
#include "common/net/curve.h"
#include "proto/config.pb.h"
#include "ps/scheduler/scheduler.h"
#include "ps/server/server.h"

namespace mtps {
namespace bench {

struct LocalClusterOptions {
  config::Config config;  // the job config the scheduler hands every node
  int num_servers = 1;
  // CURVE on every socket (fresh keys in the run dir; cluster.curve set).
  bool curve = false;
};

class LocalCluster {
 public:
  // Starts the scheduler and the servers and joins the caller's worker;
  // returns once every node registered (or the registration deadline of the
  // config passed).
  static StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);

  // Stops the cluster: Finish() unless it ran (errors are logged).
  ~LocalCluster();

  // The caller's worker-role member (connected to every server).
  ClusterMember& worker() { return *worker_; }

  // Ends the job the way a worker does (evaluation report, start/trained/end
  // barriers), waits for every node thread to return, and returns the first
  // error of the scheduler or a server.
  Status Finish();

  // Counters of each server by rank; valid after Finish.
  const std::vector<ParameterServer::Stats>& server_stats() const { return server_stats_; }

 private:
  explicit LocalCluster(const LocalClusterOptions& options) : options_(options) {}
  Status EndJob();
  void JoinThreads();

  LocalClusterOptions options_;
  std::string run_dir_;
  std::unique_ptr<zmq::context_t> scheduler_ctx_;
  std::unique_ptr<ZapHandler> scheduler_zap_;  // with curve; before the scheduler's sockets
  std::unique_ptr<Scheduler> scheduler_;
  std::thread scheduler_thread_;
  Status scheduler_status_;
  std::vector<std::thread> server_threads_;
  std::vector<Status> server_status_;                 // by rank, written by its thread
  std::vector<ParameterServer::Stats> server_stats_;  // by rank, written by its thread
  std::unique_ptr<zmq::context_t> worker_ctx_;
  std::unique_ptr<ZapHandler> worker_zap_;
  std::unique_ptr<ClusterMember> worker_;
  bool finished_ = false;
};

}  // namespace bench
}  // namespace mtps

#endif  // MTPS_TESTS_BENCH_BENCH_CLUSTER_H_
