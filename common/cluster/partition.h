// Placement of parameters on servers: which server holds a sparse key
// (KeyPartitioner) and which contiguous block of the dense parameter array
// each server holds (DenseBlockOf).
//
// Every process derives the same placement from the cluster view (the
// number of servers) alone.
#ifndef MTPS_COMMON_CLUSTER_PARTITION_H_
#define MTPS_COMMON_CLUSTER_PARTITION_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mtps {

// Consistent hashing with virtual nodes: each server owns `virtual_nodes`
// points on a 64-bit ring (hashes of (server, v)), and a key belongs to the
// server of the first point at or after the key's hash. Adding a server
// moves about 1/(N+1) of the keys, all to the new server. Lookups go through
// a table of 2^16 ring segments resolved once at construction, so ServerOf
// is one hash and one load. Immutable after construction: thread-safe.
class KeyPartitioner {
 public:
  static constexpr int kDefaultVirtualNodes = 256;

  explicit KeyPartitioner(int num_servers, int virtual_nodes = kDefaultVirtualNodes);

  int num_servers() const { return num_servers_; }
  // Server rank in [0, num_servers) holding `key`.
  int ServerOf(uint64_t key) const {
    return table_[static_cast<size_t>(KeyHash(key) >> (64 - kTableBits))];
  }

 private:
  static constexpr int kTableBits = 16;
  static uint64_t KeyHash(uint64_t key);

  int num_servers_;
  std::vector<uint16_t> table_;  // owner of each ring segment
};

// The half-open range [begin, end) of the dense parameters held by server
// `rank` of `num_servers`: contiguous blocks differing in size by at most one.
struct DenseBlock {
  int64_t begin;
  int64_t end;
  int64_t size() const { return end - begin; }
};

// Most dense parameters a job may have: DenseBlockOf multiplies by the
// rank, so a total from the wire is checked against this first.
constexpr int64_t kMaxDenseParams = int64_t{1} << 40;

// Needs 0 < num_params <= kMaxDenseParams and 0 <= rank < num_servers.
inline DenseBlock DenseBlockOf(int64_t num_params, int rank, int num_servers) {
  return DenseBlock{num_params * rank / num_servers, num_params * (rank + 1) / num_servers};
}

}  // namespace mtps

#endif  // MTPS_COMMON_CLUSTER_PARTITION_H_
