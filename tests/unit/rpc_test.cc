// Transport and Rpc over real ZeroMQ sockets on loopback (port 0): request and
// response matching, deadlines, and hostile or malformed peers.
//
// No test sleeps or bounds how long something may take: each waits for the
// event it needs (a request in the backlog, a number of ticks) and counts what
// happened; time limits are only generous deadlines that turn a hang into a
// failure (kHangGuardMs), so a slow or ThreadSanitizer build passes alike.
// One exception bounds CPU, not time: a wait for a near deadline must sleep
// (its thread's CPU time under a quarter of the wait, which a loaded machine
// only makes easier).
#include <gtest/gtest.h>

#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <zmq_addon.hpp>

#include "common/net/rpc.h"
#include "common/net/zmq_transport.h"

namespace mtps {
namespace {

// Deadline of every wait that only guards against a hang.
constexpr int64_t kHangGuardMs = 30000;

// Calls `step` until it returns true; false if kHangGuardMs pass first.
template <typename Step>
bool WaitUntil(Step step) {
  const Deadline guard = Deadline::In(kHangGuardMs);
  while (!guard.Expired()) {
    if (step()) return true;
  }
  return step();
}

// An echo service on its own thread: answers PING with the request's payload
// doubled; ignores HEARTBEAT requests (so callers time out).
class EchoServer {
 public:
  explicit EchoServer(zmq::context_t* ctx) : transport_(ctx), rpc_(&transport_, 1) {
    auto port = transport_.Bind("127.0.0.1", 0);
    CHECK(port.ok()) << port.status();
    port_ = port.value();
    rpc_.set_request_handler([this](Incoming&& in) {
      ++served_;
      if (in.msg.meta.op() == wire::HEARTBEAT) return;  // never answered
      Status s = in.msg.Expect({wire::F32});
      if (!s.ok()) {
        rpc_.ReplyError(in, s);
        return;
      }
      std::vector<float> scratch;
      const float* v = in.msg.payloads[0].Data<float>(&scratch);
      std::vector<float> out(v, v + in.msg.payloads[0].count());
      for (float& x : out) x *= 2;
      Message reply;
      reply.payloads.push_back(Payload::FromVector(std::move(out)));
      rpc_.Reply(in, std::move(reply));
    });
    thread_ = std::thread([this] {
      while (!stop_) rpc_.Poll(Deadline::In(20));
    });
  }
  ~EchoServer() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  int served() const { return served_; }

 private:
  ZmqTransport transport_;
  Rpc rpc_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  std::thread thread_;
};

Message Ping(std::vector<float> v) {
  Message m(wire::PING);
  m.payloads.push_back(Payload::FromVector(std::move(v)));
  return m;
}

class RpcTest : public ::testing::Test {
 protected:
  zmq::context_t ctx_{1};
};

TEST_F(RpcTest, CallReturnsTheMatchingResponse) {
  EchoServer server(&ctx_);
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(server.port())).ok());
  auto r = rpc.Call(1, Ping({1, 2, 3}), kHangGuardMs);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<float> scratch;
  const float* v = r->payloads[0].Data<float>(&scratch);
  EXPECT_EQ(v[0], 2);
  EXPECT_EQ(v[2], 6);
  EXPECT_TRUE(r->meta.is_response());
  EXPECT_EQ(rpc.outstanding(), 0u);
}

TEST_F(RpcTest, ManyRequestsInFlightAreMatchedById) {
  EchoServer server(&ctx_);
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(server.port())).ok());
  std::vector<uint64_t> ids;
  for (int i = 0; i < 50; ++i) {
    auto id = rpc.Start(1, Ping({static_cast<float>(i)}), kHangGuardMs);
    ASSERT_TRUE(id.ok());
    ids.push_back(id.value());
  }
  // Wait in reverse order: earlier responses are kept until asked for.
  for (int i = 49; i >= 0; --i) {
    auto r = rpc.Wait(ids[i]);
    ASSERT_TRUE(r.ok()) << r.status();
    std::vector<float> scratch;
    EXPECT_EQ(r->payloads[0].Data<float>(&scratch)[0], 2.0f * i);
  }
  EXPECT_EQ(rpc.outstanding(), 0u);
}

TEST_F(RpcTest, UnansweredRequestFailsAtItsDeadline) {
  EchoServer server(&ctx_);
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(server.port())).ok());
  auto start = SteadyClock::now();
  auto r = rpc.Call(1, Message(wire::HEARTBEAT), 200);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(SecondsSince(start), 0.19);
  EXPECT_EQ(rpc.outstanding(), 0u);  // nothing left behind
}

