// Resends and receiver-side deduplication of Rpc (common/net/rpc.h) over
// real ZeroMQ sockets on loopback, with real message loss injected by
// FaultInjectingTransport on either side: every request is handled exactly
// once however many copies travel, a held request is resent at its own
// interval, the resend budget and the deadline bound a request, the
// retransmission timeout adapts to the measured round trip, and done_below
// keeps the receiver's window small.
//
// Waits are for events (answers, counts), bounded only by kHangGuardMs.
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "common/net/fault_transport.h"
#include "common/net/rpc.h"
#include "common/net/zmq_transport.h"

namespace mtps {
namespace {

constexpr int64_t kHangGuardMs = 30000;

RetryPolicy FastRetry() {
  RetryPolicy r;
  r.min_interval_ms = 5;
  r.max_interval_ms = 40;
  r.max_resends = 1000;
  return r;
}

// A receiver with dedupe on, on its own thread, behind a fault injector that
// drops its replies at `drop_replies`. PROGRESS requests are answered at once
// (the answer carries the request's progress.examples doubled, so a copy's
// answer can be checked), or with `answer_gap_ms` > 0 one at a time in
// arrival order, `answer_gap_ms` apart (a server working through a queue);
// BARRIER requests are held until Release().
class CountingServer {
 public:
  CountingServer(zmq::context_t* ctx, double drop_replies, int64_t answer_gap_ms = 0)
      : transport_(std::make_unique<ZmqTransport>(ctx)), rpc_(&transport_, 1) {
    FaultOptions o;
    o.seed = 11;
    o.drop = drop_replies;
    transport_.Configure(o, 1);
    auto port = transport_.Bind("127.0.0.1", 0);
    CHECK(port.ok()) << port.status();
    port_ = port.value();
    rpc_.set_dedupe(true);
    rpc_.set_request_handler([this, answer_gap_ms](Incoming&& in) {
      const uint64_t id = in.msg.meta.request_id();
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++handled_[id];
      }
      if (in.msg.meta.op() == wire::BARRIER) {
        held_.push_back(std::move(in));
        return;
      }
      if (in.msg.meta.progress().examples() < 0 && handled_count(id) == 1) {
        // A request of a newer epoch than this receiver knows, say.
        rpc_.ReplyError(in, Status::StaleEpoch("not yet"));
        return;
      }
      if (answer_gap_ms > 0) {
        queued_.push_back(std::move(in));
        return;
      }
      Answer(in);
    });
    thread_ = std::thread([this, answer_gap_ms] {
      SteadyClock::time_point next_answer = SteadyClock::now();
      while (!stop_) {
        rpc_.Poll(Deadline::In(answer_gap_ms > 0 ? 1 : 5));
        if (!queued_.empty() && SteadyClock::now() >= next_answer) {
          Answer(queued_.front());
          queued_.pop_front();
          next_answer = SteadyClock::now() + std::chrono::milliseconds(answer_gap_ms);
        }
        if (release_ && !held_.empty()) {
          for (const Incoming& in : held_) rpc_.Reply(in, Message());
          held_.clear();
        }
        duplicates_dropped_ = rpc_.counters().duplicates_dropped;
        answered_again_ = rpc_.counters().answered_again;
        remembered_ = rpc_.remembered();
      }
    });
  }
  ~CountingServer() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  // How many times the handler saw each request id.
  std::map<uint64_t, int> handled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return handled_;
  }
  void Release() { release_ = true; }
  int handled_count(uint64_t id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = handled_.find(id);
    return it == handled_.end() ? 0 : it->second;
  }
  int64_t duplicates_dropped() const { return duplicates_dropped_; }
  int64_t answered_again() const { return answered_again_; }
  size_t remembered() const { return remembered_; }

 private:
  void Answer(const Incoming& in) {
    Message reply;
    reply.meta.mutable_progress()->set_examples(2 * in.msg.meta.progress().examples());
    rpc_.Reply(in, std::move(reply));
  }

  FaultInjectingTransport transport_;
  Rpc rpc_;
  int port_ = 0;
  std::deque<Incoming> queued_;  // server thread: answered answer_gap_ms apart
  mutable std::mutex mu_;
  std::map<uint64_t, int> handled_;  // guarded by mu_
  std::vector<Incoming> held_;       // server thread
  std::atomic<bool> stop_{false}, release_{false};
  std::atomic<int64_t> duplicates_dropped_{0}, answered_again_{0};
  std::atomic<size_t> remembered_{0};
  std::thread thread_;
};

