// ArrayPool: reusable arrays for payloads sent without a copy.
//
// A big payload (a server's pull answer, a worker's push of keys and
// gradients) is handed to ZeroMQ without a copy and freed by ZeroMQ's I/O
// thread once sent. Allocating a fresh multi-megabyte array per request costs
// a page fault per 4 KiB on first touch (glibc serves such sizes with mmap
// and gives them back on free): at 32,768 keys of dim 64 that doubled a
// server shard thread's CPU per key. The pool keeps sent arrays, mapped and
// warm, for the next requests.
//
// Ownership: a PooledArray owns its elements; ToPayload moves them into a
// ZeroMQ message whose deleter puts them back into the pool. The pool's
// state is shared with those deleters, so a message sent after the pool is
// gone still frees its array. Thread-safe: Acquire runs on the owner's
// thread, the deleters on ZeroMQ's I/O threads (or wherever the last share
// of a message is dropped).
#ifndef MTPS_COMMON_NET_ARRAY_POOL_H_
#define MTPS_COMMON_NET_ARRAY_POOL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "common/net/wire.h"

namespace mtps {

// An array of T and its capacity (so that a pool can take it back).
template <typename T>
struct PooledArray {
  std::unique_ptr<T[]> data;
  size_t capacity = 0;

  // An array of exactly n uninitialised elements, outside any pool.
  static PooledArray New(size_t n) { return PooledArray{std::unique_ptr<T[]>(new T[n]), n}; }
  T* get() const { return data.get(); }
  T& operator[](size_t i) const { return data[i]; }
};

// Free arrays of T kept for reuse (see the file comment). Acquire and the
// deleters' returns may be called from any thread, guarded by one mutex.
template <typename T>
class ArrayPool {
 public:
  static constexpr size_t kDefaultMaxPooledBytes = size_t{128} << 20;

  // Keeps at most max_pooled_bytes of free arrays; beyond that a returned
  // array is freed.
  explicit ArrayPool(size_t max_pooled_bytes = kDefaultMaxPooledBytes)
      : state_(std::make_shared<State>()) {
    state_->max_pooled_bytes = max_pooled_bytes;
  }

  // An array of at least n elements, uninitialised: a free one of capacity
  // in [n, 2n] when the pool has one, else a new one whose capacity is n
  // rounded up to a power of two (so later requests of similar size fit it).
  // Throws std::bad_alloc like new.
  PooledArray<T> Acquire(size_t n) {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      auto it = state_->free.lower_bound(n);
      if (it != state_->free.end() && it->first <= 2 * n) {
        PooledArray<T> a{std::move(it->second), it->first};
        state_->pooled_bytes -= a.capacity * sizeof(T);
        state_->free.erase(it);
        ++state_->reused;
        return a;
      }
      ++state_->allocated;
    }
    size_t capacity = 1;
    while (capacity < n) capacity <<= 1;
    return PooledArray<T>{std::unique_ptr<T[]>(new T[capacity]), capacity};
  }

  // The first n elements of `array` as a payload, without a copy; the array
  // returns to the pool when ZeroMQ (and every share of the message) is done
  // with it.
  Payload ToPayload(PooledArray<T> array, size_t n) {
    CHECK_LE(n, array.capacity);
    if (n == 0) {
      Release(std::move(array));
      return Payload(DataTypeOf<T>::kValue, zmq::message_t());
    }
    // The deleter keeps the pool state alive.
    struct Lease {
      std::shared_ptr<State> state;
      PooledArray<T> array;
    };
    T* data = array.get();
    auto* lease = new Lease{state_, std::move(array)};
    zmq::message_t msg(
        data, n * sizeof(T),
        [](void*, void* hint) {
          std::unique_ptr<Lease> l(static_cast<Lease*>(hint));
          Release(l->state.get(), std::move(l->array));
        },
        lease);
    return Payload(DataTypeOf<T>::kValue, std::move(msg));
  }

  // Puts an array back (or frees it when the pool is full).
  void Release(PooledArray<T> array) { Release(state_.get(), std::move(array)); }

  struct Counters {
    int64_t reused = 0;     // Acquire served from the pool
    int64_t allocated = 0;  // Acquire that allocated
    size_t pooled_bytes = 0;
  };
  Counters counters() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return Counters{state_->reused, state_->allocated, state_->pooled_bytes};
  }

 private:
  struct State {
    mutable std::mutex mu;
    std::multimap<size_t, std::unique_ptr<T[]>> free;  // by capacity
    size_t pooled_bytes = 0;
    size_t max_pooled_bytes = 0;
    int64_t reused = 0, allocated = 0;
  };

  static void Release(State* state, PooledArray<T> array) {
    if (array.data == nullptr) return;
    const size_t bytes = array.capacity * sizeof(T);
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->pooled_bytes + bytes > state->max_pooled_bytes) return;  // freed on return
    state->pooled_bytes += bytes;
    state->free.emplace(array.capacity, std::move(array.data));
  }

  std::shared_ptr<State> state_;
};

}  // namespace mtps

#endif  // MTPS_COMMON_NET_ARRAY_POOL_H_
