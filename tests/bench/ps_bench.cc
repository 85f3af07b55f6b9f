// ps_bench: how fast the parameter server moves sparse rows, against what the
// same table does in-process.
//
// For each (servers, dim, keys per request) it measures, over real ZeroMQ TCP
// loopback to real ParameterServers (threads of this process, one ZeroMQ
// context each, like separate mtps-node processes):
//   * pull and push (Adagrad) throughput with --inflight requests in flight,
//     each request sliced per server the way KvClient slices it;
//   * p50/p99 latency of one request at a time, through KvClient itself;
//   * the in-process gather (SparseTable::Pull) and update (SparseTable::Push)
//     throughput of a table built the same way from the same keys, on the same
//     key streams, and the ratio network / in-process.
// Then the table at scale: bytes per row against the raw 8 + 2 * 4 * dim bytes,
// and in-process pull throughput, at --scale_rows rows. And what each of the
// table's features costs (section `features`): in-process pull and push of
// tables that differ only in admission, eviction by age or the row cap.
// And what the memory system allows (section `floor`): the table beside its
// own layout on bare arrays (the same two dependent accesses per key, nothing
// else) and beside one access per key (BareLayout, tests/bench/bare_layout.h).
// Keys are drawn uniformly from a universe of --universe keys; the tables are
// populated with the whole universe first, so pulls and pushes hit existing
// rows. Prints Markdown tables to stdout (progress on stderr). A benchmark,
// not a test: run by hand; README.md "## Benchmarks" holds its results.
//
//   build/bin/ps_bench [--keys_per_request 4096,32768] [--dims 8,16,64] [--servers 1,2]
//       [--universe 10000000] [--inflight 8] [--seconds 3]
//       [--scale_rows 1000000,10000000,100000000] [--features_universe 2000000]
//       [--features_evict_after 100000]
//       [--sections network,latency,scale,features,floor]
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "common/base/hash.h"
#include "common/base/status.h"
#include "common/cluster/partition.h"
#include "common/net/rpc.h"
#include "ps/server/server_config.h"
#include "ps/table/sparse_table.h"
#include "tests/bench/bare_layout.h"
#include "tests/bench/bench_cluster.h"
#include "worker/client/kv_client.h"

DEFINE_string(keys_per_request, "4096,32768", "keys per request, comma-separated list");
DEFINE_string(dims, "8,16,64", "embedding dims, comma-separated list");
DEFINE_string(servers, "1,2", "server counts, comma-separated list");
DEFINE_int64(universe, 10000000, "keys are drawn uniformly from this many distinct keys");
DEFINE_int32(shard_threads, 1, "shard threads per server (server.shard_threads)");
DEFINE_int32(replicas, 0,
             "server.replicas: 1 backs every partition up on the next server (needs --servers "
             ">= 2; pushes are acknowledged once the backup applied them)");
DEFINE_bool(curve, false, "CURVE on every socket (cluster.curve: encrypted, authenticated links)");
DEFINE_int32(inflight, 8, "requests in flight in the throughput runs");
DEFINE_double(seconds, 3, "seconds per measurement (each throughput and latency run)");
DEFINE_int32(rounds, 5,
             "throughput runs are split into this many rounds alternating in-process and network");
DEFINE_string(scale_rows, "1000000,10000000,100000000",
              "table-scale section: row counts, comma-separated list");
DEFINE_int32(scale_dim, 16, "table-scale section: embedding dim");
DEFINE_int32(scale_keys_per_request, 4096, "table-scale section: keys per Pull call");
DEFINE_int64(key_pool, int64_t{1} << 24,
             "keys drawn in advance per stream; requests take consecutive windows of it");
DEFINE_double(memory_margin_gib, 2,
              "a table size is skipped unless its estimated bytes plus this fit in MemAvailable");
DEFINE_int64(features_universe, 2000000,
             "features section: rows of each table (and the keys' universe)");
DEFINE_int64(features_evict_after, 100000,
             "features section: evict_after_steps of the eviction case (no row gets that old "
             "during the run)");
DEFINE_string(sections, "network,latency,scale",
              "which sections to run: network, latency, scale, features, floor");
DEFINE_uint64(seed, 1, "seed of the key streams");

