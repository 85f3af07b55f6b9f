// Transport: how an mtps process exchanges Messages with its peers.
//
// Each process binds one endpoint that receives requests (and answers them
// with Reply), and opens one outgoing connection per peer it sends requests
// to (their responses come back on that connection). The interface hides
// ZeroMQ so fault injection and in-process variants can wrap or replace it.
// A Transport belongs to one thread: it is not thread-safe, except Wake.
#ifndef MTPS_COMMON_NET_TRANSPORT_H_
#define MTPS_COMMON_NET_TRANSPORT_H_

#include <string>

#include "common/base/deadline.h"
#include "common/base/status.h"
#include "common/net/wire.h"

namespace mtps {

// A received message and where it came from.
struct Incoming {
  Message msg;
  // Non-empty when the message arrived on the bound endpoint (a request):
  // the address to Reply to.
  std::string reply_to;
  // The peer whose connection it arrived on (a response); -1 for requests.
  int peer = -1;
  // A request on a CURVE socket: the node name its sender's key belongs to
  // (common/net/curve.h); empty without CURVE.
  std::string authenticated_as;
};

// The interface (see the file comment). Implementations: ZmqTransport.
// Owned by one thread (the process's ClusterMember or Scheduler, through
// its Rpc); only Wake may be called from other threads.
class Transport {
 public:
  virtual ~Transport() = default;

  // Binds the receiving endpoint on host:port (port 0 = any free port) and
  // returns the port actually bound.
  virtual StatusOr<int> Bind(const std::string& host, int port) = 0;
  // Opens the outgoing connection to `peer` (a node id) at `endpoint`
  // ("tcp://host:port"). Connecting twice to the same peer is an error.
  virtual Status Connect(int peer, const std::string& endpoint) = 0;
  // Names node `peer` ("server-0", common/net/curve.h) before Connect: a
  // transport that authenticates its peers (CURVE) connects with that
  // node's public key. Others ignore it.
  virtual void NamePeer(int peer, const std::string& name) {}
  // Queues a request to a connected peer without blocking; Unavailable if
  // the peer is unknown or its queue is full.
  virtual Status Send(int peer, Message msg) = 0;
  // Answers a request received on the bound endpoint.
  virtual Status Reply(const std::string& reply_to, Message msg) = 0;
  // Returns the next well-formed message, or DeadlineExceeded. A malformed
  // request is answered with an InvalidArgument response here and never
  // returned; a malformed response is logged and dropped.
  virtual StatusOr<Incoming> Receive(Deadline deadline) = 0;
  // Makes the Receive in progress, or else the next one, return at once
  // with DeadlineExceeded, so that the owning thread can look at work other
  // threads handed it (a server's finished shard work). Thread-safe; wakes
  // coalesce.
  virtual void Wake() = 0;
};

}  // namespace mtps

#endif  // MTPS_COMMON_NET_TRANSPORT_H_
