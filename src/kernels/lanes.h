// The canonical lane layout: how every reduction in the CPU backend is ordered (INVARIANCE.md R7).
//
// A reduction over n elements (a dot product or a sum) uses kLanes = 16 partial accumulators:
//
//   acc[j] = +0.0f                                  for j in [0, 16)
//   for t in 0 .. ceil(n / 16) - 1:                 (increasing t)
//     for j in [0, 16):   i = 16 t + j
//       dot:  acc[j] = fma(a[i], b[i], acc[j])      (a[i] = b[i] = 0 for i >= n)
//       sum:  acc[j] = acc[j] + a[i]                (a[i] = +0.0f for i >= n)
//   for h in 8, 4, 2, 1:   acc[j] = acc[j] + acc[j + h]   for j in [0, h)
//   result = acc[0]
//
// The padding terms are real operations (fma(0, 0, -0.0f) = +0.0f), so every path must apply
// them. An AVX-512 path holds the 16 lanes in one zmm register; an AVX2 path in two ymm registers
// (lanes 0-7 and 8-15, so the h = 8 step is ymm0 + ymm1); the scalar path in an array. Any path
// that follows these steps gives the same bits, because each step is one correctly rounded IEEE
// operation. The order depends only on n, never on M, the batch or the thread count (R1).
#pragma once

#include <cmath>
#include <cstdint>

namespace bx::lanes {

inline constexpr int kLanes = 16;

// Folds the 16 lane accumulators with the fixed tree above.
inline float tree_reduce(float acc[kLanes]) {
  for (int h = kLanes / 2; h >= 1; h /= 2) {
    for (int j = 0; j < h; ++j) acc[j] = acc[j] + acc[j + h];
  }
  return acc[0];
}

// Scalar reference of the canonical dot product.
inline float dot_reference(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  const int64_t steps = (n + kLanes - 1) / kLanes;
  for (int64_t t = 0; t < steps; ++t) {
    for (int j = 0; j < kLanes; ++j) {
      const int64_t i = t * kLanes + j;
      const float x = i < n ? a[i] : 0.0f;
      const float y = i < n ? b[i] : 0.0f;
      acc[j] = std::fma(x, y, acc[j]);
    }
  }
  return tree_reduce(acc);
}

// Scalar reference of the canonical sum.
inline float sum_reference(const float* a, int64_t n) {
  float acc[kLanes] = {};
  const int64_t steps = (n + kLanes - 1) / kLanes;
  for (int64_t t = 0; t < steps; ++t) {
    for (int j = 0; j < kLanes; ++j) {
      const int64_t i = t * kLanes + j;
      acc[j] = acc[j] + (i < n ? a[i] : 0.0f);
    }
  }
  return tree_reduce(acc);
}

}  // namespace bx::lanes
