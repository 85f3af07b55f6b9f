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
// and in-process pull throughput, at --scale_rows rows.
// Keys are drawn uniformly from a universe of --universe keys; the tables are
// populated with the whole universe first, so pulls and pushes hit existing
// rows. Prints Markdown tables to stdout (progress on stderr). A benchmark,
// not a test: run by hand; README.md "## Benchmarks" holds its results.
//
//   build/bin/ps_bench [--keys_per_request 4096,32768] [--dims 8,16,64] [--servers 1,2]
//       [--universe 10000000] [--inflight 8] [--seconds 3]
//       [--scale_rows 1000000,10000000,100000000] [--sections network,latency,scale]
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "common/hash.h"
#include "common/partition.h"
#include "common/rpc.h"
#include "common/status.h"
#include "ps/sparse_table.h"
#include "tests/bench/bench_cluster.h"
#include "worker/kv_client.h"

DEFINE_string(keys_per_request, "4096,32768", "keys per request, comma-separated list");
DEFINE_string(dims, "8,16,64", "embedding dims, comma-separated list");
DEFINE_string(servers, "1,2", "server counts, comma-separated list");
DEFINE_int64(universe, 10000000, "keys are drawn uniformly from this many distinct keys");
DEFINE_int32(inflight, 8, "requests in flight in the throughput runs");
DEFINE_double(seconds, 3, "seconds per measurement (each throughput and latency run)");
DEFINE_string(scale_rows, "1000000,10000000,100000000",
              "table-scale section: row counts, comma-separated list");
DEFINE_int32(scale_dim, 16, "table-scale section: embedding dim");
DEFINE_int32(scale_keys_per_request, 4096, "table-scale section: keys per Pull call");
DEFINE_int64(key_pool, int64_t{1} << 24,
             "keys drawn in advance per stream; requests take consecutive windows of it");
DEFINE_double(memory_margin_gib, 2,
              "a table size is skipped unless its estimated bytes plus this fit in MemAvailable");
