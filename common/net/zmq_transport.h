// ZmqTransport: the Transport over ZeroMQ TCP sockets.
//
// One ROUTER socket bound for incoming requests (replies go back through it
// by routing id) and one DEALER per peer for outgoing requests (responses
// arrive on it). Payload frames are sent and received without copies.
// Owned by one thread (Wake, an eventfd write, may come from any thread);
// the zmq::context_t must outlive it.
#ifndef MTPS_COMMON_NET_ZMQ_TRANSPORT_H_
#define MTPS_COMMON_NET_ZMQ_TRANSPORT_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/net/curve.h"
#include "common/net/transport.h"

namespace mtps {

// See the file comment. Owned by one thread; Wake from any thread.
class ZmqTransport : public Transport {
 public:
  explicit ZmqTransport(zmq::context_t* context);
  ~ZmqTransport() override;

  // CURVE on every socket (common/net/curve.h), before Bind and Connect:
  // the bound socket is a CURVE server with `keys.self` (its clients are
  // admitted by the context's ZapHandler, which must exist), and each
  // connection a CURVE client to the public key of its peer's name
  // (NamePeer). Requests then carry Incoming::authenticated_as.
  void EnableCurve(CurveKeys keys);
  bool curve() const { return curve_; }

  StatusOr<int> Bind(const std::string& host, int port) override;
  void NamePeer(int peer, const std::string& name) override { peer_names_[peer] = name; }
  Status Connect(int peer, const std::string& endpoint) override;
  Status Send(int peer, Message msg) override;
  Status Reply(const std::string& reply_to, Message msg) override;
  StatusOr<Incoming> Receive(Deadline deadline) override;
  void Wake() override;

 private:
  // Reads one multipart message from `socket` (known readable).
  StatusOr<Incoming> ReadFrom(zmq::socket_t& socket, bool is_router, int peer);
  Status SendFrames(zmq::socket_t& socket, std::vector<zmq::message_t>&& frames,
                    const std::string* routing_id);

  zmq::context_t* context_;
  std::unique_ptr<zmq::socket_t> router_;
  std::map<int, std::unique_ptr<zmq::socket_t>> dealers_;
  size_t next_first_ = 0;  // rotates which socket is read first (fairness)
  int wake_fd_ = -1;       // eventfd polled beside the sockets
  bool curve_ = false;
  CurveKeys keys_;
  std::map<int, std::string> peer_names_;
};

}  // namespace mtps

#endif  // MTPS_COMMON_NET_ZMQ_TRANSPORT_H_
