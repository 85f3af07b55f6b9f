// Placement of parameters on servers: which server holds a sparse key, and
// which contiguous block of the dense parameter array each server holds.
//
// Every process derives the same placement from the number of servers alone.
// (Consistent hashing with virtual nodes replaces ShardOfKey when servers
// can join; the function signature stays.)
#ifndef MTPS_COMMON_PARTITION_H_
#define MTPS_COMMON_PARTITION_H_

#include <cstdint>

#include "common/hash.h"

namespace mtps {

// Server rank in [0, num_servers) holding `key`.
inline int ShardOfKey(uint64_t key, int num_servers) {
  // Keys are hashes already; mix again so placement is independent of any
  // structure left in the low bits, then use the high bits (Lemire's
  // multiply-shift range reduction avoids a division).
  uint64_t h = Mix64(key ^ 0x5bd1e9955bd1e995ULL);
  return static_cast<int>(
      (static_cast<unsigned __int128>(h) * static_cast<uint64_t>(num_servers)) >> 64);
}

// The half-open range [begin, end) of the dense parameters held by server
// `rank` of `num_servers`: contiguous blocks differing in size by at most one.
struct DenseBlock {
  int64_t begin;
  int64_t end;
  int64_t size() const { return end - begin; }
};

inline DenseBlock DenseBlockOf(int64_t num_params, int rank, int num_servers) {
  return DenseBlock{num_params * rank / num_servers, num_params * (rank + 1) / num_servers};
}

}  // namespace mtps

#endif  // MTPS_COMMON_PARTITION_H_
