// The rules of the parameter server's own settings in a job config
// (server.shard_threads), owned by the server. CheckServerConfig is the
// ConfigCheck the scheduler passes to LoadConfig (launcher/node_main.cc);
// ParameterServer::Create runs it again on the config it receives. The
// settings of the server's tables are the tables' (ps/table/table_config.h).
#ifndef MTPS_PS_SERVER_SERVER_CONFIG_H_
#define MTPS_PS_SERVER_SERVER_CONFIG_H_

#include "common/config/config_check.h"
#include "proto/config.pb.h"

namespace mtps {

// Most shard threads a server may run (server.shard_threads): a key's shard
// is kept in a byte while a request is split (SplitByShard).
constexpr int kMaxShardThreads = 64;

// server.shard_threads is in [1, kMaxShardThreads].
void CheckServerConfig(const config::Config& config, ConfigProblems* problems);

}  // namespace mtps

#endif  // MTPS_PS_SERVER_SERVER_CONFIG_H_
