// HttpServer (common/http/http_server.h) over real loopback sockets: GET and
// HEAD of a registered path answer 200 with the handler's body and content
// type, other paths 404, other methods 405, a malformed request line 400,
// oversized headers 431, a throwing handler 500; a garbage client and a slow
// (silent) client do not hold up others and the slow one is closed at the
// deadline; connections beyond the cap are closed; Stop ends within its
// deadline with a client still connected, whose connection it closes.
#include "common/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace mtps {
namespace {

using Clock = std::chrono::steady_clock;

// A connected client socket (-1 when the connection failed); closed on destruction.
class Client {
 public:
  explicit Client(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  bool connected() const { return fd_ >= 0; }

  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Everything the server sends until it closes, or what came before
  // `timeout_ms` passed (then *closed is false).
  std::string ReadToEnd(int timeout_ms, bool* closed = nullptr) {
    std::string out;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buffer[4096];
      const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        if (closed != nullptr) *closed = true;
        return out;
      }
      out.append(buffer, static_cast<size_t>(n));
    }
    if (closed != nullptr) *closed = false;
    return out;
  }

 private:
  int fd_ = -1;
};

// One request, the whole answer (the server closes every connection).
std::string Exchange(int port, const std::string& request, int timeout_ms = 5000) {
  Client c(port);
  EXPECT_TRUE(c.connected());
  EXPECT_TRUE(c.Send(request));
  bool closed = false;
  std::string answer = c.ReadToEnd(timeout_ms, &closed);
  EXPECT_TRUE(closed) << "no end of answer within " << timeout_ms << " ms: " << answer;
  return answer;
}

std::string StatusLine(const std::string& answer) { return answer.substr(0, answer.find("\r\n")); }

std::string Body(const std::string& answer) {
  const size_t end = answer.find("\r\n\r\n");
  return end == std::string::npos ? "" : answer.substr(end + 4);
}

class HttpServerTest : public ::testing::Test {
 protected:
  // A server with /metrics answering `body_` and /fail throwing.
  void Start(HttpServerOptions o = HttpServerOptions()) {
    server_ = std::make_unique<HttpServer>(o);
    server_->Handle("/metrics", "text/plain; version=0.0.4", [this] {
      ++calls_;
      return body_;
    });
    server_->Handle("/fail", "text/plain",
                    []() -> std::string { throw std::runtime_error("handler broke"); });
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    ASSERT_GT(port_, 0);
  }