TEST_F(RpcTest, AsyncCallbackRunsOnceOnResponseAndOnExpiry) {
  EchoServer server(&ctx_);
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(server.port())).ok());
  int ok = 0, failed = 0;
  auto cb = [&](StatusOr<Message>&& r) { r.ok() ? ++ok : ++failed; };
  ASSERT_TRUE(rpc.StartAsync(1, Ping({1}), kHangGuardMs, cb).ok());
  ASSERT_TRUE(rpc.StartAsync(1, Message(wire::HEARTBEAT), 100, cb).ok());
  ASSERT_TRUE(WaitUntil([&] {
    rpc.Poll(Deadline::In(50));
    return ok + failed >= 2;
  }));
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(rpc.outstanding(), 0u);
}

TEST_F(RpcTest, ErrorStatusReachesTheCaller) {
  EchoServer server(&ctx_);
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(server.port())).ok());
  Message bad(wire::PING);  // no payload: the service rejects it
  auto r = rpc.Call(1, std::move(bad), kHangGuardMs);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("expects 1 payload"), std::string::npos) << r.status();
}

TEST_F(RpcTest, MalformedRequestsGetAnErrorAndTheServerKeepsServing) {
  EchoServer server(&ctx_);
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.set(zmq::sockopt::rcvtimeo, static_cast<int>(kHangGuardMs));
  raw.connect("tcp://127.0.0.1:" + std::to_string(server.port()));

  // 1: garbage meta. 2: a meta declaring a payload that is not there.
  // 3: payload byte size disagreeing with the declared count.
  std::vector<std::vector<zmq::message_t>> hostile(3);
  hostile[0].emplace_back(std::string("\xff\xfe garbage"));
  {
    wire::Meta meta;
    meta.set_op(wire::PING);
    meta.set_request_id(11);
    meta.set_timeout_ms(1000);
    meta.add_frames()->set_dtype(wire::F32);
    meta.mutable_frames(0)->set_count(4);
    hostile[1].emplace_back(meta.SerializeAsString());
    hostile[2].emplace_back(meta.SerializeAsString());
    hostile[2].emplace_back(size_t{7});
  }
  for (auto& frames : hostile) {
    ASSERT_TRUE(zmq::send_multipart(raw, frames));
    std::vector<zmq::message_t> reply;
    ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(reply)));
    auto decoded = DecodeMessage(std::move(reply));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(decoded->meta.is_response());
    EXPECT_EQ(decoded->meta.status(), wire::INVALID_ARGUMENT);
    EXPECT_NE(decoded->meta.status_message().find("malformed"), std::string::npos);
  }
  // The service is still up and correct.
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(server.port())).ok());
  auto r = rpc.Call(1, Ping({5}), kHangGuardMs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(server.served(), 1);  // malformed requests never reached the handler
}

