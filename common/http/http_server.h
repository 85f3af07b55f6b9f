// HttpServer: a small HTTP/1.1 server on Boost.Asio for read-only endpoints,
// such as the scheduler's GET /metrics (ps/scheduler/cluster_metrics.h).
//
// One thread of its own runs an io_context; every socket operation is
// asynchronous, so a slow or silent client holds only its own connection.
// Per connection: the request line and headers are read with a size cap
// (max_request_bytes; beyond it: 431) and the whole exchange — reading the
// request and writing the answer — has one deadline (request_timeout_ms; at
// it the connection is closed). Then one response with `Connection: close`,
// and the connection ends (no keep-alive, no request bodies). GET (or HEAD)
// of a registered path answers 200 with its handler's body; another method
// on it answers 405 with `Allow: GET, HEAD`; any other path 404; a request
// line that is not `METHOD TARGET HTTP/1.x` 400; a handler that throws 500.
// Connections beyond max_connections are closed at once. Nothing a client
// sends can stop the server or make it allocate more than
// max_request_bytes per connection.
//
// Threads: Handle, Start and Stop are called by the owner (one thread);
// handlers run on the server's thread and must be thread-safe against the
// owner's threads and quick (they hold up every connection while they run).
// counters() may be read from any thread.
#ifndef MTPS_COMMON_HTTP_HTTP_SERVER_H_
#define MTPS_COMMON_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/base/status.h"

namespace mtps {

// A value type.
struct HttpServerOptions {
  // The address to bind (an IP address or a host name) and port (0: any free one).
  std::string host = "127.0.0.1";
  int port = 0;
  // The request line and headers, at most.
  size_t max_request_bytes = 8192;
  // Reading a request and writing its answer, at most.
  int64_t request_timeout_ms = 5000;
  // Open connections, at most (more are closed as they are accepted).
  int max_connections = 64;
};

class HttpServer {
 public:
  // The body of a 200 answer.
  using Handler = std::function<std::string()>;

  explicit HttpServer(HttpServerOptions options);
  // Stop(1000) if still running.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Before Start: GET `path` (e.g. "/metrics"; the query string is ignored)
  // answers 200 with `content_type` and the body `handler` returns.
  void Handle(const std::string& path, const std::string& content_type, Handler handler);

  // Binds and starts serving on the server's thread; returns the bound
  // port. IoError naming the address when it cannot bind.
  StatusOr<int> Start();
  int port() const { return port_; }

  // Stops accepting, closes connections still reading their request, lets
  // answers being written finish until `timeout_ms` passes, then closes the
  // rest and joins the thread. Idempotent.
  void Stop(int64_t timeout_ms);

  // What the server did so far (tests, logs).
  struct Counters {
    std::atomic<int64_t> accepted{0};
    std::atomic<int64_t> answered{0};      // responses written, any status
    std::atomic<int64_t> bad_requests{0};  // 400, 405 and 431 answers
    std::atomic<int64_t> timed_out{0};     // closed at the deadline
    std::atomic<int64_t> refused{0};       // over max_connections
  };
  const Counters& counters() const { return counters_; }

 private:
  class Impl;
  Counters counters_;  // before impl_, which points to it
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace mtps

#endif  // MTPS_COMMON_HTTP_HTTP_SERVER_H_
