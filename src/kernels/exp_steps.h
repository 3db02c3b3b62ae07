// exp_f32's sequence of IEEE operations (kernels/math.h), written once for the host and the GPU.
//
// kernels/math.cpp's exp_f32 and the CUDA sampler (kernels/cuda/sample.h) both call exp_steps,
// so the two cannot drift apart: each step is one correctly rounded operation named explicitly
// (ieee::add, mul, sub, fma), which host code runs as plain float operations (the project builds
// with -ffp-contract=off) and std::fma, and device code as __fadd_rn, __fmul_rn, __fsub_rn and
// __fmaf_rn, which nvcc never contracts or reorders. The constants are kernels/cpu/exp_isa.h's,
// shared with the vector paths.
//
// The results are the same bits on both, except that the payload of a NaN result is the
// hardware's (the GPU returns its canonical NaN); the sampler never takes exp of a NaN.
//
// A plain header (no STL beyond <cmath> and <cstdint>) so that .cu files can include it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/host_device.h"
#include "kernels/cpu/exp_isa.h"

namespace bx::ieee {

BX_HOST_DEVICE BX_ALWAYS_INLINE inline float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

BX_HOST_DEVICE BX_ALWAYS_INLINE inline float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

BX_HOST_DEVICE BX_ALWAYS_INLINE inline float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

BX_HOST_DEVICE BX_ALWAYS_INLINE inline float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

BX_HOST_DEVICE BX_ALWAYS_INLINE inline float fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

BX_HOST_DEVICE BX_ALWAYS_INLINE inline uint32_t bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

BX_HOST_DEVICE BX_ALWAYS_INLINE inline float from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

BX_HOST_DEVICE BX_ALWAYS_INLINE inline float infinity() {
  return from_bits(0x7f800000u);
}

}  // namespace bx::ieee

namespace bx {

// e^x = 2^n * e^r,  n = rint(x / ln 2),  r = x - n ln 2 in about [-ln2/2, ln2/2].
//   r: two fma steps (Cody-Waite). The first is exact: for n != 0, x - n * kLn2Hi is a multiple
//   of ulp(x) >= 2^-25 and below 1/2 in magnitude, so it fits in 24 bits.
//   e^r = 1 + (r + r^2 * P(r)),  P(r) = sum_{k=2..8} r^(k-2) / k!  (Horner with fma).
//   2^n is applied as two exact power-of-two factors, so only the last product rounds (this is
//   what gives correctly scaled subnormal results and overflow to +inf).
BX_HOST_DEVICE BX_ALWAYS_INLINE inline float exp_steps(float x) {
  using namespace cpu::exp_const;
  if (x != x) return ieee::add(x, x);  // NaN
  if (x > kHi) return ieee::infinity();
  if (x < kLo) return 0.0f;
  // rint(x / ln 2) for |x| < 2^22: adding 1.5 * 2^23 leaves no fraction bits.
  const float n = ieee::sub(ieee::add(ieee::mul(x, kLog2e), kRoundShift), kRoundShift);
  float r = ieee::fma(-n, kLn2Hi, x);  // |n| <= 151
  r = ieee::fma(-n, kLn2Lo, r);
  float p = kE8;
  p = ieee::fma(p, r, kE7);
  p = ieee::fma(p, r, kE6);
  p = ieee::fma(p, r, kE5);
  p = ieee::fma(p, r, kE4);
  p = ieee::fma(p, r, kE3);
  p = ieee::fma(p, r, kE2);
  const float em1 = ieee::fma(p, ieee::mul(r, r), r);  // e^r - 1
  const float er = ieee::add(1.0f, em1);
  const int ni = static_cast<int>(n);
  const int n1 = ni / 2;
  const int n2 = ni - n1;  // both in [-76, 76]: 2^n1, 2^n2 are normal floats, built from bits
  const float pow2_n1 = ieee::from_bits(static_cast<uint32_t>(n1 + 127) << 23);
  const float pow2_n2 = ieee::from_bits(static_cast<uint32_t>(n2 + 127) << 23);
  return ieee::mul(ieee::mul(er, pow2_n1), pow2_n2);
}

}  // namespace bx