namespace mtps {
namespace bench {
namespace {

constexpr int kRequestTimeoutMs = 60000;
constexpr int kPopulateKeysPerRequest = 32768;
constexpr int64_t kMaxRequestsPerRun = int64_t{1} << 32;  // a bound besides the clock
constexpr size_t kMaxLatencySamples = 200000;
constexpr uint64_t kKeySalt = 0x6b657973ULL;

struct BenchOptions {
  std::vector<int64_t> keys_per_request, dims, servers, scale_rows;
  int64_t universe = 0;
  int inflight = 0;
  int shard_threads = 1;
  int replicas = 0;
  bool curve = false;
  double seconds = 0;
  int rounds = 1;
  int scale_dim = 0;
  int scale_keys_per_request = 0;
  int64_t key_pool = 0;
  double memory_margin_gib = 0;
  int64_t features_universe = 0;
  int64_t features_evict_after = 0;
  std::set<std::string> sections;
  uint64_t seed = 1;
};

StatusOr<std::vector<int64_t>> ParsePositiveList(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0) {
      return Status::InvalidArgument("--" + flag + ": '" + item + "' is not a positive integer");
    }
    out.push_back(v);
  }
  if (out.empty()) return Status::InvalidArgument("--" + flag + " is empty");
  return out;
}

StatusOr<BenchOptions> OptionsFromFlags() {
  BenchOptions o;
  MTPS_ASSIGN_OR_RETURN(o.keys_per_request,
                        ParsePositiveList("keys_per_request", FLAGS_keys_per_request));
  MTPS_ASSIGN_OR_RETURN(o.dims, ParsePositiveList("dims", FLAGS_dims));
  MTPS_ASSIGN_OR_RETURN(o.servers, ParsePositiveList("servers", FLAGS_servers));
  MTPS_ASSIGN_OR_RETURN(o.scale_rows, ParsePositiveList("scale_rows", FLAGS_scale_rows));
  o.universe = FLAGS_universe;
  o.inflight = FLAGS_inflight;
  o.shard_threads = FLAGS_shard_threads;
  if (o.shard_threads < 1 || o.shard_threads > kMaxShardThreads) {
    return Status::InvalidArgument("--shard_threads must be in [1, " +
                                   std::to_string(kMaxShardThreads) + "]");
  }
  o.replicas = FLAGS_replicas;
  o.curve = FLAGS_curve;
  if (o.replicas < 0 || o.replicas > 1) return Status::InvalidArgument("--replicas must be 0 or 1");
  for (int64_t n : o.servers) {
    if (o.replicas > 0 && n < 2) {
      return Status::InvalidArgument("--replicas 1 needs --servers of at least 2 (got " +
                                     std::to_string(n) + ")");
    }
  }
  o.seconds = FLAGS_seconds;
  o.rounds = FLAGS_rounds;
  o.scale_dim = FLAGS_scale_dim;
  o.scale_keys_per_request = FLAGS_scale_keys_per_request;
  o.key_pool = FLAGS_key_pool;
  o.memory_margin_gib = FLAGS_memory_margin_gib;
  o.seed = FLAGS_seed;
  o.features_universe = FLAGS_features_universe;
  o.features_evict_after = FLAGS_features_evict_after;
  if (o.features_evict_after < 1 || o.features_evict_after >= (int64_t{1} << 31)) {
    return Status::InvalidArgument("--features_evict_after must be in [1, 2^31)");
  }
  std::stringstream ss(FLAGS_sections);
  std::string s;
  while (std::getline(ss, s, ',')) {
    if (s != "network" && s != "latency" && s != "scale" && s != "features" && s != "floor") {
      return Status::InvalidArgument("--sections: unknown section '" + s +
                                     "' (network, latency, scale, features, floor)");
    }
    o.sections.insert(s);
  }
  const int64_t max_k = *std::max_element(o.keys_per_request.begin(), o.keys_per_request.end());
  if (o.sections.count("features") > 0 && o.features_universe < 2 * max_k) {
    return Status::InvalidArgument(
        "--features_universe must be at least twice the largest --keys_per_request");
  }
  if (o.universe <= 0) return Status::InvalidArgument("--universe must be positive");
  if (o.inflight <= 0 || o.inflight > 1024) {
    return Status::InvalidArgument("--inflight must be in [1, 1024]");
  }
  if (!(o.seconds > 0) || o.seconds > 3600) {
    return Status::InvalidArgument("--seconds must be in (0, 3600]");
  }
  if (o.rounds < 1 || o.rounds > 1000)
    return Status::InvalidArgument("--rounds must be in [1, 1000]");
  if (o.scale_dim <= 0 || o.scale_keys_per_request <= 0) {
    return Status::InvalidArgument("--scale_dim and --scale_keys_per_request must be positive");
  }
  if (o.key_pool < std::max<int64_t>(max_k, o.scale_keys_per_request)) {
    return Status::InvalidArgument("--key_pool must hold at least one request of keys");
  }
  for (int64_t k : o.keys_per_request) {
    if (max_k % k != 0) {
      return Status::InvalidArgument("--keys_per_request: " + std::to_string(k) +
                                     " does not divide the largest, " + std::to_string(max_k) +
                                     " (requests of unique keys are windows of one key pool)");
    }
  }
  for (int64_t rows : o.scale_rows) {
    if (rows < o.scale_keys_per_request) {
      return Status::InvalidArgument("--scale_rows: " + std::to_string(rows) +
                                     " rows cannot fill a request of " +
                                     std::to_string(o.scale_keys_per_request) + " unique keys");
    }
  }
  if (o.universe < max_k) {
    return Status::InvalidArgument("--universe must hold at least one request of unique keys");
  }
  for (int64_t d : o.dims) {
    if (d > 4096) return Status::InvalidArgument("--dims: " + std::to_string(d) + " is too wide");
  }
  if (*std::max_element(o.servers.begin(), o.servers.end()) > 64)
    return Status::InvalidArgument("--servers: at most 64");
  return o;
}

// The key of universe element i: distinct for distinct i (Mix64 is a
// bijection), spread like the hashed feature keys of real data.
uint64_t KeyOf(uint64_t i) { return Mix64(i ^ kKeySalt); }

// A stream of requests: consecutive windows of a pool of keys drawn uniformly
// from [0, universe) in advance, so the network and the in-process runs see
// the same keys in the same order and drawing them costs neither. Keys are
// distinct within each aligned block of `block` keys (a repeat is drawn
// again), so a request of k keys, k dividing `block`, has k unique keys, as a
// worker's de-duplicated batch does. universe >= block.
class KeyStream {
 public:
  KeyStream(size_t pool, uint64_t universe, uint64_t seed, size_t block) : keys_(pool) {
    CHECK_GE(universe, block);
    std::unordered_set<uint64_t> seen;
    uint64_t draw = 0;
    for (size_t i = 0; i < pool; ++i) {
      if (i % block == 0) seen.clear();
      uint64_t index;
      do {
        const uint64_t r = Mix64(seed * 0x9e3779b97f4a7c15ULL + draw++);
        index = static_cast<uint64_t>((static_cast<unsigned __int128>(r) * universe) >> 64);
      } while (!seen.insert(index).second);
      keys_[i] = KeyOf(index);
    }
  }
  // Request i of k keys (wraps around the pool).
  const uint64_t* Window(int64_t i, size_t k) const {
    const size_t windows = keys_.size() / k;
    return keys_.data() + static_cast<size_t>(i % static_cast<int64_t>(windows)) * k;
  }

 private:
  std::vector<uint64_t> keys_;
};

// Fills *keys with the keys of request i of a run; false when there is none.
using RequestSource = std::function<bool(int64_t i, std::vector<uint64_t>* keys)>;

// Requests of k keys: consecutive windows of `stream` from window `first` on.
RequestSource StreamSource(const KeyStream* stream, int64_t first, size_t k) {
  return [stream, first, k](int64_t i, std::vector<uint64_t>* keys) {
    const uint64_t* w = stream->Window(first + i, k);
    keys->assign(w, w + k);
    return true;
  };
}

struct Rate {
  int64_t keys = 0;
  int64_t requests = 0;
  double seconds = 0;
  double KeysPerSecond() const { return seconds > 0 ? keys / seconds : 0; }
};

// In-process: runs op(keys) on requests source(0), source(1), ... for
// `seconds` (or until the source ends) and counts the keys.
Rate TimeLoop(double seconds, const RequestSource& source,
              const std::function<void(const std::vector<uint64_t>&)>& op) {
  Rate r;
  std::vector<uint64_t> keys;
  const auto start = SteadyClock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (r.requests < kMaxRequestsPerRun && source(r.requests, &keys)) {
    op(keys);
    r.keys += static_cast<int64_t>(keys.size());
    ++r.requests;
    if (SteadyClock::now() >= end) break;
  }
  r.seconds = SecondsSince(start);
  return r;
}

// CPU seconds used so far by this process's threads, by role, read from
// /proc/self/task/*/stat (clock-tick resolution). The servers' receive
// threads and the scheduler are threads named by LocalCluster, the servers'
// shard threads name themselves ps-shard-N, ZeroMQ names its I/O threads
// ZMQbg/...; everything else is the client (this benchmark's main thread).
struct CpuTimes {
  double client = 0, servers = 0, shards = 0, zmq = 0, other = 0;
  double total() const { return client + servers + shards + zmq + other; }
  CpuTimes operator-(const CpuTimes& o) const {
    return {client - o.client, servers - o.servers, shards - o.shards, zmq - o.zmq,
            other - o.other};
  }
  CpuTimes& operator+=(const CpuTimes& o) {
    client += o.client, servers += o.servers, shards += o.shards, zmq += o.zmq, other += o.other;
    return *this;
  }
};

CpuTimes ReadCpuTimes() {
  CpuTimes t;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(entry.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;  // the thread just ended
    const size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    const std::string comm = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14, 15: utime, stime
      if (i == 14) utime = std::strtod(field.c_str(), nullptr);
      if (i == 15) stime = std::strtod(field.c_str(), nullptr);
    }
    const double seconds = (utime + stime) / tick;
    if (comm.rfind("ps-server", 0) == 0) {
      t.servers += seconds;
    } else if (comm.rfind("ps-shard", 0) == 0) {
      t.shards += seconds;
    } else if (comm.rfind("ZMQbg", 0) == 0) {
      t.zmq += seconds;
    } else if (comm.rfind("ps-scheduler", 0) == 0) {
      t.other += seconds;
    } else {
      t.client += seconds;
    }
  }
  return t;
}

// Keys moved, wall time and CPU time of a measurement, summed over rounds.
struct Measured {
  int64_t keys = 0;
  double seconds = 0;
  CpuTimes cpu;
  double KeysPerSecond() const { return seconds > 0 ? keys / seconds : 0; }
  double NsPerKey(double cpu_seconds) const { return keys > 0 ? cpu_seconds * 1e9 / keys : 0; }
  void Add(const Rate& r, const CpuTimes& c) {
    keys += r.keys;
    seconds += r.seconds;
    cpu += c;
  }
};

