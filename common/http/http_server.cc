// The HTTP server's connections on Boost.Asio (see common/http/http_server.h).
#include "common/http/http_server.h"

#include <glog/logging.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include <boost/asio.hpp>

namespace mtps {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;

namespace {

struct Route {
  std::string content_type;
  HttpServer::Handler handler;
};

std::string StatusText(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Internal Server Error";
  }
}

std::string Response(int code, const std::string& content_type, const std::string& body,
                     bool head_only, const std::string& extra_headers = "") {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + StatusText(code) + "\r\n";
  r += "Content-Type: " + content_type + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra_headers;
  r += "Connection: close\r\n\r\n";
  if (!head_only) r += body;
  return r;
}

std::string TextResponse(int code, const std::string& text, const std::string& extra = "") {
  return Response(code, "text/plain; charset=utf-8", text + "\n", false, extra);
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, Counters* counters)
      : options_(std::move(options)),
        counters_(counters),
        acceptor_(io_),
        work_(asio::make_work_guard(io_)) {}

  ~Impl() {
    // The owner stopped the thread; what is left dies with io_.
    connections_.clear();
  }

  void AddRoute(const std::string& path, Route route) { routes_[path] = std::move(route); }

  StatusOr<int> Start() {
    const std::string where = options_.host + ":" + std::to_string(options_.port);
    ErrorCode ec;
    tcp::resolver resolver(io_);
    auto endpoints = resolver.resolve(options_.host, std::to_string(options_.port),
                                      tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || endpoints.empty()) {
      return Status::IoError("HTTP server: cannot resolve " + where + ": " +
                             (ec ? ec.message() : "no address"));
    }
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      acceptor_.close();
      return Status::IoError("HTTP server: cannot listen on " + where + ": " + ec.message());
    }
    const int port = acceptor_.local_endpoint(ec).port();
    Accept();
    thread_ = std::thread([this] { Run(); });
    return port;
  }

  void Stop(int64_t timeout_ms) {
    if (!thread_.joinable()) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    asio::post(io_, [this] {
      stopping_ = true;
      ErrorCode ignored;
      acceptor_.close(ignored);
      // A connection still reading its request gets no answer now.
      for (const auto& c : std::set<ConnectionPtr>(connections_)) {  // Close erases
        if (!c->writing) Close(c);
      }
    });
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!idle_.wait_until(lock, deadline, [this] { return open_ == 0; })) {
        LOG(WARNING) << "HTTP server: " << open_ << " connections still open at the stop deadline";
      }
    }
    asio::post(io_, [this] {
      for (const auto& c : std::set<ConnectionPtr>(connections_)) Close(c);
    });
    // With everything closed, what is queued (an accepted socket not yet
    // handed over, aborted reads) runs and run() returns; io_.stop() only
    // if that takes longer than a second more.
    work_.reset();
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!idle_.wait_for(lock, std::chrono::seconds(1), [this] { return ran_out_; })) {
        LOG(WARNING) << "HTTP server: its thread still runs after the stop; stopping it";
        io_.stop();
      }
    }
    thread_.join();
  }

 private:
  struct Connection {
    explicit Connection(asio::io_context& io) : socket(io), timer(io) {}
    tcp::socket socket;
    asio::steady_timer timer;
    std::string in;
    std::string out;
    bool writing = false;
    bool closed = false;
  };
  using ConnectionPtr = std::shared_ptr<Connection>;

  void Run() {
    for (;;) {
      try {
        io_.run();
        std::lock_guard<std::mutex> lock(mu_);
        ran_out_ = true;
        idle_.notify_all();
        return;
      } catch (const std::exception& e) {
        // Nothing below throws by design (every call takes an error_code);
        // should something, the server keeps serving.
        LOG(ERROR) << "HTTP server: " << e.what();
      }
    }
  }

  void Accept() {
    acceptor_.async_accept([this](const ErrorCode& ec, tcp::socket socket) {
      if (stopping_ || ec == asio::error::operation_aborted) return;
      if (!ec) {
        ++counters_->accepted;
        if (static_cast<int>(connections_.size()) >= options_.max_connections) {
          ++counters_->refused;
          ErrorCode ignored;
          socket.close(ignored);
        } else {
          Begin(std::move(socket));
        }
      } else {
        LOG_EVERY_N(WARNING, 100) << "HTTP server: accept: " << ec.message();
      }
      Accept();
    });
  }

  void Begin(tcp::socket socket) {
    auto c = std::make_shared<Connection>(io_);
    c->socket = std::move(socket);
    connections_.insert(c);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++open_;
    }
    c->timer.expires_after(std::chrono::milliseconds(options_.request_timeout_ms));
    c->timer.async_wait([this, c](const ErrorCode& ec) {
      if (ec == asio::error::operation_aborted || c->closed) return;
      ++counters_->timed_out;
      Close(c);
    });
    asio::async_read_until(c->socket, asio::dynamic_buffer(c->in, options_.max_request_bytes),
                           "\r\n\r\n", [this, c](const ErrorCode& ec, size_t header_bytes) {
                             if (c->closed) return;
                             if (ec == asio::error::not_found) {
                               ++counters_->bad_requests;
                               return Write(c, TextResponse(431, "request headers too large"));
                             }
                             if (ec) return Close(c);  // the client left, or garbage then EOF
                             Answer(c, c->in.substr(0, header_bytes));
                           });
  }

  void Answer(const ConnectionPtr& c, const std::string& head) {
    const size_t eol = head.find("\r\n");
    const std::string line = head.substr(0, eol);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos ||
        line.find(' ', sp2 + 1) != std::string::npos || line.compare(sp2 + 1, 7, "HTTP/1.") != 0 ||
        line.size() != sp2 + 9 || sp1 == 0 || sp2 == sp1 + 1) {
      ++counters_->bad_requests;
      return Write(c, TextResponse(400, "malformed request line"));
    }
    const std::string method = line.substr(0, sp1);
    std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (size_t q = path.find('?'); q != std::string::npos) path.resize(q);
    auto route = routes_.find(path);
    if (route == routes_.end()) return Write(c, TextResponse(404, "no such path"));
    const bool head_only = method == "HEAD";
    if (method != "GET" && !head_only) {
      ++counters_->bad_requests;
      return Write(c, TextResponse(405, "only GET and HEAD", "Allow: GET, HEAD\r\n"));
    }
    std::string body;
    try {
      body = route->second.handler();
    } catch (const std::exception& e) {
      LOG_EVERY_N(ERROR, 100) << "HTTP server: the handler of " << path << " failed: " << e.what();
      return Write(c, TextResponse(500, "internal error"));
    }
    Write(c, Response(200, route->second.content_type, body, head_only));
  }

  void Write(const ConnectionPtr& c, std::string response) {
    c->writing = true;
    c->out = std::move(response);
    asio::async_write(c->socket, asio::buffer(c->out), [this, c](const ErrorCode& ec, size_t) {
      if (c->closed) return;
      if (!ec) {
        ++counters_->answered;
        ErrorCode ignored;
        c->socket.shutdown(tcp::socket::shutdown_both, ignored);
      }
      Close(c);
    });
  }

  void Close(const ConnectionPtr& c) {
    if (c->closed) return;
    c->closed = true;
    ErrorCode ignored;
    c->timer.cancel();
    c->socket.close(ignored);
    connections_.erase(c);
    std::lock_guard<std::mutex> lock(mu_);
    --open_;
    idle_.notify_all();
  }

  const HttpServerOptions options_;
  Counters* counters_;
  std::map<std::string, Route> routes_;  // set before Start, then read-only
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  // The server's thread only.
  std::set<ConnectionPtr> connections_;
  bool stopping_ = false;
  // Open connections, for Stop's wait.
  std::mutex mu_;
  std::condition_variable idle_;
  int open_ = 0;          // guarded by mu_
  bool ran_out_ = false;  // guarded by mu_: io_.run() returned
  std::thread thread_;
};

HttpServer::HttpServer(HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options), &counters_)) {}

HttpServer::~HttpServer() { Stop(1000); }

void HttpServer::Handle(const std::string& path, const std::string& content_type, Handler handler) {
  impl_->AddRoute(path, Route{content_type, std::move(handler)});
}

StatusOr<int> HttpServer::Start() {
  MTPS_ASSIGN_OR_RETURN(port_, impl_->Start());
  return port_;
}

void HttpServer::Stop(int64_t timeout_ms) { impl_->Stop(timeout_ms); }

}  // namespace mtps
