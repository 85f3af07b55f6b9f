// Reusable pull-answer buffers (see ps/server/answer_pool.h).
#include "ps/server/answer_pool.h"

#include <utility>

namespace mtps {
namespace {

size_t RoundUpToPowerOfTwo(size_t n) {
  size_t c = 1;
  while (c < n) c <<= 1;
  return c;
}

}  // namespace

AnswerPool::AnswerPool(size_t max_pooled_bytes) : state_(std::make_shared<State>()) {
  state_->max_pooled_bytes = max_pooled_bytes;
}

AnswerArray AnswerPool::Acquire(size_t n) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->free.lower_bound(n);
    if (it != state_->free.end() && it->first <= 2 * n) {
      AnswerArray a{std::move(it->second), it->first};
      state_->pooled_bytes -= a.capacity * sizeof(float);
      state_->free.erase(it);
      ++state_->reused;
      return a;
    }
    ++state_->allocated;
  }
  const size_t capacity = RoundUpToPowerOfTwo(n);
  return AnswerArray{std::unique_ptr<float[]>(new float[capacity]), capacity};
}

void AnswerPool::Release(State* state, AnswerArray array) {
  if (array.data == nullptr) return;
  const size_t bytes = array.capacity * sizeof(float);
  std::lock_guard<std::mutex> lock(state->mu);
  if (state->pooled_bytes + bytes > state->max_pooled_bytes) return;  // freed on return
  state->pooled_bytes += bytes;
  state->free.emplace(array.capacity, std::move(array.data));
}

void AnswerPool::Release(AnswerArray array) { Release(state_.get(), std::move(array)); }

Payload AnswerPool::ToPayload(AnswerArray array, size_t n) {
  CHECK_LE(n, array.capacity);
  if (n == 0) {
    Release(std::move(array));
    return Payload(wire::F32, zmq::message_t());
  }
  // The deleter runs on a ZeroMQ I/O thread and keeps the pool state alive.
  struct Lease {
    std::shared_ptr<State> state;
    AnswerArray array;
  };
  float* data = array.get();
  auto* lease = new Lease{state_, std::move(array)};
  zmq::message_t msg(
      data, n * sizeof(float),
      [](void*, void* hint) {
        std::unique_ptr<Lease> l(static_cast<Lease*>(hint));
        Release(l->state.get(), std::move(l->array));
      },
      lease);
  return Payload(wire::F32, std::move(msg));
}

AnswerPool::Counters AnswerPool::counters() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  Counters c;
  c.reused = state_->reused;
  c.allocated = state_->allocated;
  c.pooled_bytes = state_->pooled_bytes;
  return c;
}

}  // namespace mtps
