// The server settings' rules (see ps/server/server_config.h).
#include "ps/server/server_config.h"

#include <string>

namespace mtps {

void CheckServerConfig(const config::Config& config, ConfigProblems* p) {
  const int threads = config.server().shard_threads();
  if (threads < 1 || threads > kMaxShardThreads) {
    p->Add("server.shard_threads", "must be in [1, " + std::to_string(kMaxShardThreads) +
                                       "] (got " + std::to_string(threads) + ")");
  }
  const int replicas = config.server().replicas();
  if (replicas < 0 || replicas > 1) {
    p->Add("server.replicas",
           "must be 0 or 1 (one backup per partition), got " + std::to_string(replicas));
  }
}

}  // namespace mtps
