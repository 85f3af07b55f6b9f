// Consistent hashing of keys onto servers (see common/cluster/partition.h).
#include "common/cluster/partition.h"

#include <algorithm>
#include <utility>

#include <glog/logging.h>

#include "common/base/hash.h"

namespace mtps {

uint64_t KeyPartitioner::KeyHash(uint64_t key) {
  // Keys are hashes already; mix again so placement is independent of any
  // structure left in them.
  return Mix64(key ^ 0x5bd1e9955bd1e995ULL);
}

KeyPartitioner::KeyPartitioner(int num_servers, int virtual_nodes)
    : num_servers_(num_servers), table_(size_t{1} << kTableBits) {
  CHECK_GE(num_servers, 1);
  CHECK_LE(num_servers, 65535);
  CHECK_GE(virtual_nodes, 1);
  std::vector<std::pair<uint64_t, int>> ring;
  ring.reserve(static_cast<size_t>(num_servers) * virtual_nodes);
  for (int s = 0; s < num_servers; ++s) {
    for (int v = 0; v < virtual_nodes; ++v) {
      // A server's points depend on (s, v) only, so they stay put when
      // servers are added.
      uint64_t point = Mix64((static_cast<uint64_t>(s) << 32) ^ static_cast<uint64_t>(v) ^
                             0x8f1bbcdc2c1e5a3bULL);
      ring.emplace_back(point, s);
    }
  }
  std::sort(ring.begin(), ring.end());
  // Segment i covers hashes [i << 48, (i + 1) << 48); it goes to the owner of
  // the first ring point at or after its start (wrapping around).
  size_t next = 0;
  for (size_t i = 0; i < table_.size(); ++i) {
    const uint64_t start = static_cast<uint64_t>(i) << (64 - kTableBits);
    while (next < ring.size() && ring[next].first < start) ++next;
    table_[i] = static_cast<uint16_t>(next < ring.size() ? ring[next].second : ring[0].second);
  }
}

}  // namespace mtps