// Runs fn and returns its Rate with the CPU time it took.
template <typename Fn>
StatusOr<std::pair<Rate, CpuTimes>> WithCpu(Fn fn) {
  const CpuTimes before = ReadCpuTimes();
  StatusOr<Rate> r = fn();
  if (!r.ok()) return r.status();
  return std::make_pair(r.value(), ReadCpuTimes() - before);
}

// Pulls through KvClient with `inflight` pulls in flight: a ring of
// StartPull/FinishPull (the trainer's prefetch path), answers taken in order.
StatusOr<Rate> NetworkPull(KvClient* kv, int inflight, const RequestSource& source, size_t max_k,
                           int dim, double seconds) {
  std::vector<PendingPull> ring(static_cast<size_t>(inflight));
  std::vector<size_t> sizes(static_cast<size_t>(inflight));
  std::vector<uint64_t> keys;
  std::vector<float> emb(max_k * static_cast<size_t>(dim));
  bool source_done = false;
  Rate r;
  const auto start = SteadyClock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  int64_t issued = 0, finished = 0;
  auto start_next = [&]() -> Status {
    if (!source(issued, &keys)) {
      source_done = true;
      return Status::OK();
    }
    if (keys.size() > max_k) return Status::Internal("request larger than max_k");
    sizes[static_cast<size_t>(issued % inflight)] = keys.size();
    MTPS_RETURN_IF_ERROR(kv->StartPull(keys, /*create_missing=*/true, /*want_dense=*/false,
                                       &ring[static_cast<size_t>(issued % inflight)]));
    ++issued;
    return Status::OK();
  };
  for (int i = 0; i < inflight && !source_done; ++i) MTPS_RETURN_IF_ERROR(start_next());
  while (finished < issued) {
    const size_t slot = static_cast<size_t>(finished % inflight);
    MTPS_RETURN_IF_ERROR(kv->FinishPull(&ring[slot], emb.data(), nullptr));
    ++finished;
    r.keys += static_cast<int64_t>(sizes[slot]);
    if (!source_done && SteadyClock::now() < end && issued < kMaxRequestsPerRun) {
      MTPS_RETURN_IF_ERROR(start_next());
    }
  }
  r.requests = finished;
  r.seconds = SecondsSince(start);
  return r;
}

// Pushes through KvClient::Push with exactly `inflight` pushes unanswered at
// most (counted with acked_pushes(); the client's own window, which counts a
// dense push beside every sparse one, is set wide enough not to interfere),
// then Flush.
StatusOr<Rate> NetworkPush(KvClient* kv, Rpc* rpc, int inflight, const RequestSource& source,
                           const float* grads, double seconds) {
  std::vector<uint64_t> keys;
  Rate r;
  const int64_t acked_before = kv->acked_pushes();
  const auto start = SteadyClock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  int64_t sent = 0;
  while (SteadyClock::now() < end && sent < kMaxRequestsPerRun) {
    const Deadline deadline = Deadline::In(kRequestTimeoutMs);
    while (sent - (kv->acked_pushes() - acked_before) >= inflight) {
      if (deadline.Expired()) return Status::DeadlineExceeded("pushes unanswered for 60 s");
      rpc->Poll(deadline, /*return_after_one=*/true);
    }
    if (!source(sent, &keys)) break;
    MTPS_RETURN_IF_ERROR(kv->Push(keys, grads, nullptr));
    ++sent;
    r.keys += static_cast<int64_t>(keys.size());
  }
  MTPS_RETURN_IF_ERROR(kv->Flush());
  r.requests = sent;
  r.seconds = SecondsSince(start);
  return r;
}

// Per-key gradients for n keys: small, varied, finite.
std::vector<float> MakeGrads(size_t n, size_t dim) {
  std::vector<float> g(n * dim);
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = 1e-3f * static_cast<float>(static_cast<int>(Mix64(i) % 2001) - 1000) / 1000.0f;
  }
  return g;
}

SparseTableOptions TableOptions(int dim) {
  SparseTableOptions o;
  o.dim = dim;
  o.init_scale = 0.01f;
  o.seed = 1;
  // The optimizer is left at its defaults, Adagrad (learning rate 0.05,
  // initial accumulator 0.1), as in the job config below.
  return o;
}

config::Config JobConfig(int dim, int shard_threads, int replicas) {
  config::Config c;
  c.mutable_model()->set_embedding_dim(dim);
  c.mutable_model()->mutable_mmoe();
  c.mutable_train()->set_seed(1);
  c.mutable_server()->set_embedding_init_scale(0.01f);
  c.mutable_server()->set_shard_threads(shard_threads);
  c.mutable_server()->set_replicas(replicas);
  // Generous liveness: the machine is shared and a loaded core can stall a
  // thread for a while; nothing here is about failure detection.
  c.mutable_cluster()->set_heartbeat_interval_ms(500);
  c.mutable_cluster()->set_heartbeat_timeout_ms(60000);
  c.mutable_cluster()->set_register_timeout_ms(30000);
  c.mutable_cluster()->set_barrier_timeout_ms(60000);
  c.mutable_cluster()->set_request_timeout_ms(kRequestTimeoutMs);
  return c;
}

// Requests of up to kPopulateKeysPerRequest keys covering universe elements
// 0..universe-1 in order.
RequestSource PopulateSource(int64_t universe) {
  return [universe](int64_t i, std::vector<uint64_t>* keys) {
    const int64_t begin = i * kPopulateKeysPerRequest;
    if (begin >= universe) return false;
    const int64_t end = std::min<int64_t>(universe, begin + kPopulateKeysPerRequest);
    keys->resize(static_cast<size_t>(end - begin));
    for (int64_t j = begin; j < end; ++j) (*keys)[j - begin] = KeyOf(static_cast<uint64_t>(j));
    return true;
  };
}

// Fills `table` with universe elements 0..universe-1, in the order the
// network populate sends them; returns the seconds it took.
double PopulateTable(SparseTable* table, int64_t universe) {
  std::vector<float> out(static_cast<size_t>(kPopulateKeysPerRequest) * table->dim());
  return TimeLoop(1e9, PopulateSource(universe),
                  [&](const std::vector<uint64_t>& keys) {
                    table->Pull(keys.data(), keys.size(), /*create_missing=*/true, out.data());
                  })
      .seconds;
}

int64_t ReadMemInfoKiB(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  int64_t kib = -1;
  std::string unit;
  while (in >> name >> kib) {
    std::getline(in, unit);
    if (name == field + ":") return kib;
  }
  return -1;
}

int64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return -1;
  return resident * sysconf(_SC_PAGESIZE);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}
std::string Millions(double v) { return Fixed(v / 1e6, 2) + " M"; }
std::string WithCommas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// Nearest-rank percentile of sorted samples.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1];
}

struct NetworkRow {
  int servers, dim, k;
  int64_t rows;
  double populate_seconds;
  Measured net_pull, net_push, local_pull, local_push;
};
struct LatencyRow {
  int servers, dim, k;
  std::vector<double> pull_ms, push_ms;
};
// One (dim, keys per request) of the features section: per case, the
// in-process pull and push rates.
struct FeatureRow {
  int dim, k;
  std::vector<std::string> cases;
  std::vector<Rate> pull, push;
  // Rows the table created and evicted during the pulls and the pushes.
  std::vector<int64_t> pull_created, push_created, evicted;
};
// One (dim, keys per request) of the floor section: in-process rates of the
// table, of its layout on bare arrays, and of one access per key.
struct FloorRow {
  int dim, k;
  Rate pull[5], push[5];  // table, bare layout, one access, slots, tagged slots (if built)
  bool with_inline = false;
};
struct ScaleRow {
  int64_t rows;
  bool skipped = false;
  std::string why;
  double memory_bytes = 0, resident_bytes = 0, populate_seconds = 0;
  Rate pull;
};