// A client whose requests are dropped at `drop_requests`.
struct Client {
  Client(zmq::context_t* ctx, int server_port, double drop_requests, RetryPolicy retry)
      : transport(std::make_unique<ZmqTransport>(ctx)), rpc(&transport, 7) {
    FaultOptions o;
    o.seed = 5;
    o.drop = drop_requests;
    transport.Configure(o, 7);
    CHECK(transport.Connect(1, "tcp://127.0.0.1:" + std::to_string(server_port)).ok());
    rpc.set_retry(retry);
  }
  FaultInjectingTransport transport;
  Rpc rpc;
};

Message Progress(int64_t examples) {
  Message m(wire::PROGRESS);
  m.meta.mutable_progress()->set_examples(examples);
  return m;
}

TEST(RpcRetryTest, LostRequestsAndRepliesAreResentAndEachHandledOnce) {
  zmq::context_t ctx(1);
  CountingServer server(&ctx, /*drop_replies=*/0.3);
  Client client(&ctx, server.port(), /*drop_requests=*/0.3, FastRetry());
  constexpr int kCalls = 200;
  for (int i = 0; i < kCalls; ++i) {
    auto r = client.rpc.Call(1, Progress(i), kHangGuardMs);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    EXPECT_EQ(r->meta.progress().examples(), 2 * i) << "the answer of request " << i;
  }
  const std::map<uint64_t, int> handled = server.handled();
  EXPECT_EQ(handled.size(), static_cast<size_t>(kCalls));
  for (const auto& [id, times] : handled) EXPECT_EQ(times, 1) << "request " << id;
  // About half the round trips lost a message (0.3 each way): resends happened,
  // and some copies arrived after the answer was sent (and lost).
  EXPECT_GT(client.rpc.counters().resent, kCalls / 4);
  EXPECT_EQ(client.rpc.resent(wire::PROGRESS), client.rpc.counters().resent);
  EXPECT_GT(server.answered_again(), 0);
  EXPECT_EQ(client.rpc.outstanding(), 0u);
}

TEST(RpcRetryTest, ManyInFlightUnderLossAllAnsweredOnce) {
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.2);
  Client client(&ctx, server.port(), 0.2, FastRetry());
  std::vector<uint64_t> ids;
  for (int i = 0; i < 100; ++i) {
    auto id = client.rpc.Start(1, Progress(i), kHangGuardMs);
    ASSERT_TRUE(id.ok());
    ids.push_back(id.value());
  }
  for (int i = 0; i < 100; ++i) {
    auto r = client.rpc.Wait(ids[static_cast<size_t>(i)]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->meta.progress().examples(), 2 * i);
  }
  for (const auto& [id, times] : server.handled()) EXPECT_EQ(times, 1) << "request " << id;
  EXPECT_EQ(server.handled().size(), 100u);
}

TEST(RpcRetryTest, HeldRequestIsResentAtTheHeldIntervalAndHandledOnce) {
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.0);
  RetryPolicy retry = FastRetry();
  retry.held_interval_ms = 10;
  Client client(&ctx, server.port(), 0.0, retry);
  Message barrier(wire::BARRIER);
  barrier.meta.mutable_barrier()->set_name("x");
  auto id = client.rpc.Start(1, std::move(barrier), kHangGuardMs);
  ASSERT_TRUE(id.ok());
  // The server holds it; the copies it receives meanwhile are dropped.
  const Deadline guard = Deadline::In(kHangGuardMs);
  while (server.duplicates_dropped() < 3 && !guard.Expired()) {
    client.rpc.Poll(Deadline::In(5));
  }
  ASSERT_GE(server.duplicates_dropped(), 3);
  EXPECT_FALSE(client.rpc.Done(id.value()));
  server.Release();
  auto r = client.rpc.Wait(id.value());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(server.handled().at(id.value()), 1);
}

TEST(RpcRetryTest, AStaleEpochRefusalIsResentAndNotRemembered) {
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.0);
  Client client(&ctx, server.port(), 0.0, FastRetry());
  // Refused once with STALE_EPOCH, then served: the refusal did not
  // complete the request, and the receiver's window did not keep it.
  auto r = client.rpc.Call(1, Progress(-3), kHangGuardMs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->meta.progress().examples(), -6);
  ASSERT_EQ(server.handled().size(), 1u);
  EXPECT_EQ(server.handled().begin()->second, 2);
  EXPECT_GE(client.rpc.counters().resent, 1);
}

TEST(RpcRetryTest, WithoutResendsALostRequestFailsAtItsDeadline) {
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.0);
  RetryPolicy none = FastRetry();
  none.max_resends = 0;
  Client client(&ctx, server.port(), /*drop_requests=*/1.0, none);
  auto r = client.rpc.Call(1, Progress(1), 300);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_EQ(client.rpc.counters().resent, 0);
  EXPECT_TRUE(server.handled().empty());
}

