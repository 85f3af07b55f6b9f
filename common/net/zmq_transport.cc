// ZeroMQ implementation of Transport (see common/net/zmq_transport.h).
#include "common/net/zmq_transport.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <zmq_addon.hpp>

namespace mtps {
namespace {
// Messages ZeroMQ queues per connection for what a peer sends or is sent
// (requests received, replies to it, responses received) before it stops
// reading the peer's socket (TCP then pushes back) or Reply reports
// Unavailable. A server queues at most 256 requests for its shards and a
// worker keeps a few per server in flight, so 1024 is ample for every peer
// while bounding what a flooding or non-reading peer can make this process
// buffer.
constexpr int kHighWaterMark = 1024;
// This process's own requests to one peer, queued before Send reports
// Unavailable: only this process fills that queue.
constexpr int kOwnRequestsHighWaterMark = 100000;
// How long close() may keep flushing unsent messages (e.g. final replies).
constexpr int kLingerMs = 2000;
// Largest message accepted on the bound endpoint (requests): the largest
// legitimate one is a push, whose keys and gradients a server caps at
// 512 MiB (ps/server/server.cc). ZeroMQ drops the connection of a peer that
// sends more, before buffering it.
constexpr int64_t kMaxRequestBytes = int64_t{512} << 20;
// Largest message accepted on an outgoing connection (responses): a pull
// answer (at most 256 MiB) or a rejoining server's partition copy (one
// frame of at most 1 GiB, plus its meta).
constexpr int64_t kMaxResponseBytes = (int64_t{1} << 30) + (int64_t{1} << 20);

void ConfigureSocket(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::linger, kLingerMs);
  socket.set(zmq::sockopt::sndhwm, kHighWaterMark);
  socket.set(zmq::sockopt::rcvhwm, kHighWaterMark);
}
}  // namespace

ZmqTransport::ZmqTransport(zmq::context_t* context)
    : context_(context), wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  PCHECK(wake_fd_ >= 0) << "eventfd";
}

ZmqTransport::~ZmqTransport() { close(wake_fd_); }

void ZmqTransport::EnableCurve(CurveKeys keys) {
  keys_ = std::move(keys);
  curve_ = true;
}

void ZmqTransport::Wake() {
  const uint64_t one = 1;
  // Non-blocking: a full counter (2^64 - 2 wakes pending) already wakes.
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;
}

StatusOr<int> ZmqTransport::Bind(const std::string& host, int port) {
  if (router_ != nullptr) return Status::InvalidArgument("transport already bound");
  try {
    router_ = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::router);
    ConfigureSocket(*router_);
    // Replies to a vanished peer fail loudly instead of being dropped.
    router_->set(zmq::sockopt::router_mandatory, 1);
    // A peer cannot make this process buffer an arbitrarily large message:
    // ZeroMQ drops the connection of a sender that exceeds it.
    router_->set(zmq::sockopt::maxmsgsize, kMaxRequestBytes);
    if (curve_) {
      // Every client is checked by the context's ZapHandler (ZAP domain set).
      router_->set(zmq::sockopt::curve_server, 1);
      router_->set(zmq::sockopt::curve_secretkey, keys_.self.secret_key);
      router_->set(zmq::sockopt::zap_domain, "mtps");
    }
    router_->bind("tcp://" + host + ":" + (port == 0 ? std::string("*") : std::to_string(port)));
    std::string endpoint = router_->get(zmq::sockopt::last_endpoint);
    size_t colon = endpoint.rfind(':');
    return std::stoi(endpoint.substr(colon + 1));
  } catch (const zmq::error_t& e) {
    router_.reset();
    return Status::Unavailable("cannot bind tcp://" + host + ":" + std::to_string(port) + ": " +
                               e.what());
  }
}

Status ZmqTransport::Connect(int peer, const std::string& endpoint) {
  if (dealers_.count(peer) != 0) {
    return Status::InvalidArgument("already connected to node " + std::to_string(peer));
  }
  try {
    auto dealer = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::dealer);
    ConfigureSocket(*dealer);
    dealer->set(zmq::sockopt::sndhwm, kOwnRequestsHighWaterMark);
    dealer->set(zmq::sockopt::maxmsgsize, kMaxResponseBytes);
    if (curve_) {
      auto name = peer_names_.find(peer);
      auto key = name == peer_names_.end() ? keys_.public_keys.end()
                                           : keys_.public_keys.find(name->second);
      if (key == keys_.public_keys.end()) {
        return Status::InvalidArgument(
            "CURVE: no public key for node " + std::to_string(peer) +
            (name == peer_names_.end() ? " (unnamed)" : " (" + name->second + ")"));
      }
      dealer->set(zmq::sockopt::curve_serverkey, key->second);
      dealer->set(zmq::sockopt::curve_publickey, keys_.self.public_key);
      dealer->set(zmq::sockopt::curve_secretkey, keys_.self.secret_key);
    }
    dealer->connect(endpoint);
    dealers_[peer] = std::move(dealer);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot connect to node " + std::to_string(peer) + " at " +
                               endpoint + ": " + e.what());
  }
  return Status::OK();
}

