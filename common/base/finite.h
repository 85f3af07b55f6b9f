// Finite checks over float arrays: the servers refuse (or skip) gradients
// holding NaN or infinity (server.nonfinite_gradients), and a worker checks
// its own losses and gradients before it pushes them.
//
// A float is non-finite exactly when its exponent bits are all ones, so the
// scan is a max over the magnitude bits, which compilers vectorise (one pass
// over a push's gradients costs about as much as reading them).
#ifndef MTPS_COMMON_BASE_FINITE_H_
#define MTPS_COMMON_BASE_FINITE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mtps {

// True when every one of values[0..n) is finite (no NaN, no infinity).
inline bool AllFinite(const float* values, size_t n) {
  uint32_t largest = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof(bits));
    bits &= 0x7fffffffu;
    largest = bits > largest ? bits : largest;
  }
  return largest < 0x7f800000u;
}

// The index of the first non-finite value of values[0..n), or n if none.
inline size_t FirstNonfinite(const float* values, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof(bits));
    if ((bits & 0x7f800000u) == 0x7f800000u) return i;
  }
  return n;
}

}  // namespace mtps

#endif  // MTPS_COMMON_BASE_FINITE_H_