DEFINE_string(sections, "network,latency,scale", "which sections to run");
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
  double seconds = 0;
  int scale_dim = 0;
  int scale_keys_per_request = 0;
  int64_t key_pool = 0;
  double memory_margin_gib = 0;
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
  o.seconds = FLAGS_seconds;
  o.scale_dim = FLAGS_scale_dim;
  o.scale_keys_per_request = FLAGS_scale_keys_per_request;
  o.key_pool = FLAGS_key_pool;
  o.memory_margin_gib = FLAGS_memory_margin_gib;
  o.seed = FLAGS_seed;
  std::stringstream ss(FLAGS_sections);
  std::string s;
  while (std::getline(ss, s, ',')) {
    if (s != "network" && s != "latency" && s != "scale") {
      return Status::InvalidArgument("--sections: unknown section '" + s +
                                     "' (network, latency, scale)");
    }
    o.sections.insert(s);
  }
  const int64_t max_k = *std::max_element(o.keys_per_request.begin(), o.keys_per_request.end());
  if (o.universe <= 0) return Status::InvalidArgument("--universe must be positive");
  if (o.inflight <= 0 || o.inflight > 1024) {
    return Status::InvalidArgument("--inflight must be in [1, 1024]");
  }
  if (!(o.seconds > 0) || o.seconds > 3600) {
    return Status::InvalidArgument("--seconds must be in (0, 3600]");
  }
  if (o.scale_dim <= 0 || o.scale_keys_per_request <= 0) {
    return Status::InvalidArgument("--scale_dim and --scale_keys_per_request must be positive");
  }
  if (o.key_pool < std::max<int64_t>(max_k, o.scale_keys_per_request)) {
    return Status::InvalidArgument("--key_pool must hold at least one request of keys");
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
// the same keys in the same order and drawing them costs neither.
class KeyStream {
 public:
  KeyStream(size_t pool, uint64_t universe, uint64_t seed) : keys_(pool) {
    for (size_t i = 0; i < pool; ++i) {
      const uint64_t r = Mix64(seed * 0x9e3779b97f4a7c15ULL + i);
      const uint64_t index =
          static_cast<uint64_t>((static_cast<unsigned __int128>(r) * universe) >> 64);
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

struct Span {
  const uint64_t* keys = nullptr;
  size_t n = 0;  // 0: no more requests
};
// Request i of a run.
using RequestSource = std::function<Span(int64_t i)>;

struct Rate {
  int64_t keys = 0;
  int64_t requests = 0;
  double seconds = 0;
  double KeysPerSecond() const { return seconds > 0 ? keys / seconds : 0; }
};

// Runs per_request(0), per_request(1), ... for `seconds` (at most
// max_requests times, stopping early when it returns 0) and counts the keys.
Rate TimeLoop(double seconds, int64_t max_requests, const std::function<size_t(int64_t)>& fn) {
  Rate r;
  const auto start = SteadyClock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (r.requests < max_requests) {
    const size_t n = fn(r.requests);
    if (n == 0) break;
    r.keys += static_cast<int64_t>(n);
    ++r.requests;
    if (SteadyClock::now() >= end) break;
  }
  r.seconds = SecondsSince(start);
  return r;
}

// Pipelined sparse pulls and pushes: keeps `inflight` requests in flight,
// each sliced per server exactly as KvClient slices one (ShardOfKey, keys
// copied into the request, pulled rows scattered back by position, pushed
// gradients gathered per server). KvClient::Pull waits for each request, and
// KvClient::Push counts its window in per-server requests, so neither gives
// a fixed number of requests in flight.
// Uses the Rpc of the calling thread; not thread-safe.
class PipelinedClient {
 public:
  enum class Op { kPull, kPush };

  PipelinedClient(Rpc* rpc, std::vector<int> server_ids, int dim, int inflight)
      : rpc_(rpc), server_ids_(std::move(server_ids)), dim_(static_cast<size_t>(dim)) {
    slots_.resize(static_cast<size_t>(inflight));
    for (Slot& s : slots_) {
      s.slice_keys.resize(server_ids_.size());
      s.slice_pos.resize(server_ids_.size());
    }
  }

  // Issues requests source(0), source(1), ... for `seconds` (or until the
  // source ends or max_requests), then waits for every answer. `grads` holds
  // dim gradients per key position of the largest request (push only).
  // Every request has a deadline, so this returns by the last one at worst.
  StatusOr<Rate> Run(Op op, const RequestSource& source, const float* grads, double seconds,
                     int64_t max_requests) {
    error_ = Status::OK();
    keys_done_ = 0;
    Rate r;
    const auto start = SteadyClock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    bool source_done = false;
    int64_t next = 0;
    for (;;) {
      const bool stop =
          !error_.ok() || source_done || next >= max_requests || SteadyClock::now() >= end;
      for (size_t i = 0; !stop && i < slots_.size(); ++i) {
        if (slots_[i].busy) continue;
        Span span = source(next);
        if (span.n == 0) {
          source_done = true;
          break;
        }
        Issue(op, i, span, grads);
        ++next;
        if (!error_.ok()) break;
      }
      if (busy_ == 0 && (stop || source_done)) break;
      if (busy_ > 0) rpc_->Poll(Deadline::In(kRequestTimeoutMs), /*return_after_one=*/true);
    }
    r.seconds = SecondsSince(start);
    r.keys = keys_done_;
    r.requests = next;
    if (!error_.ok()) return error_;
    return r;
  }

 private:
  struct Slot {
    bool busy = false;
    size_t n = 0;
    int remaining = 0;  // slices not answered yet
    std::vector<std::vector<uint64_t>> slice_keys;
    std::vector<std::vector<uint32_t>> slice_pos;
    std::vector<float> out;  // pulled rows, n x dim
  };

  void Issue(Op op, size_t slot_index, Span span, const float* grads) {
    Slot& slot = slots_[slot_index];
    const int num_servers = static_cast<int>(server_ids_.size());
    for (int s = 0; s < num_servers; ++s) {
      slot.slice_keys[s].clear();
      slot.slice_pos[s].clear();
    }
    for (size_t i = 0; i < span.n; ++i) {
      const int s = num_servers == 1 ? 0 : ShardOfKey(span.keys[i], num_servers);
      slot.slice_keys[s].push_back(span.keys[i]);
      slot.slice_pos[s].push_back(static_cast<uint32_t>(i));
    }
    slot.n = span.n;
    slot.remaining = 0;
    slot.busy = true;
    ++busy_;
    if (op == Op::kPull) slot.out.resize(span.n * dim_);
    for (int s = 0; s < num_servers; ++s) {
      const std::vector<uint64_t>& keys = slot.slice_keys[s];
      if (keys.empty()) continue;
      Message msg(op == Op::kPull ? wire::PULL_SPARSE : wire::PUSH_SPARSE);
      msg.payloads.push_back(Payload::Copy(keys.data(), keys.size()));
      if (op == Op::kPull) {
        msg.meta.set_create_missing(true);
      } else {
        std::vector<float> g(keys.size() * dim_);
        const std::vector<uint32_t>& pos = slot.slice_pos[s];
        for (size_t i = 0; i < pos.size(); ++i) {
          std::memcpy(g.data() + i * dim_, grads + pos[i] * dim_, dim_ * sizeof(float));
        }
        msg.payloads.push_back(Payload::FromVector(std::move(g)));
      }
      ++slot.remaining;
      Status sent = rpc_->StartAsync(
          server_ids_[s], std::move(msg), kRequestTimeoutMs,
          [this, op, slot_index, s](StatusOr<Message>&& r) { OnAnswer(op, slot_index, s, r); });
      if (!sent.ok()) {
        // The callback does not run for a request that was never sent.
        --slot.remaining;
        if (error_.ok()) error_ = sent;
      }
    }
    if (slot.remaining == 0) Release(slot, /*count=*/false);
  }

  void OnAnswer(Op op, size_t slot_index, int server, const StatusOr<Message>& r) {
    Slot& slot = slots_[slot_index];
    Status st = r.status();
    if (st.ok() && op == Op::kPull) {
      st = r->Expect({wire::F32});
      const std::vector<uint32_t>& pos = slot.slice_pos[server];
      if (st.ok() && r->payloads[0].count() != pos.size() * dim_) {
        st = Status::Corruption("server " + std::to_string(server) + " answered " +
                                std::to_string(r->payloads[0].count()) + " values for " +
                                std::to_string(pos.size()) + " keys");
      }
      if (st.ok()) {
        const float* v = r->payloads[0].Data<float>(&scratch_);
        for (size_t i = 0; i < pos.size(); ++i) {
          std::memcpy(slot.out.data() + pos[i] * dim_, v + i * dim_, dim_ * sizeof(float));
        }
      }
    }
    if (!st.ok() && error_.ok()) error_ = st;
    if (--slot.remaining == 0) Release(slot, /*count=*/true);
  }

  void Release(Slot& slot, bool count) {
    slot.busy = false;
    --busy_;
    if (count) keys_done_ += static_cast<int64_t>(slot.n);
  }

  Rpc* rpc_;
  std::vector<int> server_ids_;
  size_t dim_;
  std::vector<Slot> slots_;
  int busy_ = 0;
  int64_t keys_done_ = 0;
  Status error_;
  std::vector<float> scratch_;
};

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

config::Config JobConfig(int dim) {
  config::Config c;
  c.mutable_model()->set_embedding_dim(dim);
  c.mutable_model()->mutable_mmoe();
  c.mutable_train()->set_seed(1);
  c.mutable_server()->set_embedding_init_scale(0.01f);
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
// 0..universe-1 in order (keys[] is the caller's buffer for one request).
RequestSource PopulateSource(int64_t universe, std::vector<uint64_t>* keys) {
  return [universe, keys](int64_t i) {
    const int64_t begin = i * kPopulateKeysPerRequest;
    if (begin >= universe) return Span{};
    const int64_t end = std::min<int64_t>(universe, begin + kPopulateKeysPerRequest);
    keys->resize(static_cast<size_t>(end - begin));
    for (int64_t j = begin; j < end; ++j) (*keys)[j - begin] = KeyOf(static_cast<uint64_t>(j));
    return Span{keys->data(), keys->size()};
  };
}

// Fills `table` with universe elements 0..universe-1, in the order the
// network populate sends them.
double PopulateTable(SparseTable* table, int64_t universe) {
  std::vector<uint64_t> keys;
  RequestSource source = PopulateSource(universe, &keys);
  std::vector<float> out(static_cast<size_t>(kPopulateKeysPerRequest) * table->dim());
  const auto start = SteadyClock::now();
  for (int64_t i = 0;; ++i) {
    Span s = source(i);
    if (s.n == 0) break;
    table->Pull(s.keys, s.n, /*create_missing=*/true, out.data());
  }
  return SecondsSince(start);
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

struct InProcessResult {
  Rate pull, push;
};
struct NetworkRow {
  int servers, dim, k;
  int64_t rows;
  double populate_seconds;
  Rate pull, push;
  InProcessResult local;
};
struct LatencyRow {
  int servers, dim, k;
  std::vector<double> pull_ms, push_ms;
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
                       o_.seed);
      for (int64_t dim : o_.dims) {
        MTPS_RETURN_IF_ERROR(RunDim(static_cast<int>(dim), stream, network, latency));
      }
    }
    if (o_.sections.count("scale") > 0) {
      for (int64_t rows : o_.scale_rows) MTPS_RETURN_IF_ERROR(RunScale(rows));
    }
    return Status::OK();
  }

  void Print() const {
    if (!network_rows_.empty()) PrintNetwork();
    if (!latency_rows_.empty()) PrintLatency();
    if (!scale_rows_.empty()) PrintScale();
  }

 private:
  // One dim: the in-process table first (then freed), then each cluster size.
  Status RunDim(int dim, const KeyStream& stream, bool network, bool latency) {
    const size_t max_k = static_cast<size_t>(
        *std::max_element(o_.keys_per_request.begin(), o_.keys_per_request.end()));
    const std::vector<float> grads = MakeGrads(max_k, static_cast<size_t>(dim));
    std::vector<InProcessResult> local(o_.keys_per_request.size());
    int64_t rows = 0;
    if (network) {
      SparseTable table(TableOptions(dim));
      const double populate = PopulateTable(&table, o_.universe);
      rows = static_cast<int64_t>(table.size());
      fprintf(stderr, "dim %d: in-process table of %" PRId64 " rows populated in %.1f s\n", dim,
              rows, populate);
      std::vector<float> out(max_k * static_cast<size_t>(dim));
      for (size_t ki = 0; ki < o_.keys_per_request.size(); ++ki) {
        const size_t k = static_cast<size_t>(o_.keys_per_request[ki]);
        local[ki].pull = TimeLoop(o_.seconds, kMaxRequestsPerRun, [&](int64_t i) {
          table.Pull(stream.Window(i, k), k, /*create_missing=*/true, out.data());
          return k;
        });
        local[ki].push = TimeLoop(o_.seconds, kMaxRequestsPerRun, [&](int64_t i) {
          table.Push(stream.Window(i, k), k, grads.data());
          return k;
        });
        fprintf(stderr, "  in-process k=%zu: pull %.2f M keys/s, push %.2f M keys/s\n", k,
                local[ki].pull.KeysPerSecond() / 1e6, local[ki].push.KeysPerSecond() / 1e6);
      }
    }
    malloc_trim(0);  // give the freed table back before the servers build theirs

    for (int64_t servers : o_.servers) {
      LocalClusterOptions co;
      co.config = JobConfig(dim);
      co.num_servers = static_cast<int>(servers);
      MTPS_ASSIGN_OR_RETURN(std::unique_ptr<LocalCluster> cluster, LocalCluster::Start(co));
      Rpc& rpc = cluster->worker().rpc();
      const std::vector<int> server_ids = cluster->worker().server_ids();

      PipelinedClient client(&rpc, server_ids, dim, o_.inflight);
      std::vector<uint64_t> populate_keys;
      MTPS_ASSIGN_OR_RETURN(
          Rate populated,
          client.Run(PipelinedClient::Op::kPull, PopulateSource(o_.universe, &populate_keys),
                     nullptr, /*seconds=*/3600, kMaxRequestsPerRun));
      if (populated.keys != o_.universe) {
        return Status::Internal("populated " + std::to_string(populated.keys) + " of " +
                                std::to_string(o_.universe) + " keys within an hour");
      }
      fprintf(stderr, "servers %d dim %d: %" PRId64 " rows populated over the network in %.1f s\n",
              static_cast<int>(servers), dim, populated.keys, populated.seconds);

      for (size_t ki = 0; ki < o_.keys_per_request.size(); ++ki) {
        const size_t k = static_cast<size_t>(o_.keys_per_request[ki]);
        RequestSource source = [&stream, k](int64_t i) { return Span{stream.Window(i, k), k}; };
        if (network) {
          NetworkRow row{static_cast<int>(servers),
                         dim,
                         static_cast<int>(k),
                         populated.keys,
                         populated.seconds,
                         {},
                         {},
                         local[ki]};
          MTPS_ASSIGN_OR_RETURN(row.pull, client.Run(PipelinedClient::Op::kPull, source, nullptr,
                                                     o_.seconds, kMaxRequestsPerRun));
          MTPS_ASSIGN_OR_RETURN(row.push, client.Run(PipelinedClient::Op::kPush, source,
                                                     grads.data(), o_.seconds, kMaxRequestsPerRun));
          fprintf(stderr, "  network k=%zu: pull %.2f M keys/s, push %.2f M keys/s\n", k,
                  row.pull.KeysPerSecond() / 1e6, row.push.KeysPerSecond() / 1e6);
          network_rows_.push_back(row);
        }
        if (latency) {
          LatencyRow row{static_cast<int>(servers), dim, static_cast<int>(k), {}, {}};
          MTPS_RETURN_IF_ERROR(MeasureLatency(&rpc, server_ids, dim, stream, k, grads, &row));
          latency_rows_.push_back(std::move(row));
        }
      }
      MTPS_RETURN_IF_ERROR(cluster->Finish());
      int64_t served = 0;
      for (const ParameterServer::Stats& s : cluster->server_stats()) served += s.keys_pulled;
      fprintf(stderr, "  servers pulled %" PRId64 " keys in all\n", served);
      cluster.reset();
      malloc_trim(0);
    }
    return Status::OK();
  }

  // One request at a time through KvClient: Pull, and Push followed by Flush
  // (so the time includes the server's acknowledgement).
  Status MeasureLatency(Rpc* rpc, const std::vector<int>& server_ids, int dim,
                        const KeyStream& stream, size_t k, const std::vector<float>& grads,
                        LatencyRow* row) {
    KvClientOptions ko;
    ko.dim = dim;
    ko.request_timeout_ms = kRequestTimeoutMs;
    ko.max_inflight_pushes = 1;
    KvClient kv(rpc, server_ids, ko);
    std::vector<uint64_t> keys;
    std::vector<float> emb(k * static_cast<size_t>(dim));
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<double>& samples = pass == 0 ? row->pull_ms : row->push_ms;
      const auto end = SteadyClock::now() + std::chrono::duration<double>(o_.seconds);
      for (int64_t i = 0; samples.size() < kMaxLatencySamples && SteadyClock::now() < end; ++i) {
        const uint64_t* w = stream.Window(i, k);
        keys.assign(w, w + k);
        const auto t0 = SteadyClock::now();
        if (pass == 0) {
          MTPS_RETURN_IF_ERROR(kv.Pull(keys, /*create_missing=*/true, emb.data(), nullptr));
        } else {
          MTPS_RETURN_IF_ERROR(kv.Push(keys, grads.data(), nullptr));
          MTPS_RETURN_IF_ERROR(kv.Flush());
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
    // The table's own sizing rules (ps/sparse_table.cc): index buckets a power
    // of two at most 7/10 full, rows in chunks of a power of two rows <= 1 MiB.
    size_t capacity = 16;
    while (capacity * 7 / 10 < static_cast<size_t>(rows)) capacity <<= 1;
    size_t rows_per_chunk = 1;
    while (row_bytes * rows_per_chunk * 2 <= (size_t{1} << 20)) rows_per_chunk <<= 1;
    const size_t chunks = (static_cast<size_t>(rows) + rows_per_chunk - 1) / rows_per_chunk;
    const double estimate =
        static_cast<double>(capacity * 16 + chunks * rows_per_chunk * row_bytes);
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
                       static_cast<uint64_t>(rows), o_.seed + 1);
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
      row.pull = TimeLoop(o_.seconds, kMaxRequestsPerRun, [&](int64_t i) {
        table.Pull(stream.Window(i, k), k, /*create_missing=*/true, out.data());
        return k;
      });
      fprintf(stderr, "scale %" PRId64 " rows: %.1f bytes/row, pull %.2f M keys/s\n", rows,
              row.memory_bytes / rows, row.pull.KeysPerSecond() / 1e6);
    }
    malloc_trim(0);
    scale_rows_.push_back(row);
    return Status::OK();
  }

  void PrintNetwork() const {
    printf(
        "\n### Throughput: network (%d requests in flight) vs in-process, keys/s\n\n"
        "Keys uniform over %s populated rows; Adagrad push; in-process = one SparseTable built "
        "the same way, same key stream, one thread.\n\n",
        o_.inflight, WithCommas(o_.universe).c_str());
    printf(
        "| servers | dim | keys/request | net pull | in-process pull | pull ratio | net push | "
        "in-process push | push ratio | net pull MB/s |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const NetworkRow& r : network_rows_) {
      const double pull = r.pull.KeysPerSecond(), push = r.push.KeysPerSecond();
      const double lpull = r.local.pull.KeysPerSecond(), lpush = r.local.push.KeysPerSecond();
      printf("| %d | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", r.servers, r.dim, r.k,
             Millions(pull).c_str(), Millions(lpull).c_str(),
             lpull > 0 ? Fixed(pull / lpull, 2).c_str() : "-", Millions(push).c_str(),
             Millions(lpush).c_str(), lpush > 0 ? Fixed(push / lpush, 2).c_str() : "-",
             Fixed(pull * r.dim * 4 / 1e6, 0).c_str());
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
  printf("Settings: keys_per_request %s, dims %s, servers %s, universe %" PRId64
         ", inflight %d, seconds %g, scale_rows %s (dim %d), sections %s. %ld CPUs, load average "
         "at start %s.\n",
         FLAGS_keys_per_request.c_str(), FLAGS_dims.c_str(), FLAGS_servers.c_str(), FLAGS_universe,
         FLAGS_inflight, FLAGS_seconds, FLAGS_scale_rows.c_str(), FLAGS_scale_dim,
         FLAGS_sections.c_str(), sysconf(_SC_NPROCESSORS_ONLN), mtps::bench::LoadAverage().c_str());
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
