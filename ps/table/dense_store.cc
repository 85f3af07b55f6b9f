// DenseStore: Init-once dense parameter block with an Adam or Adagrad step.
#include "ps/table/dense_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include <glog/logging.h>

#include "common/config/config_check.h"
#include "ps/table/optimizer.h"
#include "ps/table/sparse_table.h"
#include "ps/table/table_config.h"

namespace mtps {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "dense blocks are written and read as little-endian memory images");

constexpr char kDenseMagic[8] = {'M', 'T', 'P', 'S', 'D', 'E', 'N', 'S'};
constexpr uint32_t kDenseVersion = 1;
constexpr size_t kDenseHeaderBytes = 40;
constexpr size_t kChecksumBytes = sizeof(uint64_t);
// Optimizer kinds, numbered as in MTPSROWS.
constexpr uint32_t kAdagradCode = 1;
constexpr uint32_t kAdamCode = 2;

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T>
void Append(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void AppendFloats(std::string* out, const std::vector<float>& v) {
  out->append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}
void LoadFloats(const char* p, size_t n, std::vector<float>* v) {
  v->resize(n);
  if (n > 0) std::memcpy(v->data(), p, n * sizeof(float));
}

}  // namespace

Status ValidateDenseOptimizer(const config::DenseOptimizer& optimizer) {
  ConfigProblems problems;
  CheckDenseOptimizer(optimizer, "", &problems);
  return problems.ToStatus("dense optimizer");
}

DenseStore::DenseStore(const config::DenseOptimizer& optimizer)
    : kind_(optimizer.has_adagrad() ? Kind::kAdagrad : Kind::kAdam),
      adam_(optimizer.adam()),
      adagrad_(optimizer.adagrad()) {
  const Status valid = ValidateDenseOptimizer(optimizer);
  CHECK(valid.ok()) << valid;
}

bool DenseStore::Init(const float* values, size_t n) {
  if (initialized_) return false;
  values_.assign(values, values + n);
  if (kind_ == Kind::kAdam) {
    state1_.assign(n, 0.0f);
    state2_.assign(n, 0.0f);
  } else {
    state1_.assign(n, adagrad_.initial_accumulator());
  }
  initialized_ = true;
  return true;
}

Status DenseStore::Push(const float* grads, size_t n) {
  if (!initialized_) {
    return Status::InvalidArgument("dense push of " + std::to_string(n) +
                                   " gradients before the block was initialized (size 0)");
  }
  if (n != values_.size()) {
    return Status::InvalidArgument("dense push of " + std::to_string(n) +
                                   " gradients to a block of " + std::to_string(values_.size()) +
                                   " parameters");
  }
  ++steps_;
  if (kind_ == Kind::kAdam) {
    const AdamStep step = MakeAdamStep(adam_.learning_rate(), adam_.beta1(), adam_.beta2(), steps_);
    AdamUpdate(values_.data(), state1_.data(), state2_.data(), grads, n, adam_.beta1(),
               adam_.beta2(), adam_.epsilon(), step);
  } else {
    AdagradUpdate(values_.data(), state1_.data(), grads, n, adagrad_.learning_rate());
  }
  return Status::OK();
}

std::string DenseStore::Serialize() const {
  const uint32_t states = kind_ == Kind::kAdam ? 2 : 1;
  const size_t n = initialized_ ? values_.size() : 0;
  std::string out;
  out.reserve(kDenseHeaderBytes + (1 + states) * n * sizeof(float) + kChecksumBytes);
  out.append(kDenseMagic, sizeof(kDenseMagic));
  Append<uint32_t>(&out, kDenseVersion);
  Append<uint32_t>(&out, kind_ == Kind::kAdam ? kAdamCode : kAdagradCode);
  Append<uint32_t>(&out, states);
  Append<uint32_t>(&out, initialized_ ? 1 : 0);
  Append<int64_t>(&out, steps_);
  Append<uint64_t>(&out, n);
  if (initialized_) {
    AppendFloats(&out, values_);
    AppendFloats(&out, state1_);
    if (states == 2) AppendFloats(&out, state2_);
  }
  Append<uint64_t>(&out, SnapshotChecksum::Of(out.data(), out.size()));
  return out;
}

void DenseStore::Clear() {
  initialized_ = false;
  steps_ = 0;
  values_.clear();
  values_.shrink_to_fit();
  state1_.clear();
  state1_.shrink_to_fit();
  state2_.clear();
  state2_.shrink_to_fit();
}

