// Hashing used for feature keys and key placement.
//
// Feature keys are 64-bit hashes of (column, value); every process must agree
// on them, so the functions here are fixed forever (not std::hash).
#ifndef MTPS_COMMON_BASE_HASH_H_
#define MTPS_COMMON_BASE_HASH_H_

#include <cstdint>
#include <string_view>

namespace mtps {

// FNV-1a 64 over bytes, continued from `seed`.
inline uint64_t HashBytes(std::string_view bytes, uint64_t seed = 0xcbf29ce484222325ULL) {
  uint64_t h = seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// SplitMix64 finaliser: a bijective mix with full avalanche.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The sparse key of feature `value` in column `column`.
inline uint64_t FeatureKey(std::string_view column, std::string_view value) {
  uint64_t h = HashBytes(column);
  h = HashBytes(std::string_view("\x1f", 1), h);
  return Mix64(HashBytes(value, h));
}

}  // namespace mtps

#endif  // MTPS_COMMON_BASE_HASH_H_
