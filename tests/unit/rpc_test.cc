// Transport and Rpc over real ZeroMQ sockets on loopback (port 0): request and
// response matching, deadlines, and hostile or malformed peers.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <zmq_addon.hpp>

#include "common/net/rpc.h"
#include "common/net/zmq_transport.h"

namespace mtps {
namespace {

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
  auto r = rpc.Call(1, Ping({1, 2, 3}), 5000);
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
    auto id = rpc.Start(1, Ping({static_cast<float>(i)}), 5000);
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
  ASSERT_TRUE(rpc.StartAsync(1, Ping({1}), 5000, cb).ok());
  ASSERT_TRUE(rpc.StartAsync(1, Message(wire::HEARTBEAT), 100, cb).ok());
  Deadline until = Deadline::In(3000);
  while ((ok + failed) < 2 && !until.Expired()) rpc.Poll(Deadline::In(50));
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
  auto r = rpc.Call(1, std::move(bad), 5000);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("expects 1 payload"), std::string::npos) << r.status();
}

TEST_F(RpcTest, MalformedRequestsGetAnErrorAndTheServerKeepsServing) {
  EchoServer server(&ctx_);
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.set(zmq::sockopt::rcvtimeo, 5000);
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
  auto r = rpc.Call(1, Ping({5}), 5000);
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
  auto id = client.Start(1, Ping({1}), 5000);
  ASSERT_TRUE(id.ok());
  // The server receives the request while it has no handler.
  server.Poll(Deadline::In(300));
  client.Poll(Deadline::In(100));
  EXPECT_FALSE(client.Done(id.value()));  // not refused, still waiting
  int served = 0;
  server.set_request_handler([&](Incoming&& in) {
    ++served;
    server.Reply(in, Message());
  });
  server.Poll(Deadline::In(50));
  EXPECT_EQ(served, 1);
  auto r = client.Wait(id.value());
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST_F(RpcTest, TickRunsWhileWaitingForAResponse) {
  EchoServer server(&ctx_);
  ZmqTransport t(&ctx_);
  Rpc rpc(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(server.port())).ok());
  int ticks = 0;
  rpc.set_tick([&] { ++ticks; }, 50);
  auto r = rpc.Call(1, Message(wire::HEARTBEAT), 600);  // never answered
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_GE(ticks, 8);   // about 12 intervals passed
  EXPECT_LE(ticks, 14);  // at most once per interval
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
  auto start = SteadyClock::now();
  auto r = rpc.Call(1, Ping({1}), 10000);
  peer.join();
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("malformed response"), std::string::npos) << r.status();
  EXPECT_LT(SecondsSince(start), 5.0);  // not at the 10 s deadline
}

TEST_F(RpcTest, PollReturnsAtItsDeadlineUnderAFlood) {
  // Regression: Poll kept serving while messages kept coming, so a busy
  // server loop never got back to its own work (heartbeats, job state).
  ZmqTransport server_transport(&ctx_);
  Rpc server(&server_transport, 1);
  auto port = server_transport.Bind("127.0.0.1", 0);
  ASSERT_TRUE(port.ok());
  int served = 0;
  server.set_request_handler([&](Incoming&& in) {
    ++served;
    server.Reply(in, Message());
  });
  ZmqTransport t(&ctx_);
  Rpc client(&t, 7);
  ASSERT_TRUE(t.Connect(1, "tcp://127.0.0.1:" + std::to_string(port.value())).ok());
  constexpr int kQueued = 20000;
  for (int i = 0; i < kQueued; ++i) {
    ASSERT_TRUE(client.StartAsync(1, Message(wire::PING), 20000, [](StatusOr<Message>&&) {}).ok());
  }
  // Wait until the first request is in, then give Poll 20 ms.
  server.Poll(Deadline::In(5000), /*return_after_one=*/true);
  auto start = SteadyClock::now();
  server.Poll(Deadline::In(20));
  double took = SecondsSince(start);
  EXPECT_LT(took, 0.5);
  EXPECT_LT(served, kQueued);  // it returned with work still queued
  // Everything is served eventually.
  Deadline until = Deadline::In(15000);
  while (served < kQueued && !until.Expired()) server.Poll(Deadline::In(50));
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