Status DenseStore::Restore(const char* data, size_t size, const std::string& where) {
  Clear();
  const Status status = RestoreChecked(data, size);
  if (status.ok()) return status;
  Clear();
  return Status(status.code(), where + ": " + status.message());
}

Status DenseStore::RestoreChecked(const char* data, size_t size) {
  if (size < kDenseHeaderBytes) {
    if (size == 0) return Status::Corruption("empty: no dense block");
    if (std::memcmp(data, kDenseMagic, std::min(size, sizeof(kDenseMagic))) != 0) {
      return Status::Corruption("not a dense block (no MTPSDENS magic)");
    }
    return Status::Corruption("truncated: " + std::to_string(size) +
                              " bytes, the header alone takes " +
                              std::to_string(kDenseHeaderBytes));
  }
  if (std::memcmp(data, kDenseMagic, sizeof(kDenseMagic)) != 0) {
    return Status::Corruption("not a dense block (no MTPSDENS magic)");
  }
  const uint32_t version = Load<uint32_t>(data + 8);
  if (version != kDenseVersion) {
    return Status::Corruption("format version " + std::to_string(version) +
                              ", this build reads version " + std::to_string(kDenseVersion));
  }
  const uint32_t kind_code = Load<uint32_t>(data + 12);
  if (kind_code != kAdagradCode && kind_code != kAdamCode) {
    return Status::Corruption("unknown dense optimizer kind " + std::to_string(kind_code));
  }
  const uint32_t states = Load<uint32_t>(data + 16);
  const uint32_t want_states = kind_code == kAdamCode ? 2 : 1;
  if (states != want_states) {
    return Status::Corruption(std::to_string(states) + " state vectors, " +
                              (kind_code == kAdamCode ? "Adam" : "Adagrad") + " has " +
                              std::to_string(want_states));
  }
  const uint32_t initialized = Load<uint32_t>(data + 20);
  const int64_t steps = Load<int64_t>(data + 24);
  const uint64_t n = Load<uint64_t>(data + 32);
  const uint64_t body = size - kDenseHeaderBytes;
  if (body < kChecksumBytes) {
    return Status::Corruption("truncated: no checksum after the header");
  }
  const uint64_t per_parameter = (1 + uint64_t{states}) * sizeof(float);
  const uint64_t present = (body - kChecksumBytes) / per_parameter;
  if (n > present) {
    return Status::Corruption("truncated: " + std::to_string(n) + " parameters announced, " +
                              std::to_string(present) + " present");
  }
  if (body - kChecksumBytes != n * per_parameter) {
    return Status::Corruption(std::to_string(body - kChecksumBytes - n * per_parameter) +
                              " stray bytes after the " + std::to_string(n) +
                              " parameters announced");
  }
  const uint64_t stored_sum = Load<uint64_t>(data + size - kChecksumBytes);
  const uint64_t actual_sum = SnapshotChecksum::Of(data, size - kChecksumBytes);
  if (stored_sum != actual_sum) {
    return Status::Corruption("checksum mismatch (stored " + std::to_string(stored_sum) +
                              ", computed " + std::to_string(actual_sum) + ")");
  }
  const bool adam = kind_code == kAdamCode;
  if (adam != (kind_ == Kind::kAdam)) {
    return Status::InvalidArgument(std::string("dense block's optimizer is ") +
                                   (adam ? "Adam" : "Adagrad") + ", this store's is " +
                                   (kind_ == Kind::kAdam ? "Adam" : "Adagrad"));
  }
  if (initialized > 1 || steps < 0 || (initialized == 0 && (n != 0 || steps != 0))) {
    return Status::Corruption("inconsistent header: initialized " + std::to_string(initialized) +
                              ", " + std::to_string(steps) + " steps, " + std::to_string(n) +
                              " parameters");
  }
  if (initialized == 0) return Status::OK();
  const size_t count = static_cast<size_t>(n);
  const char* p = data + kDenseHeaderBytes;
  LoadFloats(p, count, &values_);
  LoadFloats(p + count * sizeof(float), count, &state1_);
  if (adam) LoadFloats(p + 2 * count * sizeof(float), count, &state2_);
  steps_ = steps;
  initialized_ = true;
  return Status::OK();
}

}  // namespace mtps