class Bench {
 public:
  explicit Bench(BenchOptions o) : o_(std::move(o)) {}

  Status Run() {
    const bool network = o_.sections.count("network") > 0;
    const bool latency = o_.sections.count("latency") > 0;
    if (network || latency) {
      KeyStream stream(static_cast<size_t>(o_.key_pool), static_cast<uint64_t>(o_.universe),
                       o_.seed,
                       static_cast<size_t>(*std::max_element(o_.keys_per_request.begin(),
                                                             o_.keys_per_request.end())));
      for (int64_t dim : o_.dims) {
        for (int64_t servers : o_.servers) {
          MTPS_RETURN_IF_ERROR(RunCluster(static_cast<int>(servers), static_cast<int>(dim), stream,
                                          network, latency));
        }
      }
    }
    if (o_.sections.count("scale") > 0) {
      for (int64_t rows : o_.scale_rows) MTPS_RETURN_IF_ERROR(RunScale(rows));
    }
    if (o_.sections.count("features") > 0) {
      for (int64_t dim : o_.dims) MTPS_RETURN_IF_ERROR(RunFeatures(static_cast<int>(dim)));
    }
    if (o_.sections.count("floor") > 0) {
      for (int64_t dim : o_.dims) MTPS_RETURN_IF_ERROR(RunFloor(static_cast<int>(dim)));
    }
    return Status::OK();
  }

  void Print() const {
    if (!network_rows_.empty()) PrintNetwork();
    if (!latency_rows_.empty()) PrintLatency();
    if (!scale_rows_.empty()) PrintScale();
    if (!feature_rows_.empty()) PrintFeatures();
    if (!floor_rows_.empty()) PrintFloor();
  }

 private:
  // One (servers, dim): the in-process table and the cluster's tables are
  // populated with the same keys in the same order; then, per request size,
  // rounds alternate in-process and network runs over the same stretch of the
  // key stream, so both see the same keys and, on average, the same load
  // from whatever else runs on the machine.
  Status RunCluster(int servers, int dim, const KeyStream& stream, bool network, bool latency) {
    const size_t max_k = static_cast<size_t>(
        *std::max_element(o_.keys_per_request.begin(), o_.keys_per_request.end()));
    const std::vector<float> grads = MakeGrads(max_k, static_cast<size_t>(dim));
    std::unique_ptr<SparseTable> table;
    if (network) {
      table = std::make_unique<SparseTable>(TableOptions(dim));
      const double populate = PopulateTable(table.get(), o_.universe);
      fprintf(stderr, "dim %d: in-process table of %zu rows populated in %.1f s\n", dim,
              table->size(), populate);
      if (static_cast<int64_t>(table->size()) != o_.universe) {
        return Status::Internal("the in-process table holds " + std::to_string(table->size()) +
                                " rows, expected " + std::to_string(o_.universe));
      }
    }

    LocalClusterOptions co;
    co.config = JobConfig(dim, o_.shard_threads, o_.replicas);
    co.num_servers = servers;
    co.curve = o_.curve;
    MTPS_ASSIGN_OR_RETURN(std::unique_ptr<LocalCluster> cluster, LocalCluster::Start(co));
    Rpc& rpc = cluster->worker().rpc();
    KvClientOptions ko;
    ko.dim = dim;
    ko.request_timeout_ms = kRequestTimeoutMs;
    ko.max_inflight_pushes = o_.inflight + 1;  // NetworkPush holds the window itself
    KvClient kv(&rpc, cluster->worker().server_ids(), ko);

    MTPS_ASSIGN_OR_RETURN(Rate populated,
                          NetworkPull(&kv, o_.inflight, PopulateSource(o_.universe),
                                      kPopulateKeysPerRequest, dim, /*seconds=*/1e9));
    if (populated.keys != o_.universe) {
      return Status::Internal("populated " + std::to_string(populated.keys) + " of " +
                              std::to_string(o_.universe) + " keys");
    }
    fprintf(stderr, "servers %d dim %d: %" PRId64 " rows populated over the network in %.1f s\n",
            servers, dim, populated.keys, populated.seconds);
    MTPS_RETURN_IF_ERROR(CheckInitialValues(&kv, dim, stream));
    // What the servers must have counted, checked against their own counters.
    int64_t keys_pulled = populated.keys + static_cast<int64_t>(o_.keys_per_request.front());
    int64_t keys_pushed = 0;

    const int rounds = std::max(1, o_.rounds);
    const double slice = o_.seconds / rounds;
    std::vector<uint64_t> scratch;
    std::vector<float> out(max_k * static_cast<size_t>(dim));
    for (int64_t k64 : o_.keys_per_request) {
      const size_t k = static_cast<size_t>(k64);
      if (network) {
        NetworkRow row{servers, dim, static_cast<int>(k), populated.keys, populated.seconds, {}, {},
                       {},      {}};
        // Each round starts where the previous one's longest run stopped.
        int64_t first = 0;
        for (int round = 0; round < rounds; ++round) {
          const RequestSource source = StreamSource(&stream, first, k);
          int64_t longest = 0;
          auto local_pull = WithCpu([&]() -> StatusOr<Rate> {
            return TimeLoop(slice, source, [&](const std::vector<uint64_t>& keys) {
              table->Pull(keys.data(), keys.size(), /*create_missing=*/true, out.data());
            });
          });
          MTPS_RETURN_IF_ERROR(local_pull.status());
          auto net_pull =
              WithCpu([&] { return NetworkPull(&kv, o_.inflight, source, k, dim, slice); });
          MTPS_RETURN_IF_ERROR(net_pull.status());
          auto local_push = WithCpu([&]() -> StatusOr<Rate> {
            return TimeLoop(slice, source, [&](const std::vector<uint64_t>& keys) {
              table->Push(keys.data(), keys.size(), grads.data());
            });
          });
          MTPS_RETURN_IF_ERROR(local_push.status());
          auto net_push = WithCpu(
              [&] { return NetworkPush(&kv, &rpc, o_.inflight, source, grads.data(), slice); });
          MTPS_RETURN_IF_ERROR(net_push.status());
          row.local_pull.Add(local_pull->first, local_pull->second);
          row.net_pull.Add(net_pull->first, net_pull->second);
          row.local_push.Add(local_push->first, local_push->second);
          row.net_push.Add(net_push->first, net_push->second);
          for (const auto* m : {&local_pull, &net_pull, &local_push, &net_push}) {
            longest = std::max(longest, (*m)->first.requests);
          }
          first += longest;
        }
        keys_pulled += row.net_pull.keys;
        keys_pushed += row.net_push.keys;
        fprintf(stderr,
                "  k=%zu: pull %.2f M keys/s network, %.2f M in-process; push %.2f M network, "
                "%.2f M in-process\n",
                k, row.net_pull.KeysPerSecond() / 1e6, row.local_pull.KeysPerSecond() / 1e6,
                row.net_push.KeysPerSecond() / 1e6, row.local_push.KeysPerSecond() / 1e6);
        network_rows_.push_back(row);
      }
      if (latency) {
        LatencyRow row{servers, dim, static_cast<int>(k), {}, {}};
        MTPS_RETURN_IF_ERROR(MeasureLatency(&kv, stream, k, grads, &row));
        keys_pulled += static_cast<int64_t>(row.pull_ms.size() * k);
        keys_pushed += static_cast<int64_t>(row.push_ms.size() * k);
        latency_rows_.push_back(std::move(row));
      }
    }
    table.reset();
    MTPS_RETURN_IF_ERROR(cluster->Finish());
    int64_t served_pulled = 0, served_pushed = 0;
    for (const ParameterServer::Stats& st : cluster->server_stats()) {
      served_pulled += st.keys_pulled;
      served_pushed += st.keys_pushed;
    }
    // Pushes are applied exactly once. A pull the client resent (its answer
    // was late: a loaded machine) may be served twice, which is harmless.
    if (served_pulled < keys_pulled || served_pushed != keys_pushed) {
      return Status::Internal("the servers counted " + std::to_string(served_pulled) +
                              " keys pulled and " + std::to_string(served_pushed) +
                              " pushed, the client " + std::to_string(keys_pulled) + " and " +
                              std::to_string(keys_pushed));
    }
    if (served_pulled > keys_pulled) {
      fprintf(stderr,
              "dim %d: %lld pulled keys served again for %lld resent pulls (the answers were "
              "later than the client's retransmission timeout)\n",
              dim, static_cast<long long>(served_pulled - keys_pulled),
              static_cast<long long>(rpc.resent(wire::PULL_SPARSE)));
    }
    cluster.reset();
    malloc_trim(0);  // give the tables back before the next ones are built
    return Status::OK();
  }