TEST(RpcRetryTest, TheResendBudgetIsSpentThenTheDeadlineEndsIt) {
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.0);
  RetryPolicy three = FastRetry();
  three.max_resends = 3;
  Client client(&ctx, server.port(), 1.0, three);
  auto r = client.rpc.Call(1, Progress(1), 1000);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_NE(r.status().message().find("sent 4 times"), std::string::npos) << r.status();
  EXPECT_EQ(client.rpc.counters().resent, 3);
}

TEST(RpcRetryTest, TimeoutStartsAt200msAndAdaptsToTheMeasuredRoundTrip) {
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.0);
  RetryPolicy retry;  // the config's defaults: 20 .. 2000 ms
  Client client(&ctx, server.port(), 0.0, retry);
  EXPECT_EQ(client.rpc.RetransmitTimeoutMs(1), 200);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(client.rpc.Call(1, Progress(i), kHangGuardMs).ok());
  // A loopback round trip is far below a millisecond: the floor applies.
  EXPECT_LT(client.rpc.RetransmitTimeoutMs(1), 200);
  EXPECT_GE(client.rpc.RetransmitTimeoutMs(1), retry.min_interval_ms);
}

// Starts n PROGRESS requests to node 1 at once, then serves the Rpc until
// all are answered (OK) or kHangGuardMs passed; returns how many were.
int AllAtOnce(Rpc* rpc, int n) {
  // Shared with the callbacks: one may outlive this call when it gives up.
  auto answered = std::make_shared<int>(0);
  for (int i = 0; i < n; ++i) {
    Status s = rpc->StartAsync(1, Progress(i), kHangGuardMs, [answered](StatusOr<Message>&& r) {
      EXPECT_TRUE(r.ok()) << r.status();
      ++*answered;
    });
    EXPECT_TRUE(s.ok()) << s;
  }
  const Deadline guard = Deadline::In(kHangGuardMs);
  while (*answered < n && !guard.Expired()) rpc->Poll(Deadline::In(10), true);
  return *answered;
}

TEST(RpcRetryTest, ARequestQueuedBehindOthersWaitsFromTheAnswerBeforeIt) {
  // 60 requests at once to a server that answers one every 20 ms: the last
  // is answered about 1200 ms after it was sent, past the 1000 ms timeout,
  // but never more than 20 ms after the one before it. None is resent
  // (counting each wait from the send instead resends the last few).
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.0, /*answer_gap_ms=*/20);
  RetryPolicy retry;
  retry.min_interval_ms = 1000;
  retry.max_interval_ms = 1000;
  Client client(&ctx, server.port(), 0.0, retry);
  constexpr int kRequests = 60;
  ASSERT_EQ(AllAtOnce(&client.rpc, kRequests), kRequests);
  EXPECT_EQ(client.rpc.counters().resent, 0);
  for (const auto& [id, times] : server.handled()) EXPECT_EQ(times, 1) << "request " << id;
}

TEST(RpcRetryTest, ALostRequestBehindAnsweredOnesIsStillResent) {
  // Answers to younger requests do not starve an older lost one of its
  // resends: with half the requests lost and the server answering in
  // order, every request is answered, each handled once.
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.0, /*answer_gap_ms=*/2);
  Client client(&ctx, server.port(), 0.5, FastRetry());
  constexpr int kRequests = 40;
  ASSERT_EQ(AllAtOnce(&client.rpc, kRequests), kRequests);
  EXPECT_GT(client.rpc.counters().resent, 0);
  EXPECT_EQ(server.handled().size(), static_cast<size_t>(kRequests));
  for (const auto& [id, times] : server.handled()) EXPECT_EQ(times, 1) << "request " << id;
}

TEST(RpcRetryTest, DoneBelowKeepsTheReceiversWindowSmall) {
  zmq::context_t ctx(1);
  CountingServer server(&ctx, 0.0);
  Client client(&ctx, server.port(), 0.0, FastRetry());
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(client.rpc.Call(1, Progress(i), kHangGuardMs).ok());
  // Each request told the server that every earlier one was answered.
  const Deadline guard = Deadline::In(kHangGuardMs);
  while (server.remembered() > 1 && !guard.Expired()) std::this_thread::yield();
  EXPECT_LE(server.remembered(), 1u);
  EXPECT_EQ(client.rpc.DoneBelow(1), 301u);  // ids start at 1; none outstanding
}

}  // namespace
}  // namespace mtps