Status ZmqTransport::SendFrames(zmq::socket_t& socket, std::vector<zmq::message_t>&& frames,
                                const std::string* routing_id) {
  try {
    if (routing_id != nullptr) {
      if (!socket.send(zmq::buffer(*routing_id),
                       zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        return Status::Unavailable("send queue full");
      }
    }
    for (size_t i = 0; i < frames.size(); ++i) {
      auto flags = zmq::send_flags::dontwait;
      if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
      if (!socket.send(frames[i], flags)) return Status::Unavailable("send queue full");
    }
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("send failed: ") + e.what());
  }
  return Status::OK();
}

Status ZmqTransport::Send(int peer, Message msg) {
  auto it = dealers_.find(peer);
  if (it == dealers_.end())
    return Status::Unavailable("not connected to node " + std::to_string(peer));
  Status s = SendFrames(*it->second, EncodeMessage(std::move(msg)), nullptr);
  if (!s.ok()) return Status(s.code(), "to node " + std::to_string(peer) + ": " + s.message());
  return s;
}

Status ZmqTransport::Reply(const std::string& reply_to, Message msg) {
  if (router_ == nullptr) return Status::InvalidArgument("reply on an unbound transport");
  return SendFrames(*router_, EncodeMessage(std::move(msg)), &reply_to);
}

StatusOr<Incoming> ZmqTransport::ReadFrom(zmq::socket_t& socket, bool is_router, int peer) {
  std::vector<zmq::message_t> frames;
  try {
    if (!zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      return Status::DeadlineExceeded("spurious wake-up");
    }
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("receive failed: ") + e.what());
  }
  Incoming in;
  in.peer = peer;
  if (is_router) {
    if (frames.empty()) return Status::InvalidArgument("message without a routing id");
    in.reply_to = frames[0].to_string();
    if (curve_ && frames.size() > 1) {
      // Set by the ZapHandler: the node whose key completed the handshake.
      const char* user = zmq_msg_gets(frames[1].handle(), "User-Id");
      if (user != nullptr) in.authenticated_as = user;
    }
    frames.erase(frames.begin());
  }
  wire::Meta meta;
  auto decoded = DecodeMessage(std::move(frames), &meta);
  if (!decoded.ok()) {
    // A malformed response whose meta parsed fails its request now (rather
    // than at its deadline): hand the waiter an error response.
    if (!is_router && meta.is_response() && meta.request_id() != 0) {
      in.msg = Message();
      in.msg.meta.set_op(meta.op());
      in.msg.meta.set_request_id(meta.request_id());
      in.msg.meta.set_is_response(true);
      in.msg.meta.set_status(wire::INVALID_ARGUMENT);
      in.msg.meta.set_status_message("malformed response: " + decoded.status().message());
      return in;
    }
    // Answer a malformed request so its sender fails fast instead of timing
    // out; never answer a response (that could ping-pong forever).
    if (is_router && !meta.is_response()) {
      Message error;
      error.meta.set_op(meta.op());
      error.meta.set_request_id(meta.request_id());
      error.meta.set_is_response(true);
      error.meta.set_status(wire::INVALID_ARGUMENT);
      error.meta.set_status_message("malformed message: " + decoded.status().message());
      Status s = SendFrames(socket, EncodeMessage(std::move(error)), &in.reply_to);
      if (!s.ok()) LOG(WARNING) << "cannot answer a malformed request: " << s;
    }
    return decoded.status();
  }
  in.msg = std::move(decoded).value();
  return in;
}

StatusOr<Incoming> ZmqTransport::Receive(Deadline deadline) {
  std::vector<zmq::socket_t*> sockets;
  std::vector<int> peers;
  if (router_ != nullptr) {
    sockets.push_back(router_.get());
    peers.push_back(-1);
  }
  for (auto& [peer, dealer] : dealers_) {
    sockets.push_back(dealer.get());
    peers.push_back(peer);
  }
  if (sockets.empty()) return Status::InvalidArgument("transport has no sockets");
  // The sockets, then the wake-up eventfd.
  std::vector<zmq::pollitem_t> items(sockets.size() + 1);
  for (;;) {
    for (size_t i = 0; i < sockets.size(); ++i) {
      items[i] = zmq::pollitem_t{sockets[i]->handle(), 0, ZMQ_POLLIN, 0};
    }
    items.back() = zmq::pollitem_t{nullptr, wake_fd_, ZMQ_POLLIN, 0};
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(deadline.PollTimeoutMs()));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return Status::Unavailable(std::string("poll failed: ") + e.what());
    }
    if (items.back().revents & ZMQ_POLLIN) {
      uint64_t wakes;
      ssize_t n = read(wake_fd_, &wakes, sizeof(wakes));  // resets the counter
      (void)n;
      return Status::DeadlineExceeded("woken");
    }
    for (size_t k = 0; k < sockets.size(); ++k) {
      size_t i = (next_first_ + k) % sockets.size();
      if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
      next_first_ = i + 1;
      bool is_router = sockets[i] == router_.get();
      auto in = ReadFrom(*sockets[i], is_router, peers[i]);
      if (in.ok()) return in;
      if (in.status().code() == StatusCode::kDeadlineExceeded) continue;
      LOG(WARNING) << "dropping malformed message from "
                   << (is_router ? "a requester" : "node " + std::to_string(peers[i])) << ": "
                   << in.status();
      break;
    }
    // Past the deadline with nothing good (even during a flood of malformed
    // messages): let the caller go.
    if (deadline.Expired()) return Status::DeadlineExceeded("no message before the deadline");
  }
}

}  // namespace mtps
