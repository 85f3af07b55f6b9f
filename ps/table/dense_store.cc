// DenseStore: Init-once dense parameter block with an Adam or Adagrad step.
#include "ps/table/dense_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include <glog/logging.h>

#include "common/config/config_check.h"
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
constexpr uint32_t kAddChangesCode = 3;

// The kind of a block that `optimizer` steps.
uint32_t SteppedCode(const DenseOptimizer& optimizer) {
  return optimizer.kind() == DenseOptimizer::Kind::kAdam ? kAdamCode : kAdagradCode;
}

const char* KindName(uint32_t code) {
  switch (code) {
    case kAdagradCode:
      return "Adagrad";
    case kAdamCode:
      return "Adam";
    default:
      return "changes added (train.dense_sync_batches > 1)";
  }
}

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

DenseStore::DenseStore(const config::DenseOptimizer& optimizer, Mode mode)
    : mode_(mode), optimizer_(optimizer) {
  const Status valid = ValidateDenseOptimizer(optimizer);
  CHECK(valid.ok()) << valid;
}

DenseStore::Mode DenseStore::ModeOf(const config::Config& config) {
  return config.train().dense_sync_batches() > 1 ? Mode::kAddChanges : Mode::kOptimize;
}

uint32_t DenseStore::KindCode() const {
  return mode_ == Mode::kAddChanges ? kAddChangesCode : SteppedCode(optimizer_);
}

uint32_t DenseStore::NumStates() const {
  return mode_ == Mode::kAddChanges ? 0 : static_cast<uint32_t>(optimizer_.num_states());
}

bool DenseStore::Init(const float* values, size_t n) {
  if (initialized_) return false;
  values_.assign(values, values + n);
  if (mode_ == Mode::kOptimize) optimizer_.Reset(n);
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
  if (mode_ == Mode::kAddChanges) {
    float* __restrict w = values_.data();
    for (size_t i = 0; i < n; ++i) w[i] += grads[i];
  } else {
    optimizer_.Step(values_.data(), grads);
  }
  return Status::OK();
}

std::string DenseStore::Serialize() const {
  const uint32_t states = NumStates();
  const size_t n = initialized_ ? values_.size() : 0;
  std::string out;
  out.reserve(kDenseHeaderBytes + (1 + states) * n * sizeof(float) + kChecksumBytes);
  out.append(kDenseMagic, sizeof(kDenseMagic));
  Append<uint32_t>(&out, kDenseVersion);
  Append<uint32_t>(&out, KindCode());
  Append<uint32_t>(&out, states);
  Append<uint32_t>(&out, initialized_ ? 1 : 0);
  Append<int64_t>(&out, steps_);
  Append<uint64_t>(&out, n);
  if (initialized_) {
    AppendFloats(&out, values_);
    for (uint32_t i = 0; i < states; ++i) AppendFloats(&out, optimizer_.state(static_cast<int>(i)));
  }
  Append<uint64_t>(&out, SnapshotChecksum::Of(out.data(), out.size()));
  return out;
}

void DenseStore::Clear() {
  initialized_ = false;
  steps_ = 0;
  values_.clear();
  values_.shrink_to_fit();
  optimizer_.Clear();
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
  if (kind_code != kAdagradCode && kind_code != kAdamCode && kind_code != kAddChangesCode) {
    return Status::Corruption("unknown dense optimizer kind " + std::to_string(kind_code));
  }
  const uint32_t states = Load<uint32_t>(data + 16);
  const uint32_t want_states = kind_code == kAdamCode ? 2 : kind_code == kAdagradCode ? 1 : 0;
  if (states != want_states) {
    return Status::Corruption(std::to_string(states) + " state vectors, " + KindName(kind_code) +
                              " has " + std::to_string(want_states));
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
  // The optimizer must match; the mode may change (see the header).
  const uint32_t stepped_code = SteppedCode(optimizer_);
  if (kind_code != kAddChangesCode && kind_code != stepped_code) {
    return Status::InvalidArgument(std::string("dense block's optimizer is ") +
                                   KindName(kind_code) + ", this store's is " +
                                   KindName(stepped_code));
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
  if (mode_ == Mode::kOptimize) {
    if (kind_code == kAddChangesCode) {
      LOG(INFO) << "dense block of " << count
                << " parameters written with train.dense_sync_batches > 1: its optimizer state "
                   "starts afresh";
      optimizer_.Reset(count);
    } else {
      for (uint32_t i = 0; i < states; ++i) {
        LoadFloats(p + (1 + i) * count * sizeof(float), count,
                   &optimizer_.state(static_cast<int>(i)));
      }
      optimizer_.set_steps(steps);
    }
  } else if (kind_code != kAddChangesCode) {
    LOG(INFO) << "dense block of " << count << " parameters restored for train.dense_sync_batches "
              << "> 1: the workers step it, its optimizer state is dropped";
  }
  steps_ = steps;
  initialized_ = true;
  return Status::OK();
}

}  // namespace mtps
