// LocalDense (worker/trainer/local_dense.h): a worker's local dense steps
// and their syncs lose no step and count none twice, whatever the order of
// pushes, pulls and their answers; with one worker the servers' copy ends
// where plain steps of one array would.
#include "worker/trainer/local_dense.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/optim/dense_optimizer.h"

namespace mtps {
namespace {

config::DenseOptimizer Adam(float lr) {
  config::DenseOptimizer o;
  o.mutable_adam()->set_learning_rate(lr);
  return o;
}

std::vector<float> RandomGrads(size_t n, std::mt19937_64* rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(n);
  for (float& v : g) v = normal(*rng);
  return g;
}

void ExpectNear(const std::vector<float>& a, const std::vector<float>& b, float tol,
                const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << what << " [" << i << "]";
}

// The servers' copy: changes pushed are added, in order.
struct Servers {
  std::vector<float> copy;
  void Add(const float* change) {
    for (size_t i = 0; i < copy.size(); ++i) copy[i] += change[i];
  }
};

TEST(LocalDenseTest, TheFirstMergeTakesTheServersCopy) {
  LocalDense local(Adam(0.01f), 3);
  std::vector<float> params = {9, 9, 9};
  const std::vector<float> servers = {1, 2, 3};
  local.PullSent();
  local.Merge(params.data(), servers.data());
  EXPECT_EQ(params, servers);
  // Nothing stepped since: the next change is zero.
  const float* change = local.TakeChange(params.data());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(change[i], 0.0f);
}

TEST(LocalDenseTest, StepIsTheConfigsOptimizerStep) {
  // Adam's first step moves each parameter by the learning rate against its
  // gradient's sign (m and v bias-corrected: g / |g|).
  LocalDense local(Adam(0.01f), 2);
  std::vector<float> params = {1.0f, 1.0f};
  const std::vector<float> servers = params;
  local.PullSent();
  local.Merge(params.data(), servers.data());
  const float grads[2] = {3.0f, -0.5f};
  local.Step(params.data(), grads);
  EXPECT_NEAR(params[0], 0.99f, 1e-6);
  EXPECT_NEAR(params[1], 1.01f, 1e-6);
}

// One worker, a random schedule of syncs, pulls sent and answers arriving
// later (with pushes in between, as a checkpoint's or the last batch's sync
// right after a regular one makes): after every merge the worker's copy is
// where plain steps of one array are, and so is the servers' copy at the end.
TEST(LocalDenseTest, OneWorkersServersCopyEndsWhereItsPlainStepsEnd) {
  const size_t n = 64;
  std::mt19937_64 rng(7);
  Servers servers{RandomGrads(n, &rng)};
  std::vector<float> plain = servers.copy;
  DenseOptimizer reference(Adam(0.01f));
  reference.Reset(n);
  LocalDense local(Adam(0.01f), n);
  std::vector<float> params(n, 0.0f);
  local.PullSent();
  local.Merge(params.data(), servers.copy.data());
  std::vector<float> answer;  // the answer of the pull in flight
  int answer_in = -1;         // batches until it arrives (-1: none in flight)
  std::uniform_int_distribution<int> coin(0, 3);
  for (int batch = 0; batch < 400; ++batch) {
    const std::vector<float> g = RandomGrads(n, &rng);
    local.Step(params.data(), g.data());
    reference.Step(plain.data(), g.data());
    if (coin(rng) == 0) servers.Add(local.TakeChange(params.data()));
    if (answer_in < 0 && coin(rng) == 0) {
      local.PullSent();
      answer = servers.copy;
      answer_in = coin(rng) % 3;
    }
    if (answer_in == 0) {
      local.Merge(params.data(), answer.data());
      // One worker: its copy is always its plain steps.
      for (size_t i = 0; i < n; ++i) ASSERT_NEAR(params[i], plain[i], 1e-4f) << batch << " " << i;
    }
    if (answer_in >= 0) --answer_in;
  }
  if (answer_in >= 0) local.Merge(params.data(), answer.data());
  servers.Add(local.TakeChange(params.data()));
  ExpectNear(servers.copy, plain, 1e-4f, "servers");
  ExpectNear(params, plain, 1e-4f, "worker");
  local.PullSent();
  local.Merge(params.data(), servers.copy.data());
  ExpectNear(params, plain, 1e-4f, "worker after the final pull");
}

// Two workers: the servers' copy is the start plus both workers' steps
// (Adam's steps do not depend on the parameters, so each worker's own sum
// of steps is known), and a worker's copy after a pull has the other's.
TEST(LocalDenseTest, TwoWorkersChangesAddUp) {
  const size_t n = 32;
  std::mt19937_64 rng(9);
  Servers servers{RandomGrads(n, &rng)};
  const std::vector<float> start = servers.copy;
  LocalDense a(Adam(0.01f), n), b(Adam(0.01f), n);
  std::vector<float> pa(n), pb(n);
  std::vector<float> steps_a(n, 0.0f), steps_b(n, 0.0f);  // each worker's steps from 0
  DenseOptimizer ref_a(Adam(0.01f)), ref_b(Adam(0.01f));
  ref_a.Reset(n);
  ref_b.Reset(n);
  a.PullSent();
  a.Merge(pa.data(), servers.copy.data());
  b.PullSent();
  b.Merge(pb.data(), servers.copy.data());
  for (int batch = 1; batch <= 60; ++batch) {
    const std::vector<float> ga = RandomGrads(n, &rng), gb = RandomGrads(n, &rng);
    a.Step(pa.data(), ga.data());
    ref_a.Step(steps_a.data(), ga.data());
    b.Step(pb.data(), gb.data());
    ref_b.Step(steps_b.data(), gb.data());
    if (batch % 4 == 0) {  // a syncs every 4 batches, its pull answered at once
      servers.Add(a.TakeChange(pa.data()));
      a.PullSent();
      a.Merge(pa.data(), servers.copy.data());
    }
    if (batch % 5 == 0) {  // b every 5, its answer a batch late, after another sync
      servers.Add(b.TakeChange(pb.data()));
      b.PullSent();
      const std::vector<float> answer = servers.copy;
      const std::vector<float> g = RandomGrads(n, &rng);
      b.Step(pb.data(), g.data());
      ref_b.Step(steps_b.data(), g.data());
      servers.Add(b.TakeChange(pb.data()));  // not in `answer`
      b.Merge(pb.data(), answer.data());
      // b's copy: the servers' (all b pushed, and a's pushes up to now).
      for (size_t i = 0; i < n; ++i)
        ASSERT_NEAR(pb[i], servers.copy[i], 1e-4f) << batch << " " << i;
    }
  }
  servers.Add(a.TakeChange(pa.data()));
  servers.Add(b.TakeChange(pb.data()));
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = start[i] + steps_a[i] + steps_b[i];
  ExpectNear(servers.copy, want, 1e-4f, "servers");
  a.PullSent();
  a.Merge(pa.data(), servers.copy.data());
  ExpectNear(pa, want, 1e-4f, "worker a after a pull");
}

}  // namespace
}  // namespace mtps
