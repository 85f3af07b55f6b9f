// Message: one Meta (proto/wire.proto) plus raw typed payload frames, and its
// codec to and from ZeroMQ multipart frames.
//
// Payloads are ZeroMQ messages themselves, so a received payload is read in
// place and a sent one is handed to ZeroMQ without a copy (FromVector gives
// the vector's buffer to ZeroMQ, which frees it when the send completes).
// This file is the only place that packs or checks the frame layout.
#ifndef MTPS_COMMON_NET_WIRE_H_
#define MTPS_COMMON_NET_WIRE_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "common/base/status.h"
#include "proto/wire.pb.h"

namespace mtps {

// Node ids: the scheduler is 0, servers 1..S, workers S+1..S+W (by rank).
constexpr int kSchedulerNodeId = 0;

template <typename T>
struct DataTypeOf;
template <>
struct DataTypeOf<uint64_t> {
  static constexpr wire::DataType kValue = wire::U64;
};
template <>
struct DataTypeOf<float> {
  static constexpr wire::DataType kValue = wire::F32;
};
template <>
struct DataTypeOf<uint32_t> {
  static constexpr wire::DataType kValue = wire::U32;
};
template <>
struct DataTypeOf<uint8_t> {
  static constexpr wire::DataType kValue = wire::U8;
};

// Bytes per element of dtype; 0 for an unknown type.
size_t DataTypeSize(wire::DataType dtype);

// "scheduler", "server", "worker" ("unknown" otherwise): how cluster.json,
// the logs and the config (cluster.faults.roles) spell roles.
const char* RoleName(wire::Role role);

// One typed payload frame: a dtype and a ZeroMQ message holding the bytes.
// Owns its bytes (handed to ZeroMQ on send without a copy); movable, not
// copyable; used by one thread at a time.
class Payload {
 public:
  Payload() = default;
  Payload(wire::DataType dtype, zmq::message_t bytes) : dtype_(dtype), bytes_(std::move(bytes)) {}

  // Zero-copy: takes ownership of the vector's buffer.
  template <typename T>
  static Payload FromVector(std::vector<T>&& values) {
    auto* owned = new std::vector<T>(std::move(values));
    if (owned->empty()) {
      delete owned;
      return Payload(DataTypeOf<T>::kValue, zmq::message_t());
    }
    zmq::message_t msg(
        owned->data(), owned->size() * sizeof(T),
        [](void*, void* hint) { delete static_cast<std::vector<T>*>(hint); }, owned);
    return Payload(DataTypeOf<T>::kValue, std::move(msg));
  }
  // Zero-copy: takes ownership of an array of n elements (allocated with
  // new T[n], so it need not be zero-filled first).
  template <typename T>
  static Payload FromArray(std::unique_ptr<T[]> values, size_t n) {
    if (n == 0) return Payload(DataTypeOf<T>::kValue, zmq::message_t());
    T* raw = values.release();
    zmq::message_t msg(
        raw, n * sizeof(T), [](void* data, void*) { delete[] static_cast<T*>(data); }, nullptr);
    return Payload(DataTypeOf<T>::kValue, std::move(msg));
  }
  template <typename T>
  static Payload Copy(const T* values, size_t n) {
    return Payload(DataTypeOf<T>::kValue, zmq::message_t(values, n * sizeof(T)));
  }

  // A copy of the bytes (fault injection's duplicates).
  Payload Clone() const { return Payload(dtype_, zmq::message_t(bytes_.data(), bytes_.size())); }
  // The same bytes, shared (ZeroMQ counts references; nothing is copied):
  // a request kept for resending. Neither copy may be modified afterwards.
  Payload Share() {
    zmq::message_t shared;
    shared.copy(bytes_);
    return Payload(dtype_, std::move(shared));
  }

  wire::DataType dtype() const { return dtype_; }
  size_t count() const {
    size_t s = DataTypeSize(dtype_);
    return s == 0 ? 0 : bytes_.size() / s;
  }
  zmq::message_t& bytes() { return bytes_; }
  const zmq::message_t& bytes() const { return bytes_; }

  // The elements as T. Received frames may sit at any offset in ZeroMQ's
  // buffer, so a misaligned frame is copied into *scratch and read there.
  // CHECKs the type: callers validate dtype first (Message::Expect).
  template <typename T>
  const T* Data(std::vector<T>* scratch) const {
    CHECK_EQ(dtype_, DataTypeOf<T>::kValue);
    const void* p = bytes_.data();
    if (reinterpret_cast<uintptr_t>(p) % alignof(T) == 0) return static_cast<const T*>(p);
    scratch->resize(count());
    if (!scratch->empty()) std::memcpy(scratch->data(), p, scratch->size() * sizeof(T));
    return scratch->data();
  }

 private:
  wire::DataType dtype_ = wire::DTYPE_UNSPECIFIED;
  zmq::message_t bytes_;
};

// One request or response as it travels: the Protobuf Meta (op, request id,
// sender, epoch, deadline, status, control bodies) and the payload frames
// that Meta.frames declares (EncodeMessage fills it). A value owned by
// whoever holds it; moved, not shared, between threads (a server's receive
// thread hands request payloads to its shard threads by move).
struct Message {
  wire::Meta meta;
  std::vector<Payload> payloads;

  Message() = default;
  explicit Message(wire::Op op) { meta.set_op(op); }

  // A deep copy (the meta and every payload's bytes).
  Message Clone() const {
    Message m;
    m.meta = meta;
    for (const Payload& p : payloads) m.payloads.push_back(p.Clone());
    return m;
  }

  // Checks that the payloads are exactly `dtypes`, in order; otherwise an
  // InvalidArgument naming the op and the mismatch.
  Status Expect(std::initializer_list<wire::DataType> dtypes) const;
};

// Encodes msg into multipart frames: meta.frames is (re)filled from the payloads.
std::vector<zmq::message_t> EncodeMessage(Message&& msg);

// Decodes and validates multipart frames: the meta parses, the frame count
// and every frame's byte size agree with meta.frames, dtypes are known.
// A malformed message is an InvalidArgument saying why; when the meta itself
// parsed, *meta_out (if given) receives it so the caller can answer.
StatusOr<Message> DecodeMessage(std::vector<zmq::message_t>&& frames,
                                wire::Meta* meta_out = nullptr);

// Status <-> wire status.
wire::StatusCode ToWireCode(StatusCode code);
Status FromWireStatus(const wire::Meta& meta);

}  // namespace mtps

#endif  // MTPS_COMMON_NET_WIRE_H_
