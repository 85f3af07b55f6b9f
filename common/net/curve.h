// CURVE security for a job's sockets: per-node key pairs on disk, and the
// ZAP handler that admits only the job's keys.
//
// Each node (named "scheduler", "server-R" or "worker-R") has its own key
// pair. mtps-launch --secure writes them into RUN_DIR/keys (a 0700 dir):
// NAME.key (0600) holds a node's public and secret key, public.keys every
// node's public key. A node loads its own pair and the public list
// (LoadCurveKeys); its bound socket is a CURVE server with its secret key
// and its connections are CURVE clients that know their peer's public key,
// so every link is encrypted and both ends are authenticated: a client
// proves its key in the handshake, and only the holder of the server's
// secret key can complete it.
//
// libzmq's CURVE alone admits any client that knows the server's public
// key. ZapHandler answers libzmq's ZAP requests (RFC 27) for the process's
// context: it admits a client only if its key is one of the job's, and
// names it (the ZAP User-Id, on every message it sends: Incoming's
// `authenticated_as`), so a receiver can check that a request's sender id is
// the one that key belongs to (ClusterMember and the scheduler do).
#ifndef MTPS_COMMON_NET_CURVE_H_
#define MTPS_COMMON_NET_CURVE_H_

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "common/base/status.h"
#include "proto/wire.pb.h"

namespace mtps {

// A CURVE key pair, each key in Z85 (40 characters). A value type.
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};

// Whether a request whose key is `authenticated_as` (Incoming's; empty
// without CURVE) may come from the node named `expected` (empty: no such
// node); PermissionDenied naming `claimed` (what it said it was) if not.
Status CheckSpeaksFor(const std::string& authenticated_as, const std::string& expected,
                      const std::string& claimed);

// A fresh key pair from libzmq (libsodium's randomness).
StatusOr<CurveKeyPair> NewCurveKeyPair();

// A node's name in the key files: "scheduler", "server-R", "worker-R".
std::string CurveNodeName(wire::Role role, int rank);

// Writes a new key pair for each of `names` into `dir` (created 0700, or
// made 0700): NAME.key (0600) and public.keys (0600). Replaces older keys.
Status WriteCurveKeys(const std::string& dir, const std::vector<std::string>& names);

// What a node loads: its own pair and every node's public key. A value type.
struct CurveKeys {
  std::string self_name;
  CurveKeyPair self;
  std::map<std::string, std::string> public_keys;  // by node name, Z85
};

// Loads node `self_name`'s keys from `dir`. Refuses a key file that is
// readable by group or others, and names the file and line of any bad entry.
StatusOr<CurveKeys> LoadCurveKeys(const std::string& dir, const std::string& self_name);

// The ZAP handler of one ZeroMQ context (see the file comment): binds
// inproc://zeromq.zap.01 when constructed, so construct it before any CURVE
// socket of the context binds, and answers on its own thread until
// destroyed. Thread-safe (it shares nothing after construction).
class ZapHandler {
 public:
  // Admits the keys of `keys.public_keys`, named by their node names.
  ZapHandler(zmq::context_t* context, const CurveKeys& keys);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Handshakes refused so far (a key not of the job, a mechanism not CURVE).
  int64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  void Loop();

  zmq::socket_t socket_;
  std::map<std::string, std::string> names_;  // 32-byte binary key -> node name
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> refused_{0};
  std::thread thread_;
};

}  // namespace mtps

#endif  // MTPS_COMMON_NET_CURVE_H_
