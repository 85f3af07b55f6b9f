// mtps-node: one process of an mtps job — the scheduler, a parameter server
// or a worker, chosen by --role. The only place besides the launcher that
// reads flags: they become option structs here and nothing below sees them.
//
//   mtps-node --role=scheduler --config=FILE [--set='a.b=v;c.d=w'] --num_servers=N
//             --num_workers=M --run_dir=DIR [--host=127.0.0.1] [--port=0] [--resume]
//             [--restarts=K]
//   mtps-node --role=scheduler --config=FILE [--set=...] --check_config
//   mtps-node --role=server|worker --scheduler=tcp://HOST:PORT [--rank=R] [--host=127.0.0.1]
//
// Started on another host (mtps-launch ssh/slurm), a node also gets
// --bind/--advertise (the address to bind and the one peers reach it at),
// --new_session (it leads its own session and process group, and prints
// {"node": {"pid", "pgid", "host"}} on stdout for the launcher to signal it),
// --exit_on_stdin_eof (it exits when the launcher's connection closes) and,
// for the scheduler, --results_to_stdout (every result file it writes is
// also reported on stdout, ps/scheduler/result_files.h).
//
// The scheduler loads the job config with every owner's check
// (ConfigChecks() below), so a bad config stops the job before anything
// starts; servers and workers receive the checked config from it.
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <zmq.hpp>

#include "common/base/json_file.h"
#include "common/cluster/cluster_member.h"
#include "common/config/config.h"
#include "common/config/config_check.h"
#include "common/net/curve.h"
#include "common/net/fault_transport.h"
#include "common/net/zmq_transport.h"
#include "ps/scheduler/scheduler.h"
#include "ps/server/server.h"
#include "ps/server/server_config.h"
#include "ps/table/table_config.h"
#include "worker/data/data_config.h"
#include "worker/models/model_registry.h"
#include "worker/trainer/trainer.h"

DEFINE_string(role, "", "scheduler, server or worker");
DEFINE_string(config, "", "scheduler: job config (Protobuf text format, see proto/config.proto)");
DEFINE_string(set, "", "scheduler: config overrides 'a.b=v', separated by ';'");
DEFINE_bool(check_config, false,
            "scheduler: load and check --config (with --set), print the checked config and "
            "exit (0: valid, 1: invalid, the reason on stderr); starts nothing");
DEFINE_int32(num_servers, 1, "scheduler: number of parameter servers in the job");
DEFINE_int32(num_workers, 1, "scheduler: number of workers in the job");
DEFINE_string(run_dir, ".",
              "scheduler: directory for scheduler.addr, cluster.json, progress, results");
DEFINE_bool(resume, false,
            "scheduler: continue from the newest intact checkpoint in the checkpoint directory "
            "(start afresh when there is none)");
DEFINE_int32(restarts, 0,
             "scheduler: the number of earlier attempts of this job (the launcher's restarts), "
             "exported as the metric mtps_job_restarts");
DEFINE_string(scheduler, "", "server/worker: the scheduler's endpoint, tcp://HOST:PORT");
DEFINE_int32(rank, -1, "server/worker: rank to ask for (-1: any)");
DEFINE_string(host, "127.0.0.1",
              "address to bind and to advertise to peers (--bind and --advertise override it)");
DEFINE_string(bind, "", "address to bind, e.g. 0.0.0.0 (default: --host)");
DEFINE_string(advertise, "", "address peers are told to connect to (default: --host)");
DEFINE_int32(port, 0, "port to bind (0: any free port)");
DEFINE_int32(register_timeout_ms, 600000,
             "server/worker: deadline for joining the job (the scheduler answers earlier "
             "when its own cluster.register_timeout_ms passes)");
DEFINE_int32(zmq_io_threads, 1, "ZeroMQ I/O threads of this process");
DEFINE_string(keys, "",
              "CURVE on every socket: the job's key dir (RUN_DIR/keys, written by mtps-launch "
              "--secure), holding this node's NAME.key and public.keys");
DEFINE_string(generate_keys, "",
              "write CURVE key pairs for the scheduler, --num_servers servers and --num_workers "
              "workers into this dir (created owner-only), then exit");