// Regression: a worker learned of a server from the scheduler and sent
// INIT_DENSE before the server had installed its handler; the request was
// refused and the worker died. Such requests now wait for the handler.
TEST_F(RpcTest, RequestBeforeHandlerIsServedOnceHandlerIsInstalled) {
  ZmqTransport server_transport(&ctx_);
  Rpc server(&server_transport, 1);
  auto port = server_transport.Bind("127.0.0.1", 0);
  ASSERT_TRUE(port.ok());
  ZmqTransport t(&ctx_);
  Rpc client(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(port.value())).ok());
  auto id = client.Start(1, Ping({1}), kHangGuardMs);
  ASSERT_TRUE(id.ok());
  // The server receives the request while it has no handler: it is kept,
  // not refused (a refusal would be the response Wait returns below).
  ASSERT_TRUE(WaitUntil([&] {
    server.Poll(Deadline::In(50), /*return_after_one=*/true);
    return server.waiting_for_handler() == 1;
  })) << "the request never reached the server's backlog";
  int served = 0;
  server.set_request_handler([&](Incoming&& in) {
    ++served;
    server.Reply(in, Message());
  });
  server.Poll(Deadline::Now());  // serves the backlog before anything else
  EXPECT_EQ(served, 1);
  EXPECT_EQ(server.waiting_for_handler(), 0u);
  auto r = client.Wait(id.value());
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST_F(RpcTest, TickRunsWhileWaitingForAResponse) {
  // A raw ROUTER answers the request only after the caller ticked 3 times
  // and got the answers of all its pings (below), so the Call can only return
  // OK if ticks ran while it waited, amid other traffic.
  constexpr int kTicksBeforeAnswer = 3;
  constexpr int64_t kIntervalMs = 50;
  zmq::socket_t raw(ctx_, zmq::socket_type::router);
  raw.set(zmq::sockopt::linger, 0);
  raw.set(zmq::sockopt::rcvtimeo, static_cast<int>(kHangGuardMs));
  raw.bind("tcp://127.0.0.1:*");
  std::string endpoint = raw.get(zmq::sockopt::last_endpoint);
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, endpoint).ok());
  // Other traffic wakes the waiting Poll many times per interval: the
  // answers of pings to an echo service.
  EchoServer echo(&ctx_);
  ASSERT_TRUE(t.Connect(2, "tcp://127.0.0.1:" + std::to_string(echo.port())).ok());
  constexpr int kPings = 2000;
  std::mutex mu;
  std::condition_variable changed;
  int ticks = 0, pings_answered = 0;  // guarded by mu
  for (int i = 0; i < kPings; ++i) {
    ASSERT_TRUE(rpc.StartAsync(2, Ping({1}), kHangGuardMs,
                               [&](StatusOr<Message>&& p) {
                                 std::lock_guard<std::mutex> lock(mu);
                                 if (p.ok()) ++pings_answered;
                                 changed.notify_all();
                               })
                    .ok());
  }
  std::thread peer([&] {
    std::vector<zmq::message_t> req;
    if (!zmq::recv_multipart(raw, std::back_inserter(req))) return;
    {
      std::unique_lock<std::mutex> lock(mu);
      if (!changed.wait_for(lock, std::chrono::milliseconds(kHangGuardMs), [&] {
            return ticks >= kTicksBeforeAnswer && pings_answered == kPings;
          })) {
        return;  // never answered: the Call fails at its deadline
      }
    }
    wire::Meta meta;
    meta.ParseFromArray(req[1].data(), static_cast<int>(req[1].size()));
    meta.set_is_response(true);
    std::vector<zmq::message_t> reply;
    reply.push_back(std::move(req[0]));
    reply.emplace_back(meta.SerializeAsString());
    zmq::send_multipart(raw, reply);
  });
  auto start = SteadyClock::now();
  rpc.set_tick(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        ++ticks;
        changed.notify_all();
      },
      kIntervalMs);
  auto r = rpc.Call(1, Message(wire::HEARTBEAT), kHangGuardMs);
  const double elapsed_ms = 1000 * SecondsSince(start);
  peer.join();
  EXPECT_TRUE(r.ok()) << r.status() << " (the tick did not run while the Call waited)";
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(pings_answered, kPings);
  EXPECT_GE(ticks, kTicksBeforeAnswer);
  // At most once per interval: the first tick is due at once, each next one
  // an interval later. (A slow machine only makes this bound looser.)
  EXPECT_LE(ticks, 1 + static_cast<int>(elapsed_ms / kIntervalMs)) << elapsed_ms << " ms";
}

TEST_F(RpcTest, MalformedResponseFailsItsRequestAtOnce) {
  // A raw ROUTER answers every request with a meta that promises a payload
  // frame it does not send.
  zmq::socket_t raw(ctx_, zmq::socket_type::router);
  raw.set(zmq::sockopt::linger, 0);
  raw.bind("tcp://127.0.0.1:*");
  std::string endpoint = raw.get(zmq::sockopt::last_endpoint);
  std::thread peer([&] {
    std::vector<zmq::message_t> req;
    if (!zmq::recv_multipart(raw, std::back_inserter(req))) return;
    wire::Meta meta;
    meta.ParseFromArray(req[1].data(), static_cast<int>(req[1].size()));
    meta.set_is_response(true);
    meta.add_frames()->set_dtype(wire::F32);
    meta.mutable_frames(0)->set_count(1);
    std::vector<zmq::message_t> reply;
    reply.push_back(std::move(req[0]));
    reply.emplace_back(meta.SerializeAsString());
    zmq::send_multipart(raw, reply);
  });
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, endpoint).ok());
  auto r = rpc.Call(1, Ping({1}), kHangGuardMs);
  peer.join();
  // Failed by the response, not at the deadline (that would be
  // DeadlineExceeded, after kHangGuardMs).
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("malformed response"), std::string::npos) << r.status();
  EXPECT_EQ(rpc.outstanding(), 0u);
}

