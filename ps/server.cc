// The parameter server's request handling (see ps/server.h).
#include "ps/server.h"

#include "common/partition.h"

#include <iomanip>
#include <new>

namespace mtps {
namespace {

// Largest pull answer, in bytes: a peer must not make the server allocate
// unbounded memory with one small request (KvClient splits larger pulls).
constexpr size_t kMaxPullBytes = size_t{256} << 20;

SparseTableOptions TableOptions(const config::Config& config) {
  SparseTableOptions o;
  o.dim = config.model().embedding_dim();
  o.init_scale = config.server().embedding_init_scale();
  o.seed = config.train().seed();
  const config::ServerConfig& server = config.server();
  o.optimizer = server.sparse_optimizer();
  o.admission_min_count = server.admission_min_count();
  o.evict_after_steps = server.evict_after_steps();
  o.max_rows = server.max_rows();
  return o;
}

}  // namespace

StatusOr<std::unique_ptr<ParameterServer>> ParameterServer::Create(ClusterMember* member) {
  MTPS_RETURN_IF_ERROR(ValidateSparseTableOptions(TableOptions(member->config())));
  MTPS_RETURN_IF_ERROR(ValidateDenseOptimizer(member->config().server().dense_optimizer()));
  return std::unique_ptr<ParameterServer>(new ParameterServer(member));
}

ParameterServer::ParameterServer(ClusterMember* member)
    : member_(member),
      table_(TableOptions(member->config())),
      dense_(member->config().server().dense_optimizer()) {
  member_->rpc().set_request_handler([this](Incoming&& request) { Handle(std::move(request)); });
}

Status ParameterServer::Run() {
  for (;;) {
    Status s = member_->Tick(Deadline::In(100));
    if (!s.ok()) return s;
    if (member_->finished()) break;
  }
  UpdateTableStats();
  const MemoryReport memory = table_.memory_report();
  const auto mib = [](size_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
  LOG(INFO) << std::fixed << std::setprecision(1) << "job finished: " << stats_.rows << " rows ("
            << stats_.admitted << " admitted, " << stats_.admission_rejected
            << " pushed keys rejected by admission, " << stats_.evicted
            << " evicted), sparse memory " << mib(memory.total_bytes) << " MiB (index "
            << mib(memory.index_bytes) << ", arena " << mib(memory.arena_bytes) << ", other "
            << mib(memory.other_bytes) << "; " << memory.bytes_per_row << " bytes per row, raw "
            << memory.raw_row_bytes << "), " << dense_.size() << " dense parameters, "
            << stats_.pulls << " pulls, " << stats_.pushes << " pushes, " << stats_.rejected
            << " rejected requests";
  return Status::OK();
}

void ParameterServer::UpdateTableStats() {
  const SparseTable::Counters& c = table_.counters();
  stats_.rows = static_cast<int64_t>(table_.size());
  stats_.admitted = c.admitted;
  stats_.admission_rejected = c.rejected;
  stats_.evicted = c.evicted;
  stats_.sparse_memory_bytes = static_cast<int64_t>(table_.memory_bytes());
}

void ParameterServer::Handle(Incoming&& request) {
  const wire::Meta& meta = request.msg.meta;
  Rpc& rpc = member_->rpc();
  Status s;
  Message response;
  if (meta.op() != wire::PING && meta.cluster_epoch() != rpc.epoch()) {
    s = Status::StaleEpoch("request of cluster epoch " + std::to_string(meta.cluster_epoch()) +
                           ", this server is in epoch " + std::to_string(rpc.epoch()));
  } else if (meta.timeout_ms() <= 0) {
    s = Status::InvalidArgument("request without a deadline (timeout_ms " +
                                std::to_string(meta.timeout_ms()) + ")");
  } else {
    switch (meta.op()) {
      case wire::PULL_SPARSE:
        s = HandlePullSparse(request, &response);
        break;
      case wire::PUSH_SPARSE:
        s = HandlePushSparse(request);
        break;
      case wire::PULL_DENSE:
        s = HandlePullDense(&response);
        break;
      case wire::PUSH_DENSE:
        s = HandlePushDense(request);
        break;
      case wire::INIT_DENSE:
        s = HandleInitDense(request);
        break;
      case wire::PING:
        break;
      default:
        s = Status::InvalidArgument("a server does not serve op " + wire::Op_Name(meta.op()));
    }
  }
  if (!s.ok()) {
    ++stats_.rejected;
    LOG_EVERY_N(WARNING, 100) << "rejected " << wire::Op_Name(meta.op()) << " from node "
                              << meta.sender() << ": " << s;
    rpc.ReplyError(request, s);
    return;
  }
  rpc.Reply(request, std::move(response));
}

Status ParameterServer::HandlePullSparse(const Incoming& request, Message* response) {
  const Message& msg = request.msg;
  MTPS_RETURN_IF_ERROR(msg.Expect({wire::U64}));
  size_t n = msg.payloads[0].count();
  const size_t bytes = n * static_cast<size_t>(table_.dim()) * sizeof(float);
  if (bytes > kMaxPullBytes) {
    return Status::InvalidArgument("PULL_SPARSE of " + std::to_string(n) + " keys of dim " +
                                   std::to_string(table_.dim()) + " needs " +
                                   std::to_string(bytes >> 20) + " MiB, over the " +
                                   std::to_string(kMaxPullBytes >> 20) + " MiB limit per request");
  }
  const uint64_t* keys = msg.payloads[0].Data<uint64_t>(&key_scratch_);
  // Every element is written by Pull: no zero-fill (it cost ~15% of a dim-64 pull).
  const size_t count = n * static_cast<size_t>(table_.dim());
  std::unique_ptr<float[]> values(new float[count]);
  table_.Pull(keys, n, msg.meta.create_missing(), values.get());
  response->payloads.push_back(Payload::FromArray(std::move(values), count));
  ++stats_.pulls;
  stats_.keys_pulled += static_cast<int64_t>(n);
  UpdateTableStats();
  return Status::OK();
}

Status ParameterServer::HandlePushSparse(const Incoming& request) {
  const Message& msg = request.msg;
  MTPS_RETURN_IF_ERROR(msg.Expect({wire::U64, wire::F32}));
  size_t n = msg.payloads[0].count();
  size_t want = n * static_cast<size_t>(table_.dim());
  if (msg.payloads[1].count() != want) {
    return Status::InvalidArgument("PUSH_SPARSE of " + std::to_string(n) + " keys needs " +
                                   std::to_string(want) + " gradient values (dim " +
                                   std::to_string(table_.dim()) + "), got " +
                                   std::to_string(msg.payloads[1].count()));
  }
  const uint64_t* keys = msg.payloads[0].Data<uint64_t>(&key_scratch_);
  const float* grads = msg.payloads[1].Data<float>(&value_scratch_);
  table_.Push(keys, n, grads);
  ++stats_.pushes;
  stats_.keys_pushed += static_cast<int64_t>(n);
  UpdateTableStats();
  return Status::OK();
}

Status ParameterServer::HandlePullDense(Message* response) {
  if (!dense_.initialized()) {
    return Status::Unavailable("dense parameters are not initialised yet (no INIT_DENSE)");
  }
  response->payloads.push_back(Payload::Copy(dense_.values(), dense_.size()));
  return Status::OK();
}

Status ParameterServer::HandlePushDense(const Incoming& request) {
  MTPS_RETURN_IF_ERROR(request.msg.Expect({wire::F32}));
  const float* grads = request.msg.payloads[0].Data<float>(&value_scratch_);
  return dense_.Push(grads, request.msg.payloads[0].count());
}

Status ParameterServer::HandleInitDense(const Incoming& request) {
  MTPS_RETURN_IF_ERROR(request.msg.Expect({wire::F32}));
  // The block must be this server's share of the whole array: a wrong-sized
  // first INIT_DENSE would otherwise fix a wrong block for the whole job.
  const int64_t total = request.msg.meta.dense_total();
  const DenseBlock block = DenseBlockOf(total, member_->self().rank(), member_->num_servers());
  if (total <= 0 || static_cast<int64_t>(request.msg.payloads[0].count()) != block.size()) {
    return Status::InvalidArgument(
        "INIT_DENSE of " + std::to_string(request.msg.payloads[0].count()) +
        " values for a dense array of " + std::to_string(total) + ": server " +
        std::to_string(member_->self().rank()) + " of " + std::to_string(member_->num_servers()) +
        " holds " + std::to_string(block.size()));
  }
  const float* values = request.msg.payloads[0].Data<float>(&value_scratch_);
  if (!dense_.Init(values, request.msg.payloads[0].count())) {
    LOG(INFO) << "ignoring a repeated INIT_DENSE from node " << request.msg.meta.sender();
  }
  return Status::OK();
}

}  // namespace mtps