DEFINE_bool(exit_with_parent, false, "die when the parent process dies (set by the launcher)");
DEFINE_bool(new_session, false,
            "lead a new session and process group, and print {\"node\": {\"pid\", \"pgid\", "
            "\"host\"}} on stdout (set by mtps-launch for nodes on other hosts)");
DEFINE_bool(exit_on_stdin_eof, false,
            "exit when stdin reaches its end: the launcher's connection closed (set by "
            "mtps-launch for nodes on other hosts)");
DEFINE_bool(results_to_stdout, false,
            "scheduler: also report every result file written (cluster.json, progress.jsonl, "
            "summary.json...) as JSON lines on stdout, for a launcher on another host");
DEFINE_int32(compute_threads, 0,
             "worker: threads of the towers' matrix products when the config's "
             "train.compute_threads is 0; 0: the cores this process may run on over "
             "--host_processes (at least 1)");
DEFINE_int32(host_processes, 1,
             "worker: the job's servers and workers on this host (the launcher passes it), "
             "for --compute_threads=0");
DEFINE_string(job_id, "",
              "the launch this node belongs to (set by mtps-launch; logged, and how it finds "
              "the job's processes on a host)");

namespace {

std::vector<std::string> SplitOverrides(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(';', start);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(start, end - start);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

// Exit codes: 0 success; 1 a failure a restart may cure (a lost peer, a
// deadline, an I/O error); 3 a permanent one that would fail again the same
// way (a bad config or data line, a corrupt file), which the launcher does
// not restart; 2 bad flags.
constexpr int kExitFailed = 1;
constexpr int kExitPermanent = 3;

int Fail(const mtps::Status& s, const char* what) {
  LOG(ERROR) << what << ": " << s;
  std::fprintf(stderr, "mtps-node: %s: %s\n", what, s.ToString().c_str());
  const mtps::StatusCode c = s.code();
  const bool permanent = c == mtps::StatusCode::kInvalidArgument ||
                         c == mtps::StatusCode::kNotFound || c == mtps::StatusCode::kCorruption ||
                         c == mtps::StatusCode::kPermissionDenied;
  return permanent ? kExitPermanent : kExitFailed;
}

// Every library's config rules: the data readers', the model kinds', the
// tables' and the server's (the train, cluster and eval rules are
// LoadConfig's own).
// The network's rules (cluster.faults): the net library knows no
// ConfigProblems, so its (field, why) pairs are added here.
void CheckNetworkConfig(const mtps::config::Config& config, mtps::ConfigProblems* problems) {
  for (const auto& [field, why] :
       mtps::CheckFaultConfig(config.cluster().faults(), "cluster.faults")) {
    problems->Add(field, why);
  }
}

std::vector<mtps::ConfigCheck> ConfigChecks() {
  return {mtps::CheckDataConfig, mtps::CheckModelConfig, mtps::CheckTableConfig,
          mtps::CheckServerConfig, CheckNetworkConfig};
}

// Every process's transport: ZeroMQ behind the fault injector, which passes
// everything through until configured from cluster.faults.
// With --keys, CURVE on every socket: the node's keys are loaded and the
// context's ZAP handler started (into *zap, which must outlive the transport).
mtps::StatusOr<std::unique_ptr<mtps::FaultInjectingTransport>> MakeTransport(
    zmq::context_t* context, mtps::wire::Role role, int rank,
    std::unique_ptr<mtps::ZapHandler>* zap) {
  auto zmq_transport = std::make_unique<mtps::ZmqTransport>(context);
  if (!FLAGS_keys.empty()) {
    if (role != mtps::wire::SCHEDULER && rank < 0) {
      return mtps::Status::InvalidArgument("--keys needs --rank: a node's key is its rank's");
    }
    MTPS_ASSIGN_OR_RETURN(mtps::CurveKeys keys,
                          mtps::LoadCurveKeys(FLAGS_keys, mtps::CurveNodeName(role, rank)));
    try {
      *zap = std::make_unique<mtps::ZapHandler>(context, keys);
    } catch (const zmq::error_t& e) {
      return mtps::Status::Unavailable(std::string("cannot start the ZAP handler: ") + e.what());
    }
    zmq_transport->EnableCurve(std::move(keys));
  }
  return std::make_unique<mtps::FaultInjectingTransport>(std::move(zmq_transport));
}

std::string BindHost() { return FLAGS_bind.empty() ? FLAGS_host : FLAGS_bind; }
std::string AdvertiseHost() { return FLAGS_advertise.empty() ? FLAGS_host : FLAGS_advertise; }

// --new_session: this process leads its own session (so its own process
// group: the launcher signals the group) and says so on stdout.
bool StartSession() {
  if (setsid() < 0 && getpgrp() != getpid()) {
    std::fprintf(stderr, "mtps-node: cannot start a new session: %s\n", std::strerror(errno));
    return false;
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  mtps::Json node;
  node["pid"] = static_cast<int64_t>(getpid());
  node["pgid"] = static_cast<int64_t>(getpgrp());
  node["host"] = std::string(host);
  mtps::Json record;
  record["node"] = std::move(node);
  std::printf("%s\n", mtps::JsonText(record, -1).c_str());
  std::fflush(stdout);
  return true;
}

// --exit_on_stdin_eof: a thread that reads stdin (the launcher never writes
// to it) and ends the process when it closes — the launcher died, or its ssh
// connection dropped — so no node outlives its launcher on a remote host.
void ExitOnStdinEof() {
  std::thread([] {
    char buffer[256];
    for (;;) {
      ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      std::fprintf(stderr, "mtps-node: the launcher's connection closed (stdin %s); exiting\n",
                   n == 0 ? "at its end" : std::strerror(errno));
      std::fflush(stderr);
      _exit(kExitFailed);
    }
  }).detach();
}

int GenerateKeys() {
  std::vector<std::string> names = {mtps::CurveNodeName(mtps::wire::SCHEDULER, 0)};
  for (int r = 0; r < FLAGS_num_servers; ++r) {
    names.push_back(mtps::CurveNodeName(mtps::wire::SERVER, r));
  }
  for (int r = 0; r < FLAGS_num_workers; ++r) {
    names.push_back(mtps::CurveNodeName(mtps::wire::WORKER, r));
  }
  mtps::Status s = mtps::WriteCurveKeys(FLAGS_generate_keys, names);
  if (!s.ok()) return Fail(s, "cannot write the keys");
  return 0;
}

int RunScheduler(zmq::context_t* context, int signal_fd) {
  if (FLAGS_config.empty())
    return Fail(mtps::Status::InvalidArgument("--config is required"), "scheduler");
  auto config = mtps::LoadConfig(FLAGS_config, SplitOverrides(FLAGS_set), ConfigChecks());
  if (!config.ok()) {
    const int rc = Fail(config.status(), "cannot load the config");
    return FLAGS_check_config ? 1 : rc;  // --check_config: 1 means invalid
  }
  if (FLAGS_check_config) {
    std::fputs(mtps::ConfigToText(*config).c_str(), stdout);
    return 0;
  }
  mtps::SchedulerOptions o;
  o.config = std::move(config).value();
  o.num_servers = FLAGS_num_servers;
  o.num_workers = FLAGS_num_workers;
  o.host = BindHost();
  o.advertise_host = AdvertiseHost();
  o.port = FLAGS_port;
  o.run_dir = FLAGS_run_dir;
  if (FLAGS_results_to_stdout) o.result_stream = stdout;
  o.resume = FLAGS_resume;
  o.signal_fd = signal_fd;
  o.restarts = FLAGS_restarts;
  if (o.config.cluster().curve() != !FLAGS_keys.empty()) {
    return Fail(mtps::Status::InvalidArgument(
                    o.config.cluster().curve()
                        ? "cluster.curve is true but no --keys were given (mtps-launch --secure "
                          "writes and passes them)"
                        : "--keys were given but cluster.curve is false"),
                "scheduler cannot start");
  }
  std::unique_ptr<mtps::ZapHandler> zap;
  auto made = MakeTransport(context, mtps::wire::SCHEDULER, 0, &zap);
  if (!made.ok()) return Fail(made.status(), "scheduler cannot start");
  auto transport = std::move(made).value();
  transport->Configure(mtps::FaultOptionsFor(o.config.cluster().faults(), mtps::wire::SCHEDULER),
                       mtps::kSchedulerNodeId);
  mtps::Scheduler scheduler(std::move(transport), std::move(o));
  mtps::Status s = scheduler.Start();
  if (!s.ok()) return Fail(s, "scheduler cannot start");
  s = scheduler.Run();
  if (!s.ok()) return Fail(s, "job failed");
  return 0;
}

// The towers' threads of a worker when the config leaves train.compute_threads
// at 0: --compute_threads, else this process's share of the cores it may run
// on (its affinity mask: taskset, cgroups' cpusets and Slurm's binding
// narrow it) among the job's --host_processes processes on this host.
int DefaultComputeThreads() {
  if (FLAGS_compute_threads > 0) return FLAGS_compute_threads;
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cores = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  return std::max(1, cores / std::max(1, FLAGS_host_processes));
}

int RunMember(zmq::context_t* context, mtps::wire::Role role) {
  if (FLAGS_scheduler.empty()) {
    return Fail(mtps::Status::InvalidArgument("--scheduler is required"), "cannot join");
  }
  mtps::MemberOptions o;
  o.role = role;
  o.requested_rank = FLAGS_rank;
  o.host = BindHost();
  o.advertise_host = AdvertiseHost();
  o.port = FLAGS_port;
  o.scheduler_endpoint = FLAGS_scheduler;
  o.register_timeout_ms = FLAGS_register_timeout_ms;
  std::unique_ptr<mtps::ZapHandler> zap;
  auto made = MakeTransport(context, role, FLAGS_rank, &zap);
  if (!made.ok()) return Fail(made.status(), "cannot join the job");
  auto transport = std::move(made).value();
  mtps::FaultInjectingTransport* faults = transport.get();
  mtps::ClusterMember member(std::move(transport), o);
  mtps::Status s = member.Join();
  if (!s.ok()) return Fail(s, "cannot join the job");
  // Faults start after registration, drawn per node.
  faults->Configure(mtps::FaultOptionsFor(member.config().cluster().faults(), role),
                    static_cast<uint64_t>(member.self().node_id()));
  if (role == mtps::wire::SERVER) {
    auto server = mtps::ParameterServer::Create(&member);
    s = server.ok() ? server.value()->Run() : server.status();
  } else {
    mtps::Trainer trainer(&member, DefaultComputeThreads());
    s = trainer.Run();
  }
  member.Leave();
  if (!s.ok()) return Fail(s, role == mtps::wire::SERVER ? "server failed" : "worker failed");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("one process of an mtps job: --role=scheduler|server|worker");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_exit_with_parent) {
    // The launcher may die without cleaning up (SIGKILL); take us with it.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) return 1;  // the parent is already gone
  }
  if (FLAGS_new_session && !StartSession()) return 1;
  if (FLAGS_exit_on_stdin_eof) ExitOnStdinEof();
  if (!FLAGS_job_id.empty()) LOG(INFO) << "job " << FLAGS_job_id << ", role " << FLAGS_role;
  if (FLAGS_restarts < 0) {
    std::fprintf(stderr, "mtps-node: --restarts must be >= 0 (got %d)\n", FLAGS_restarts);
    return 2;
  }
  if (FLAGS_zmq_io_threads < 1) {
    std::fprintf(stderr, "mtps-node: --zmq_io_threads must be >= 1 (got %d)\n",
                 FLAGS_zmq_io_threads);
    return 2;
  }
  // The scheduler reads SIGUSR1 (checkpoint now), SIGTERM and SIGINT
  // (checkpoint, then stop) from a signalfd in its loop. Blocked before the
  // ZeroMQ context starts its threads, which inherit the mask.
  int signal_fd = -1;
  if (FLAGS_role == "scheduler" && !FLAGS_check_config) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &signals, nullptr) == 0) {
      signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    }
    if (signal_fd < 0) {
      std::fprintf(stderr, "mtps-node: cannot read signals through a signalfd\n");
      return 1;
    }
  }
  if (!FLAGS_generate_keys.empty()) return GenerateKeys();
  zmq::context_t context(FLAGS_zmq_io_threads);
  int rc;
  if (FLAGS_role == "scheduler") {
    rc = RunScheduler(&context, signal_fd);
  } else if (FLAGS_role == "server") {
    rc = RunMember(&context, mtps::wire::SERVER);
  } else if (FLAGS_role == "worker") {
    rc = RunMember(&context, mtps::wire::WORKER);
  } else {
    std::fprintf(stderr, "mtps-node: --role must be scheduler, server or worker (got '%s')\n",
                 FLAGS_role.c_str());
    rc = 2;
  }
  return rc;
}
