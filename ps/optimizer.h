// Update formulas of the server-side optimizers, shared by the sparse table
// (Adagrad per row) and the dense store (Adam or Adagrad over a block).
//
// They are inline so they are compiled, and vectorised (-O3 -march), inside
// the loops that call them. Each writes only the spans it is given; the
// caller owns the memory and the spans must not overlap one another.
// Stateless, so thread-safe on disjoint spans.
#ifndef MTPS_PS_OPTIMIZER_H_
#define MTPS_PS_OPTIMIZER_H_

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace mtps {

// One Adagrad step over n parameters:
//   acc += g * g;  w -= lr * g / sqrt(acc).
// acc must have started at a positive initial accumulator, so the division is
// always defined.
inline void AdagradUpdate(float* __restrict w, float* __restrict acc, const float* __restrict g,
                          size_t n, float lr) {
  for (size_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float a = acc[i] + gi * gi;
    acc[i] = a;
    w[i] -= lr * gi / std::sqrt(a);
  }
}

// Bias-corrected Adam step scalars for step t (1-based): everything of the
// update that does not depend on the element, computed once per step in
// double so that b^t is accurate for large t.
struct AdamStep {
  float lr_over_c1;  // lr / (1 - b1^t)
  float inv_c2;      // 1 / (1 - b2^t)
};

inline AdamStep MakeAdamStep(float lr, float beta1, float beta2, int64_t t) {
  const double c1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(t));
  const double c2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(t));
  return AdamStep{static_cast<float>(lr / c1), static_cast<float>(1.0 / c2)};
}

// One Adam step over n parameters:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
inline void AdamUpdate(float* __restrict w, float* __restrict m, float* __restrict v,
                       const float* __restrict g, size_t n, float beta1, float beta2, float epsilon,
                       AdamStep step) {
  const float one_minus_b1 = 1.0f - beta1;
  const float one_minus_b2 = 1.0f - beta2;
  for (size_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = beta1 * m[i] + one_minus_b1 * gi;
    const float vi = beta2 * v[i] + one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= step.lr_over_c1 * mi / (std::sqrt(vi * step.inv_c2) + epsilon);
  }
}

}  // namespace mtps

#endif  // MTPS_PS_OPTIMIZER_H_
