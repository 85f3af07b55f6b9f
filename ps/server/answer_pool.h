// AnswerPool: reusable buffers for a parameter server's pull answers.
//
// A pull answer is handed to ZeroMQ without a copy and freed by ZeroMQ's I/O
// thread once sent. Allocating a fresh multi-megabyte array per pull costs a
// page fault per 4 KiB on first touch (glibc serves such sizes with mmap and
// gives them back on free): at 32,768 keys of dim 64 that doubled the shard
// thread's CPU per key. The pool keeps sent arrays, mapped and warm, for the
// next pulls.
//
// Ownership: an AnswerArray owns its floats; ToPayload moves them into a
// ZeroMQ message whose deleter puts them back into the pool. The pool's
// state is shared with those deleters, so a message sent after the pool (the
// server) is gone still frees its array. Thread-safe: Acquire runs on the
// server's receive thread, the deleters on ZeroMQ's I/O threads.
#ifndef MTPS_PS_SERVER_ANSWER_POOL_H_
#define MTPS_PS_SERVER_ANSWER_POOL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "common/net/wire.h"

namespace mtps {

// A float array and its capacity (so that a pool can take it back).
struct AnswerArray {
  std::unique_ptr<float[]> data;
  size_t capacity = 0;

  // An array of exactly n uninitialised floats, outside any pool.
  static AnswerArray New(size_t n) {
    return AnswerArray{std::unique_ptr<float[]>(new float[n]), n};
  }
  float* get() const { return data.get(); }
  float& operator[](size_t i) const { return data[i]; }
};

// Free pull-answer arrays kept for reuse (see the file comment). Owned by
// the ParameterServer; Take and the deleter's Return may be called from any
// thread (ZeroMQ's I/O thread returns arrays), guarded by one mutex.
class AnswerPool {
 public:
  static constexpr size_t kDefaultMaxPooledBytes = size_t{128} << 20;

  // Keeps at most max_pooled_bytes of free arrays; beyond that a returned
  // array is freed.
  explicit AnswerPool(size_t max_pooled_bytes = kDefaultMaxPooledBytes);

  // An array of at least n floats, uninitialised: a free one of capacity in
  // [n, 2n] when the pool has one, else a new one whose capacity is n
  // rounded up to a power of two (so later requests of similar size fit it).
  // Throws std::bad_alloc like new.
  AnswerArray Acquire(size_t n);

  // The first n floats of `array` as a payload, without a copy; the array
  // returns to the pool when ZeroMQ has sent it.
  Payload ToPayload(AnswerArray array, size_t n);

  // Puts an array back (or frees it when the pool is full).
  void Release(AnswerArray array);

  struct Counters {
    int64_t reused = 0;     // Acquire served from the pool
    int64_t allocated = 0;  // Acquire that allocated
    size_t pooled_bytes = 0;
  };
  Counters counters() const;

 private:
  struct State {
    mutable std::mutex mu;
    std::multimap<size_t, std::unique_ptr<float[]>> free;  // by capacity
    size_t pooled_bytes = 0;
    size_t max_pooled_bytes = 0;
    int64_t reused = 0, allocated = 0;
  };
  static void Release(State* state, AnswerArray array);

  std::shared_ptr<State> state_;
};

}  // namespace mtps

#endif  // MTPS_PS_SERVER_ANSWER_POOL_H_
