// The element math of kernels/quant.h for two adjacent weights of a block, in the form the CUDA
// quantized GEMM (kernels/cuda/gemm_quant.h) evaluates inside its kernel: one source for the
// device and the host, so a CPU test (tests/unit/quant_pair_test.cpp) checks the device's steps
// bit for bit against quant.h's scalar reference without a GPU.
//
// The steps differ from quant.h's in form, not in value: integers become floats as the bits of
// 2^23 + q minus 2^23 (exact: both below 2^24), and where quant.h rounds a product and then adds,
// the product is exact here (d and dmin are f16 values of 11 significant bits, d * sc has at most
// 17, times a 4- or 5-bit q at most 22 < 24), so one fma gives the same single rounding of the
// sum: fma(d1, q, -m1) == (d1 * q) - m1 bit for bit.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/half.h"
#include "core/host_device.h"
#include "kernels/quant_blocks.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace bx::quant {

struct QuantPair {
  float first, second;
};

// The f16 at p (2-byte aligned), widened exactly.
BX_HOST_DEVICE BX_ALWAYS_INLINE inline float f16_at(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __half2float(*reinterpret_cast<const __half*>(p));
#else
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
#endif
}
// a * b and fma(a, b, c), each rounded once, never contracted with anything else.
BX_HOST_DEVICE BX_ALWAYS_INLINE inline float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;  // the project compiles with -ffp-contract=off
#endif
}
BX_HOST_DEVICE BX_ALWAYS_INLINE inline float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
BX_HOST_DEVICE BX_ALWAYS_INLINE inline float bits_as_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return std::bit_cast<float>(u);
#endif
}

// Q4_K / Q5_K 6-bit scale and min of sub-block j (kernels/quant.h).
BX_HOST_DEVICE BX_ALWAYS_INLINE inline void k_scale_min(const uint8_t* scales, int j, int& sc,
                                                        int& mn) {
  if (j < 4) {
    sc = scales[j] & 63;
    mn = scales[j + 4] & 63;
  } else {
    sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
    mn = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// float(q) for an integer 0 <= q < 2^23 given as 2^23 + q in f32 bits minus `bias` (2^23 + an
// offset): exact (both are integers below 2^24), two integer-free operations instead of I2F.
BX_HOST_DEVICE BX_ALWAYS_INLINE inline float small_int(uint32_t q, float bias) {
  return bits_as_float(0x4B000000u | q) - bias;
}
inline constexpr float k2p23 = 8388608.0f;

// The two bytes at p (2-byte aligned) as the low 16 bits.
BX_HOST_DEVICE BX_ALWAYS_INLINE inline uint32_t two_bytes(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const uint16_t*>(p);
#else
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
#endif
}

// Elements (e, e + 1) of the block at b, e = base + off with base a multiple of 16 (a constant
// where the slice loop is unrolled, so every shift and index below folds) and off < 16 even:
// kernels/quant.h's element math in f32, in the steps described at the top of this file.
template <int F>
BX_HOST_DEVICE BX_ALWAYS_INLINE inline QuantPair dequant_pair(const uint8_t* b, int base, int off) {
  if constexpr (F == kQ8_0) {
    const float d = f16_at(b);
    const uint32_t v = two_bytes(b + 2 + base + off) ^ 0x8080u;  // int8 + 128 in each byte
    return QuantPair{mul(d, small_int(v & 0xFF, k2p23 + 128.0f)),
                     mul(d, small_int(v >> 8, k2p23 + 128.0f))};
  } else if constexpr (F == kQ4_0 || F == kQ4_1) {
    const float d = f16_at(b);
    const uint32_t v = two_bytes(b + (F == kQ4_0 ? 2 : 4) + off) >> (4 * (base / 16));
    const uint32_t q0 = v & 15, q1 = (v >> 8) & 15;
    if constexpr (F == kQ4_0) {
      return QuantPair{mul(d, small_int(q0, k2p23 + 8.0f)), mul(d, small_int(q1, k2p23 + 8.0f))};
    } else {  // d * q exact (15 bits): fma == (d * q) + m
      const float m = f16_at(b + 2);
      return QuantPair{fma_rn(d, small_int(q0, k2p23), m), fma_rn(d, small_int(q1, k2p23), m)};
    }
  } else if constexpr (F == kQ4_K || F == kQ5_K) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const int j = base / 32;
    int sc, mn;
    k_scale_min(b + 4, j, sc, mn);
    const uint8_t* qs = b + (F == kQ4_K ? 16 : 48);
    const uint32_t v = two_bytes(qs + 32 * (base / 64) + base % 32 + off) >> (4 * (j % 2));
    uint32_t q0 = v & 15, q1 = (v >> 8) & 15;
    if constexpr (F == kQ5_K) {
      const uint32_t h = two_bytes(b + 16 + base % 32 + off) >> j;
      q0 |= (h & 1) << 4;
      q1 |= ((h >> 8) & 1) << 4;
    }
    const float d1 = mul(d, small_int(static_cast<uint32_t>(sc), k2p23));
    const float m1 = mul(dmin, small_int(static_cast<uint32_t>(mn), k2p23));
    return QuantPair{fma_rn(d1, small_int(q0, k2p23), -m1), fma_rn(d1, small_int(q1, k2p23), -m1)};
  } else {
    static_assert(F == kQ6_K, "no fused dequantization for this format");
    const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
    const float d = f16_at(b + 208);
    const uint32_t l =
        two_bytes(b + 64 * (base / 128) + base % 64 + off) >> (4 * (base % 128 / 64));
    const uint32_t h =
        two_bytes(b + 128 + 32 * (base / 128) + base % 32 + off) >> (2 * (base % 128 / 32));
    const uint32_t q0 = (l & 15) | ((h & 3) << 4), q1 = ((l >> 8) & 15) | (((h >> 8) & 3) << 4);
    const float d1 =
        mul(d, small_int(static_cast<uint32_t>(scales[base / 16] + 128), k2p23 + 128.0f));
    return QuantPair{mul(d1, small_int(q0, k2p23 + 32.0f)), mul(d1, small_int(q1, k2p23 + 32.0f))};
  }
}

}  // namespace bx::quant