  // Right after populating, before any push: the servers answer exactly the
  // initial values SparseTable defines for the first request's keys
  // (create_missing=false, so nothing is inserted).
  Status CheckInitialValues(KvClient* kv, int dim, const KeyStream& stream) {
    const size_t k = static_cast<size_t>(o_.keys_per_request.front());
    std::vector<uint64_t> keys(stream.Window(0, k), stream.Window(0, k) + k);
    std::vector<float> emb(k * static_cast<size_t>(dim));
    MTPS_RETURN_IF_ERROR(kv->Pull(keys, /*create_missing=*/false, emb.data(), nullptr));
    const SparseTableOptions t = TableOptions(dim);
    for (size_t i = 0; i < k; ++i) {
      for (int j = 0; j < dim; ++j) {
        const float want = InitialValue(t.seed, keys[i], j, t.init_scale);
        if (emb[i * dim + j] != want) {
          return Status::Internal("key " + std::to_string(keys[i]) + " element " +
                                  std::to_string(j) + ": the server answered " +
                                  std::to_string(emb[i * dim + j]) + ", its initial value is " +
                                  std::to_string(want));
        }
      }
    }
    return Status::OK();
  }

  // One request at a time through KvClient: Pull, and Push followed by Flush
  // (so the time includes the server's acknowledgement).
  Status MeasureLatency(KvClient* kv, const KeyStream& stream, size_t k,
                        const std::vector<float>& grads, LatencyRow* row) {
    std::vector<uint64_t> keys;
    std::vector<float> emb(k * static_cast<size_t>(row->dim));
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<double>& samples = pass == 0 ? row->pull_ms : row->push_ms;
      const auto end = SteadyClock::now() + std::chrono::duration<double>(o_.seconds);
      for (int64_t i = 0; samples.size() < kMaxLatencySamples && SteadyClock::now() < end; ++i) {
        const uint64_t* w = stream.Window(i, k);
        keys.assign(w, w + k);
        const auto t0 = SteadyClock::now();
        if (pass == 0) {
          MTPS_RETURN_IF_ERROR(kv->Pull(keys, /*create_missing=*/true, emb.data(), nullptr));
        } else {
          MTPS_RETURN_IF_ERROR(kv->Push(keys, grads.data(), nullptr));
          MTPS_RETURN_IF_ERROR(kv->Flush());
        }
        samples.push_back(SecondsSince(t0) * 1e3);
      }
      std::sort(samples.begin(), samples.end());
    }
    fprintf(stderr, "  latency k=%zu: pull p50 %.3f ms, push p50 %.3f ms\n", k,
            Percentile(row->pull_ms, 0.5), Percentile(row->push_ms, 0.5));
    return Status::OK();
  }

  Status RunScale(int64_t rows) {
    ScaleRow row;
    row.rows = rows;
    const int dim = o_.scale_dim;
    const size_t row_bytes = 2 * static_cast<size_t>(dim) * sizeof(float);
    // The table's sizing rules (ps/table/sparse_table.h): 16-byte index buckets, a
    // power of two of them at most 7/10 full; rows in chunks of a few MiB
    // (counted here as one spare 4 MiB chunk).
    size_t capacity = 16;
    while (capacity * 7 / 10 < static_cast<size_t>(rows)) capacity <<= 1;
    const double estimate = static_cast<double>(
        capacity * 16 + static_cast<size_t>(rows) * row_bytes + (size_t{4} << 20));
    const double available = static_cast<double>(ReadMemInfoKiB("MemAvailable")) * 1024;
    const double needed = estimate + o_.memory_margin_gib * (1 << 30);
    if (available < needed) {
      row.skipped = true;
      row.why = "needs about " + Fixed(needed / (1 << 30), 1) + " GiB (table " +
                Fixed(estimate / (1 << 30), 1) + " GiB + margin), MemAvailable " +
                Fixed(available / (1 << 30), 1) + " GiB";
      fprintf(stderr, "scale %" PRId64 " rows: skipped, %s\n", rows, row.why.c_str());
      scale_rows_.push_back(row);
      return Status::OK();
    }
    {
      // Drawn before the table so its memory is not counted as the table's.
      KeyStream stream(static_cast<size_t>(std::min<int64_t>(o_.key_pool, int64_t{1} << 22)),
                       static_cast<uint64_t>(rows), o_.seed + 1,
                       static_cast<size_t>(o_.scale_keys_per_request));
      malloc_trim(0);
      const int64_t rss_before = ResidentBytes();
      SparseTable table(TableOptions(dim));
      table.Reserve(static_cast<size_t>(rows));  // one index allocation, no rehash peak
      row.populate_seconds = PopulateTable(&table, rows);
      if (static_cast<int64_t>(table.size()) != rows) {
        return Status::Internal("table holds " + std::to_string(table.size()) + " rows, expected " +
                                std::to_string(rows));
      }
      row.memory_bytes = static_cast<double>(table.memory_bytes());
      row.resident_bytes = static_cast<double>(ResidentBytes() - rss_before);
      const size_t k = static_cast<size_t>(o_.scale_keys_per_request);
      std::vector<float> out(k * static_cast<size_t>(dim));
      row.pull =
          TimeLoop(o_.seconds, StreamSource(&stream, 0, k), [&](const std::vector<uint64_t>& keys) {
            table.Pull(keys.data(), keys.size(), /*create_missing=*/true, out.data());
          });
      fprintf(stderr, "scale %" PRId64 " rows: %.1f bytes/row, pull %.2f M keys/s\n", rows,
              row.memory_bytes / rows, row.pull.KeysPerSecond() / 1e6);
    }
    malloc_trim(0);
    scale_rows_.push_back(row);
    return Status::OK();
  }

  // The features section: tables of features_universe rows that differ only
  // in one feature, populated with the same keys in the same order, then
  // driven with the same key stream, rounds alternating over the tables.
  Status RunFeatures(int dim) {
    const int64_t rows = o_.features_universe;
    struct Case {
      std::string name;
      SparseTableOptions options;
      bool populate_by_push;  // admission: a row exists once pushed twice
    };
    std::vector<Case> cases;
    cases.push_back({"every feature off", TableOptions(dim), false});
    cases.push_back({"admission 2 (every key admitted)", TableOptions(dim), true});
    cases.back().options.admission_min_count = 2;
    cases.push_back(
        {"eviction after " + WithCommas(o_.features_evict_after) + " steps (none that old)",
         TableOptions(dim), false});
    cases.back().options.evict_after_steps = o_.features_evict_after;
    cases.push_back({"row cap 2x the rows (not reached)", TableOptions(dim), false});
    cases.back().options.max_rows = 2 * rows;
    cases.push_back(
        {"row cap half the rows (each missing key evicts a row)", TableOptions(dim), false});
    cases.back().options.max_rows = rows / 2;
    // Memory: each table's rows (embedding + Adagrad accumulator) and index.
    size_t capacity = 16;
    while (capacity * 7 / 10 < static_cast<size_t>(rows)) capacity <<= 1;
    const double estimate =
        static_cast<double>(cases.size()) *
        static_cast<double>(capacity * 16 + static_cast<size_t>(rows) * 8 * dim +
                            (size_t{8} << 20));
    const double available = static_cast<double>(ReadMemInfoKiB("MemAvailable")) * 1024;
    if (available < estimate + o_.memory_margin_gib * (1 << 30)) {
      return Status::InvalidArgument(
          "features section, dim " + std::to_string(dim) + ": needs about " +
          Fixed(estimate / (1 << 30), 1) + " GiB plus the margin, MemAvailable " +
          Fixed(available / (1 << 30), 1) + " GiB (lower --features_universe)");
    }
    const size_t max_k = static_cast<size_t>(
        *std::max_element(o_.keys_per_request.begin(), o_.keys_per_request.end()));
    const std::vector<float> grads = MakeGrads(max_k, static_cast<size_t>(dim));
    const std::vector<float> zeros(static_cast<size_t>(kPopulateKeysPerRequest) * dim, 0.0f);
    std::vector<std::unique_ptr<SparseTable>> tables;
    for (const Case& c : cases) {
      tables.push_back(std::make_unique<SparseTable>(c.options));
      SparseTable* t = tables.back().get();
      if (c.populate_by_push) {
        for (int twice = 0; twice < 2; ++twice) {
          TimeLoop(1e9, PopulateSource(rows), [&](const std::vector<uint64_t>& keys) {
            t->Push(keys.data(), keys.size(), zeros.data());
          });
        }
      } else {
        PopulateTable(t, rows);
      }
      const int64_t want = c.options.max_rows > 0 ? std::min(rows, c.options.max_rows) : rows;
      if (static_cast<int64_t>(t->size()) != want) {
        return Status::Internal("features section, " + c.name + ": " + std::to_string(t->size()) +
                                " rows after populating, expected " + std::to_string(want));
      }
    }
    const KeyStream stream(static_cast<size_t>(std::min<int64_t>(o_.key_pool, int64_t{1} << 22)),
                           static_cast<uint64_t>(rows), o_.seed + 2, max_k);
    std::vector<float> out(max_k * static_cast<size_t>(dim));
    const int rounds = std::max(1, o_.rounds);
    const double slice = o_.seconds / rounds;
    for (int64_t k64 : o_.keys_per_request) {
      const size_t k = static_cast<size_t>(k64);
      FeatureRow row{dim, static_cast<int>(k), {}, {}, {}, {}, {}, {}};
      for (const Case& c : cases) row.cases.push_back(c.name);
      row.pull.resize(cases.size());
      row.push.resize(cases.size());
      row.pull_created.assign(cases.size(), 0);
      row.push_created.assign(cases.size(), 0);
      row.evicted.assign(cases.size(), 0);
      int64_t first = 0;
      for (int round = 0; round < rounds; ++round) {
        int64_t longest = 0;
        // The order of the tables turns each round, so none always runs
        // right after the heaviest.
        for (size_t j = 0; j < cases.size(); ++j) {
          const size_t c = (j + static_cast<size_t>(round)) % cases.size();
          SparseTable* t = tables[c].get();
          const RequestSource source = StreamSource(&stream, first, k);
          const int64_t admitted0 = t->counters().admitted, evicted0 = t->counters().evicted;
          const Rate pull = TimeLoop(slice, source, [&](const std::vector<uint64_t>& keys) {
            t->Pull(keys.data(), keys.size(), /*create_missing=*/true, out.data());
          });
          const int64_t admitted1 = t->counters().admitted;
          // The pushes take the windows after the pulls', not the keys the
          // pulls just created.
          const Rate push = TimeLoop(slice, StreamSource(&stream, first + pull.requests, k),
                                     [&](const std::vector<uint64_t>& keys) {
                                       t->Push(keys.data(), keys.size(), grads.data());
                                     });
          row.pull_created[c] += admitted1 - admitted0;
          row.push_created[c] += t->counters().admitted - admitted1;
          row.evicted[c] += t->counters().evicted - evicted0;
          longest = std::max(longest, pull.requests + push.requests);
          for (auto [total, r] : {std::pair{&row.pull[c], &pull}, std::pair{&row.push[c], &push}}) {
            total->keys += r->keys;
            total->requests += r->requests;
            total->seconds += r->seconds;
          }
        }
        first += longest;
      }
      for (size_t c = 0; c < cases.size(); ++c) {
        fprintf(stderr, "features dim %d k=%zu %s: pull %.2f M keys/s, push %.2f M\n", dim, k,
                cases[c].name.c_str(), row.pull[c].KeysPerSecond() / 1e6,
                row.push[c].KeysPerSecond() / 1e6);
      }
      feature_rows_.push_back(std::move(row));
    }
    return Status::OK();
  }

  // The floor section: a table of `universe` rows and its layout on bare
  // arrays (the same index capacity, the same keys inserted in the same
  // order), driven with the network section's key stream; rounds alternate
  // table, bare layout and direct rows, so all three meet the same phases of
  // the machine.
  Status RunFloor(int dim) {
    const int64_t rows = o_.universe;
    SparseTable table(TableOptions(dim));
    table.Reserve(static_cast<size_t>(rows));
    const size_t capacity = table.memory_report().index_bytes / 16;  // 16-byte buckets
    const double row_bytes = 8.0 * dim;  // weights and Adagrad accumulators
    const double estimate = 2 * (static_cast<double>(capacity) * 16 + rows * row_bytes);
    const double available = static_cast<double>(ReadMemInfoKiB("MemAvailable")) * 1024;
    // The slots of key and row come on top, if they fit.
    const double inline_bytes = static_cast<double>(BareLayout::InlineBytes(capacity, dim));
    const bool with_inline =
        available >= estimate + inline_bytes + o_.memory_margin_gib * (1 << 30);
    if (!with_inline) {
      fprintf(stderr, "floor dim %d: no room for the slots of key and row (%.1f GiB)\n", dim,
              inline_bytes / (1 << 30));
    }
    if (available < estimate + o_.memory_margin_gib * (1 << 30)) {
      return Status::InvalidArgument("floor section, dim " + std::to_string(dim) +
                                     ": needs about " + Fixed(estimate / (1 << 30), 1) +
                                     " GiB plus the margin, MemAvailable " +
                                     Fixed(available / (1 << 30), 1) + " GiB (lower --universe)");
    }
    const double populate = PopulateTable(&table, rows);
    BareLayout bare(capacity, static_cast<size_t>(rows), dim,
                    TableOptions(dim).optimizer.adagrad().initial_accumulator(), with_inline);
    TimeLoop(1e9, PopulateSource(rows), [&](const std::vector<uint64_t>& keys) {
      for (uint64_t key : keys) CHECK(bare.Insert(key)) << "bare layout full";
    });
    if (table.memory_report().index_bytes / 16 != capacity ||
        static_cast<int64_t>(table.size()) != rows || static_cast<int64_t>(bare.size()) != rows) {
      return Status::Internal("floor section: the table holds " + std::to_string(table.size()) +
                              " rows and the bare layout " + std::to_string(bare.size()) +
                              ", expected " + std::to_string(rows) + " in " +
                              std::to_string(capacity) + " buckets each");
    }
    fprintf(stderr, "floor dim %d: table and bare layout of %" PRId64 " rows (table in %.1f s)\n",
            dim, rows, populate);
    const size_t max_k = static_cast<size_t>(
        *std::max_element(o_.keys_per_request.begin(), o_.keys_per_request.end()));
    const KeyStream stream(static_cast<size_t>(o_.key_pool), static_cast<uint64_t>(rows), o_.seed,
                           max_k);
    const std::vector<float> grads = MakeGrads(max_k, static_cast<size_t>(dim));
    const float lr = TableOptions(dim).optimizer.adagrad().learning_rate();
    std::vector<float> out(max_k * static_cast<size_t>(dim));
    const int rounds = std::max(1, o_.rounds);
    const double slice = o_.seconds / rounds;
    size_t lost = 0;  // keys the bare layout did not find (must stay 0)
    for (int64_t k64 : o_.keys_per_request) {
      const size_t k = static_cast<size_t>(k64);
      FloorRow row{dim, static_cast<int>(k), {}, {}, with_inline};
      const int kinds = with_inline ? 5 : 3;
      int64_t first = 0;
      for (int round = 0; round < rounds; ++round) {
        const RequestSource source = StreamSource(&stream, first, k);
        using Op = std::function<void(const std::vector<uint64_t>&)>;
        // table, bare layout, one access, slots of key and row, tagged slots
        const Op pulls[5] = {
            [&](const std::vector<uint64_t>& keys) {
              table.Pull(keys.data(), keys.size(), /*create_missing=*/true, out.data());
            },
            [&](const std::vector<uint64_t>& keys) {
              lost += keys.size() - bare.Pull(keys.data(), keys.size(), out.data());
            },
            [&](const std::vector<uint64_t>& keys) {
              bare.PullDirect(keys.data(), keys.size(), out.data());
            },
            [&](const std::vector<uint64_t>& keys) {
              lost += keys.size() - bare.PullInline(keys.data(), keys.size(), out.data());
            },
            [&](const std::vector<uint64_t>& keys) {
              lost += keys.size() - bare.PullTagged(keys.data(), keys.size(), out.data());
            }};
        const Op pushes[5] = {
            [&](const std::vector<uint64_t>& keys) {
              table.Push(keys.data(), keys.size(), grads.data());
            },
            [&](const std::vector<uint64_t>& keys) {
              lost += keys.size() - bare.Push(keys.data(), keys.size(), grads.data(), lr);
            },
            [&](const std::vector<uint64_t>& keys) {
              bare.PushDirect(keys.data(), keys.size(), grads.data(), lr);
            },
            [&](const std::vector<uint64_t>& keys) {
              lost += keys.size() - bare.PushInline(keys.data(), keys.size(), grads.data(), lr);
            },
            [&](const std::vector<uint64_t>& keys) {
              lost += keys.size() - bare.PushTagged(keys.data(), keys.size(), grads.data(), lr);
            }};
        int64_t longest = 0;
        for (int j = 0; j < kinds; ++j) {
          const int c = (j + round) % kinds;  // the order turns each round
          const Rate pull = TimeLoop(slice, source, pulls[c]);
          const Rate push = TimeLoop(slice, source, pushes[c]);
          for (auto [total, r] : {std::pair{&row.pull[c], &pull}, std::pair{&row.push[c], &push}}) {
            total->keys += r->keys;
            total->requests += r->requests;
            total->seconds += r->seconds;
          }
          longest = std::max({longest, pull.requests, push.requests});
        }
        first += longest;
      }
      fprintf(stderr, "floor dim %d k=%zu: pull / push M keys/s:", dim, k);
      for (int c = 0; c < kinds; ++c) {
        fprintf(stderr, " %.2f / %.2f", row.pull[c].KeysPerSecond() / 1e6,
                row.push[c].KeysPerSecond() / 1e6);
      }
      fprintf(stderr, "\n");
      floor_rows_.push_back(row);
    }
    if (lost > 0) {
      return Status::Internal("floor section: the bare layout missed " + std::to_string(lost) +
                              " keys it holds");
    }
    return Status::OK();
  }

  void PrintFloor() const {
    printf(
        "\n### The table against its memory floor: in-process, one thread, keys/s\n\n"
        "%s rows, Adagrad, the network section's key stream. table = SparseTable; bare layout = "
        "its index and rows on bare arrays, the same two passes and prefetches and nothing else "
        "(two dependent memory accesses per key); slots = rows in the index (key and row "
        "together, linear probing at the table's capacity); tagged slots = the same slots found "
        "through a byte per slot that stays mostly in the caches; one access = the row found from "
        "the "
        "key by arithmetic, no index. - where the slots did not fit in memory. %d alternating "
        "rounds, %g s per kind and op in all.\n\n",
        WithCommas(o_.universe).c_str(), std::max(1, o_.rounds), o_.seconds);
    printf(
        "| dim | keys/request | op | table | bare layout | slots | tagged slots | one access | "
        "table / bare | table / tagged | table / one access |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    auto ratio = [](double a, double b) { return b > 0 ? Fixed(a / b, 2) : std::string("-"); };
    for (const FloorRow& r : floor_rows_) {
      for (int op = 0; op < 2; ++op) {
        const Rate* m = op == 0 ? r.pull : r.push;
        double v[5];
        for (int c = 0; c < 5; ++c) v[c] = m[c].KeysPerSecond();
        auto rate = [&](int c) { return c < 3 || r.with_inline ? Millions(v[c]) : "-"; };
        printf("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.dim, r.k,
               op == 0 ? "pull" : "push", rate(0).c_str(), rate(1).c_str(), rate(3).c_str(),
               rate(4).c_str(), rate(2).c_str(), ratio(v[0], v[1]).c_str(),
               ratio(v[0], v[4]).c_str(), ratio(v[0], v[2]).c_str());
      }
    }
  }

  void PrintFeatures() const {
    printf(
        "\n### What each table feature costs: in-process, one thread, keys/s\n\n"
        "Tables of %s rows (Adagrad) that differ only in the feature, populated with the same "
        "keys in the same order; the same uniform key stream on each, %d alternating rounds, %g "
        "s per table and op in all. Creating pulls; push = Adagrad.\n\n",
        WithCommas(o_.features_universe).c_str(), std::max(1, o_.rounds), o_.seconds);
    printf(
        "| dim | keys/request | table | pull | vs off | push | vs off | rows created per key "
        "pulled / pushed | rows evicted |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    auto per_key = [](int64_t n, const Rate& r) {
      return r.keys > 0 ? Fixed(static_cast<double>(n) / static_cast<double>(r.keys), 3) : "-";
    };
    for (const FeatureRow& r : feature_rows_) {
      const double pull0 = r.pull[0].KeysPerSecond(), push0 = r.push[0].KeysPerSecond();
      for (size_t c = 0; c < r.cases.size(); ++c) {
        const double pull = r.pull[c].KeysPerSecond(), push = r.push[c].KeysPerSecond();
        printf("| %d | %d | %s | %s | %s | %s | %s | %s / %s | %s |\n", r.dim, r.k,
               r.cases[c].c_str(), Millions(pull).c_str(),
               pull0 > 0 ? Fixed(pull / pull0, 2).c_str() : "-", Millions(push).c_str(),
               push0 > 0 ? Fixed(push / push0, 2).c_str() : "-",
               per_key(r.pull_created[c], r.pull[c]).c_str(),
               per_key(r.push_created[c], r.push[c]).c_str(), WithCommas(r.evicted[c]).c_str());
      }
    }
  }

  void PrintNetwork() const {
    printf(
        "\n### Throughput: network (%d requests in flight) vs in-process, keys/s\n\n"
        "Keys uniform over %s populated rows; push = Adagrad. Network: KvClient over ZeroMQ "
        "loopback to server threads; in-process: one SparseTable populated the same way, one "
        "thread, the same key stream; %d alternating rounds, %g s per kind in all.\n\n",
        o_.inflight, WithCommas(o_.universe).c_str(), std::max(1, o_.rounds), o_.seconds);
    printf(
        "| servers | dim | keys/request | net pull | in-process pull | pull ratio | net push | "
        "in-process push | push ratio |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const NetworkRow& r : network_rows_) {
      const double pull = r.net_pull.KeysPerSecond(), push = r.net_push.KeysPerSecond();
      const double lpull = r.local_pull.KeysPerSecond(), lpush = r.local_push.KeysPerSecond();
      printf("| %d | %d | %d | %s | %s | %s | %s | %s | %s |\n", r.servers, r.dim, r.k,
             Millions(pull).c_str(), Millions(lpull).c_str(),
             lpull > 0 ? Fixed(pull / lpull, 2).c_str() : "-", Millions(push).c_str(),
             Millions(lpush).c_str(), lpush > 0 ? Fixed(push / lpush, 2).c_str() : "-");
    }
    printf("\nPopulate over the network (create-on-pull, %d keys/request):",
           kPopulateKeysPerRequest);
    std::set<std::pair<int, int>> seen;
    for (const NetworkRow& r : network_rows_) {
      if (!seen.insert({r.servers, r.dim}).second) continue;
      printf(" %d server(s) dim %d: %s rows in %.1f s;", r.servers, r.dim,
             WithCommas(r.rows).c_str(), r.populate_seconds);
    }
    printf("\n");

    printf(
        "\n### Where the CPU goes: CPU ns per key (all threads of the role, user + system)\n\n"
        "client = the KvClient thread, receive = the servers' receive threads, shards = their "
        "shard threads, zmq = ZeroMQ I/O threads of client and servers; shards busy = shard CPU / "
        "(wall time x servers x shard threads).\n\n");
    printf(
        "| servers | dim | keys/request | op | in-process | network total | client | receive | "
        "shards | zmq | shards busy |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const NetworkRow& r : network_rows_) {
      for (int op = 0; op < 2; ++op) {
        const Measured& net = op == 0 ? r.net_pull : r.net_push;
        const Measured& local = op == 0 ? r.local_pull : r.local_push;
        const double busy =
            net.seconds > 0 ? net.cpu.shards / (net.seconds * r.servers * o_.shard_threads) * 100
                            : 0;
        printf("| %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s%% |\n", r.servers, r.dim,
               r.k, op == 0 ? "pull" : "push", Fixed(local.NsPerKey(local.cpu.total()), 0).c_str(),
               Fixed(net.NsPerKey(net.cpu.total()), 0).c_str(),
               Fixed(net.NsPerKey(net.cpu.client), 0).c_str(),
               Fixed(net.NsPerKey(net.cpu.servers), 0).c_str(),
               Fixed(net.NsPerKey(net.cpu.shards), 0).c_str(),
               Fixed(net.NsPerKey(net.cpu.zmq), 0).c_str(), Fixed(busy, 0).c_str());
      }
    }
  }

  void PrintLatency() const {
    printf("\n### Latency of one request at a time (KvClient), ms\n\n");
    printf(
        "| servers | dim | keys/request | pull p50 | pull p99 | pull samples | push p50 | push p99 "
        "| push samples |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const LatencyRow& r : latency_rows_) {
      printf("| %d | %d | %d | %s | %s | %zu | %s | %s | %zu |\n", r.servers, r.dim, r.k,
             Fixed(Percentile(r.pull_ms, 0.5), 3).c_str(),
             Fixed(Percentile(r.pull_ms, 0.99), 3).c_str(), r.pull_ms.size(),
             Fixed(Percentile(r.push_ms, 0.5), 3).c_str(),
             Fixed(Percentile(r.push_ms, 0.99), 3).c_str(), r.push_ms.size());
    }
  }

  void PrintScale() const {
    const int raw = 8 + 2 * 4 * o_.scale_dim;
    printf(
        "\n### Table scale: dim %d with Adagrad, in-process\n\n"
        "Raw bytes per row: 8 (key) + %d (embedding) + %d (accumulator) = %d. Pull: %d uniform "
        "keys per call, one thread.\n\n",
        o_.scale_dim, 4 * o_.scale_dim, 4 * o_.scale_dim, raw, o_.scale_keys_per_request);
    printf(
        "| rows | allocated bytes/row | resident bytes/row | vs raw | populate s | pull keys/s "
        "|\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    for (const ScaleRow& r : scale_rows_) {
      if (r.skipped) {
        printf("| %s | skipped: %s | | | | |\n", WithCommas(r.rows).c_str(), r.why.c_str());
        continue;
      }
      const double per_row = r.memory_bytes / static_cast<double>(r.rows);
      printf("| %s | %s | %s | %sx | %s | %s |\n", WithCommas(r.rows).c_str(),
             Fixed(per_row, 1).c_str(),
             Fixed(r.resident_bytes / static_cast<double>(r.rows), 1).c_str(),
             Fixed(per_row / raw, 2).c_str(), Fixed(r.populate_seconds, 1).c_str(),
             Millions(r.pull.KeysPerSecond()).c_str());
    }
  }

  BenchOptions o_;
  std::vector<NetworkRow> network_rows_;
  std::vector<LatencyRow> latency_rows_;
  std::vector<ScaleRow> scale_rows_;
  std::vector<FeatureRow> feature_rows_;
  std::vector<FloorRow> floor_rows_;
};

}  // namespace
}  // namespace bench
}  // namespace mtps

