// Vector versions of exp_f32 (kernels/math.cpp) and the log-softmax row loops built on them.
//
// A plain header on purpose (see matmul_isa.h): only <cstddef>/<cstdint>, constants and plain
// functions on raw pointers, so the AVX2 / AVX-512 files can include it.
//
// The constants of exp_f32 live here, once, and math.cpp uses them too: the vector paths run the
// same sequence of IEEE operations per lane as the scalar exp_f32 (same constants, same fma
// steps, same rounding trick, same two-factor 2^n scaling; the scalar branches for nan,
// overflow and underflow become blends), so every lane gives exp_f32's bits for every input
// (INVARIANCE.md R7: one implementation of exp shared by every path).
#pragma once

#include <cstddef>
#include <cstdint>

namespace bx::cpu {

namespace exp_const {
// Beyond these bounds e^x is +inf or rounds to +0 (e^-104 < 2^-150, half the least subnormal).
inline constexpr float kHi = 88.75f;
inline constexpr float kLo = -104.0f;
inline constexpr float kLog2e = static_cast<float>(1.4426950408889634);
// ln 2 split so that n * kLn2Hi is exact for |n| <= 2^8 (kLn2Hi has 16 significant bits).
inline constexpr float kLn2Hi = 0.693145751953125f;
inline constexpr float kLn2Lo = static_cast<float>(0.6931471805599453 - 0.693145751953125);
// Taylor coefficients 1/k! of e^r, k = 2..8.
inline constexpr float kE2 = 0.5f;
inline constexpr float kE3 = static_cast<float>(1.0 / 6.0);
inline constexpr float kE4 = static_cast<float>(1.0 / 24.0);
inline constexpr float kE5 = static_cast<float>(1.0 / 120.0);
inline constexpr float kE6 = static_cast<float>(1.0 / 720.0);
inline constexpr float kE7 = static_cast<float>(1.0 / 5040.0);
inline constexpr float kE8 = static_cast<float>(1.0 / 40320.0);
// rint(v) for |v| < 2^22 in the default rounding mode: adding 1.5 * 2^23 leaves no fraction bits.
inline constexpr float kRoundShift = 12582912.0f;
}  // namespace exp_const

// y[i] = exp_f32(x[i]) for i in [0, n), bit for bit.  y may alias x.
void exp_avx2(const float* x, float* y, int64_t n);
void exp_avx512(const float* x, float* y, int64_t n);

// The canonical sum (kernels/lanes.h) over i in [0, n) of exp_f32(x[i] - mx); n = 0 gives +0.
float exp_sum_avx2(const float* x, int64_t n, float mx);
float exp_sum_avx512(const float* x, int64_t n, float mx);

// row_max of kernels/rows.h: the first NaN of x[0..n) if it has one, else the largest element
// with +0 above -0 (-inf if n == 0). Exact: the maximum is taken over integer keys that order
// the floats totally (-0 below +0), so the order of the comparisons does not matter.
float row_max_avx2(const float* x, int64_t n);
float row_max_avx512(const float* x, int64_t n);

// out[i] = (x[i] - a) - b for i in [0, n).  out may alias x.
void sub_sub_avx2(const float* x, int64_t n, float a, float b, float* out);
void sub_sub_avx512(const float* x, int64_t n, float a, float b, float* out);

}  // namespace bx::cpu