  std::string body_ = "# TYPE x counter\nx 1\n";
  std::atomic<int> calls_{0};
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(HttpServerTest, GetAnswersTheHandlersBodyWithItsContentType) {
  Start();
  const std::string answer = Exchange(port_, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusLine(answer), "HTTP/1.1 200 OK");
  EXPECT_NE(answer.find("\r\nContent-Type: text/plain; version=0.0.4\r\n"), std::string::npos)
      << answer;
  EXPECT_NE(answer.find("\r\nContent-Length: " + std::to_string(body_.size()) + "\r\n"),
            std::string::npos)
      << answer;
  EXPECT_NE(answer.find("\r\nConnection: close\r\n"), std::string::npos) << answer;
  EXPECT_EQ(Body(answer), body_);
  // A query string is ignored; the body is the handler's at each call.
  body_ = "y 2\n";
  EXPECT_EQ(Body(Exchange(port_, "GET /metrics?x=1 HTTP/1.0\r\n\r\n")), "y 2\n");
  EXPECT_EQ(calls_.load(), 2);
  EXPECT_EQ(server_->counters().answered.load(), 2);
}

TEST_F(HttpServerTest, HeadAnswersHeadersOnly) {
  Start();
  const std::string answer = Exchange(port_, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusLine(answer), "HTTP/1.1 200 OK");
  EXPECT_NE(answer.find("Content-Length: " + std::to_string(body_.size())), std::string::npos);
  EXPECT_EQ(Body(answer), "");
}

TEST_F(HttpServerTest, OtherPathsAre404OtherMethods405BadLines400) {
  Start();
  EXPECT_EQ(StatusLine(Exchange(port_, "GET / HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(StatusLine(Exchange(port_, "GET /metricsx HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 404 Not Found");
  const std::string post = Exchange(port_, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(StatusLine(post), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(post.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << post;
  EXPECT_EQ(StatusLine(Exchange(port_, "DELETE /metrics HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 405 Method Not Allowed");
  for (const std::string bad :
       {"GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics FTP/1.0\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.1 x\r\n\r\n", "\r\n\r\n"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(StatusLine(Exchange(port_, bad)), "HTTP/1.1 400 Bad Request");
  }
  EXPECT_EQ(calls_.load(), 0);
  EXPECT_EQ(StatusLine(Exchange(port_, "GET /fail HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 500 Internal Server Error");
  // And it still serves.
  EXPECT_EQ(StatusLine(Exchange(port_, "GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
}

TEST_F(HttpServerTest, OversizedHeadersAre431) {
  HttpServerOptions o;
  o.max_request_bytes = 1024;
  Start(o);
  const std::string big = "GET /metrics HTTP/1.1\r\nX: " + std::string(4000, 'a') + "\r\n\r\n";
  EXPECT_EQ(StatusLine(Exchange(port_, big)), "HTTP/1.1 431 Request Header Fields Too Large");
  EXPECT_EQ(StatusLine(Exchange(port_, "GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
}

TEST_F(HttpServerTest, GarbageAndSlowClientsDoNotHoldUpOthers) {
  HttpServerOptions o;
  o.request_timeout_ms = 30000;  // far beyond the answers below
  Start(o);
  // A slow client: half a request line, then silence.
  Client slow(port_);
  ASSERT_TRUE(slow.connected());
  ASSERT_TRUE(slow.Send("GET /met"));
  // A garbage client: binary bytes with no end of headers.
  Client garbage(port_);
  ASSERT_TRUE(garbage.connected());
  std::string junk;
  for (int i = 0; i < 500; ++i) junk.push_back(static_cast<char>((i * 37) & 0xff));
  ASSERT_TRUE(garbage.Send(junk));
  // Others are answered at once, many times over.
  const auto start = Clock::now();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Body(Exchange(port_, "GET /metrics HTTP/1.1\r\n\r\n", 5000)), body_);
  }
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  // Neither waiting client got an answer (their requests never ended).
  bool closed = true;
  EXPECT_EQ(slow.ReadToEnd(100, &closed), "");
  EXPECT_FALSE(closed);
}

TEST_F(HttpServerTest, ASilentClientIsClosedAtTheDeadline) {
  HttpServerOptions o;
  o.request_timeout_ms = 300;
  Start(o);
  Client silent(port_);
  ASSERT_TRUE(silent.connected());
  ASSERT_TRUE(silent.Send("GET /metrics HTTP/1.1\r\n"));  // never ends its headers
  bool closed = false;
  EXPECT_EQ(silent.ReadToEnd(10000, &closed), "");
  EXPECT_TRUE(closed);
  EXPECT_EQ(server_->counters().timed_out.load(), 1);
}

TEST_F(HttpServerTest, ConnectionsBeyondTheCapAreClosed) {
  HttpServerOptions o;
  o.max_connections = 2;
  o.request_timeout_ms = 30000;
  Start(o);
  Client a(port_), b(port_);
  ASSERT_TRUE(a.connected() && b.connected());
  ASSERT_TRUE(a.Send("G"));
  ASSERT_TRUE(b.Send("G"));
  // Wait until both are accepted (the counter), then a third is refused.
  const auto limit = Clock::now() + std::chrono::seconds(10);
  while (server_->counters().accepted.load() < 2 && Clock::now() < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(server_->counters().accepted.load(), 2);
  Client c(port_);
  bool closed = false;
  EXPECT_EQ(c.ReadToEnd(10000, &closed), "");
  EXPECT_TRUE(closed);
  EXPECT_EQ(server_->counters().refused.load(), 1);
}

TEST_F(HttpServerTest, StopEndsWithinItsDeadlineAndClosesConnections) {
  HttpServerOptions o;
  o.request_timeout_ms = 60000;
  Start(o);
  EXPECT_EQ(StatusLine(Exchange(port_, "GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
  Client waiting(port_);
  ASSERT_TRUE(waiting.connected());
  ASSERT_TRUE(waiting.Send("GET /metr"));
  // Stopped with one connection accepted (it is closed) or still in the
  // listen queue (refused with the socket): either way it ends.
  const auto start = Clock::now();
  server_->Stop(2000);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  bool closed = false;
  waiting.ReadToEnd(5000, &closed);
  EXPECT_TRUE(closed);
  server_->Stop(1000);  // idempotent
}

TEST(HttpServerStartTest, ABadAddressIsAnErrorNamingIt) {
  HttpServerOptions o;
  o.host = "no-such-host.invalid";
  HttpServer server(o);
  auto port = server.Start();
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.status().message().find("no-such-host.invalid"), std::string::npos)
      << port.status();
  // A port already taken.
  HttpServer first((HttpServerOptions()));
  auto taken = first.Start();
  ASSERT_TRUE(taken.ok()) << taken.status();
  HttpServerOptions same;
  same.port = *taken;
  HttpServer second(same);
  auto again = second.Start();
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find(std::to_string(*taken)), std::string::npos)
      << again.status();
}

}  // namespace
}  // namespace mtps