int main(int argc, char** argv) {
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  gflags::SetUsageMessage("parameter-server pull/push benchmark (see tests/bench/ps_bench.cc)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;  // the nodes' INFO lines would bury the progress
  google::InitGoogleLogging(argv[0]);

  auto options = mtps::bench::OptionsFromFlags();
  if (!options.ok()) {
    fprintf(stderr, "ps_bench: %s\n", options.status().ToString().c_str());
    return 2;
  }
  printf("## ps_bench\n\nCommand: `%s`\n\n", command.c_str());
  printf(
      "Settings: keys_per_request %s, dims %s, servers %s (%d shard threads each, %d "
      "replicas), universe "
      "%" PRId64
      ", inflight %d, seconds %g, rounds %d, scale_rows %s (dim %d), sections %s. %ld CPUs, "
      "load average "
      "at start %s.\n",
      FLAGS_keys_per_request.c_str(), FLAGS_dims.c_str(), FLAGS_servers.c_str(),
      FLAGS_shard_threads, FLAGS_replicas, FLAGS_universe, FLAGS_inflight, FLAGS_seconds,
      FLAGS_rounds, FLAGS_scale_rows.c_str(), FLAGS_scale_dim, FLAGS_sections.c_str(),
      sysconf(_SC_NPROCESSORS_ONLN), mtps::bench::LoadAverage().c_str());
  fflush(stdout);
  mtps::bench::Bench bench(std::move(options).value());
  mtps::Status s = bench.Run();
  bench.Print();
  printf("\nLoad average at the end: %s.\n", mtps::bench::LoadAverage().c_str());
  if (!s.ok()) {
    fprintf(stderr, "ps_bench: %s\n", s.ToString().c_str());
    printf("\n**Stopped early:** %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