TEST(DeadlineTest, APollTimeoutIsTheTimeLeftRoundedUp) {
  EXPECT_EQ(Deadline(SteadyClock::now() - std::chrono::milliseconds(1)).PollTimeoutMs(), 0);
  EXPECT_EQ(Deadline::Now().PollTimeoutMs(), 0);
  // 10 s ahead, a moment later: rounded up 10000, rounded down 9999. Under a
  // millisecond passes between the two lines on all but a stalled machine,
  // so one of a few tries sees 10000 (rounding down never would).
  bool rounded_up = false;
  for (int i = 0; i < 5 && !rounded_up; ++i) {
    const Deadline d(SteadyClock::now() + std::chrono::seconds(10));
    const int64_t ms = d.PollTimeoutMs();
    EXPECT_LE(ms, 10000);
    rounded_up = ms == 10000;
  }
  EXPECT_TRUE(rounded_up);
}

TEST_F(RpcTest, AWaitForADeadlineUnderAMillisecondAwaySleeps) {
  // Regression: the poll's timeout was the time left rounded down to whole
  // milliseconds, so under 1 ms before a deadline Receive polled with 0 until
  // it passed. Every Rpc::Poll(Deadline::In(50)) loop spun up to 1 ms per
  // tick, and on two cores that stalled the requests in flight (ps_bench's
  // p99 at 4096 keys was twice its p50, in a 50 ms rhythm).
  ZmqTransport t(&ctx_);
  ASSERT_TRUE(t.Bind("127.0.0.1", 0).ok());
  constexpr int kWaits = 100;
  const auto thread_cpu = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  const auto cpu0 = thread_cpu();
  const auto wall0 = SteadyClock::now();
  for (int i = 0; i < kWaits; ++i) {
    const Deadline d(SteadyClock::now() + std::chrono::microseconds(700));
    auto r = t.Receive(d);
    ASSERT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status();
    ASSERT_TRUE(d.Expired()) << "Receive returned before its deadline";
  }
  const auto cpu = thread_cpu() - cpu0;
  const auto wall = SteadyClock::now() - wall0;
  // Sleeping, each wait costs a few system calls (tens of microseconds);
  // spinning, it costs as much CPU as the machine grants the thread.
  EXPECT_LT(cpu * 4, wall) << "CPU " << std::chrono::duration<double, std::milli>(cpu).count()
                           << " ms in " << std::chrono::duration<double, std::milli>(wall).count()
                           << " ms of waiting";
}

TEST_F(RpcTest, PollReturnsAtItsDeadlineUnderAFlood) {
  // Regression: Poll kept serving while messages kept coming, so a busy
  // server loop never got back to its own work (heartbeats, job state).
  ZmqTransport server_transport(&ctx_);
  Rpc server(&server_transport, 1);
  auto port = server_transport.Bind("127.0.0.1", 0);
  ASSERT_TRUE(port.ok());
  // The handler counts the requests it serves after the deadline of the Poll
  // in progress passed: Poll checks its deadline after every message, so at
  // most the one it was receiving as the deadline passed. This holds however
  // slow the machine is (no bound on how long Poll took).
  int served = 0, served_past_deadline = 0;
  Deadline until = Deadline::In(kHangGuardMs);
  server.set_request_handler([&](Incoming&& in) {
    ++served;
    if (until.Expired()) ++served_past_deadline;
    server.Reply(in, Message());
  });
  ZmqTransport t(&ctx_);
  Rpc client(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(port.value())).ok());
  constexpr int kQueued = 20000;
  for (int i = 0; i < kQueued; ++i) {
    ASSERT_TRUE(
        client.StartAsync(1, Message(wire::PING), kHangGuardMs, [](StatusOr<Message>&&) {}).ok());
  }
  // Wait until the first request is in, then give Poll 20 ms.
  server.Poll(until, /*return_after_one=*/true);
  ASSERT_EQ(served, 1);
  until = Deadline::In(20);
  server.Poll(until);
  EXPECT_LE(served_past_deadline, 1) << "Poll kept serving past its deadline";
  EXPECT_LT(served, kQueued);  // it returned with work still queued
  // Everything is served eventually.
  until = Deadline::In(kHangGuardMs);
  EXPECT_TRUE(WaitUntil([&] {
    server.Poll(Deadline::In(50));
    return served == kQueued;
  })) << served;
  EXPECT_EQ(served, kQueued);
}

TEST_F(RpcTest, ConnectTwiceAndUnknownPeerAreErrors) {
  ZmqTransport t(&ctx_);
  ASSERT_TRUE(t.Connect(3, "tcp://127.0.0.1:1").ok());
  EXPECT_FALSE(t.Connect(3, "tcp://127.0.0.1:1").ok());
  EXPECT_EQ(t.Send(4, Message(wire::PING)).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace mtps
