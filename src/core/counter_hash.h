// A counter-based hash to generate weights: the value of element `index` of a tensor depends
// only on (stream, index), never on how the elements are split among threads or devices, so the
// CPU and a GPU kernel produce the same f32 values (model/random_model.h).
//
//   mix64(x)                  the splitmix64 finalizer (a bijection of 64-bit integers)
//   hash_stream(seed, key)    mix64(seed ^ mix64(key)): one stream per (model seed, tensor key)
//   hash_uniform_pm1(s, i)    the top 24 bits h of mix64(s + mix64(i + golden)), as
//                             (h - 2^23) * 2^-23: uniform on [-1, 1), every value exact in f32
//
// Header-only and usable from CUDA device code (BX_HOST_DEVICE).
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace bx {

BX_HOST_DEVICE inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

BX_HOST_DEVICE inline uint64_t hash_stream(uint64_t seed, uint64_t key) {
  return mix64(seed ^ mix64(key));
}

BX_HOST_DEVICE inline float hash_uniform_pm1(uint64_t stream, uint64_t index) {
  const uint64_t h = mix64(stream + mix64(index + 0x9E3779B97F4A7C15ull));
  const auto bits = static_cast<int32_t>(h >> 40);  // [0, 2^24)
  return static_cast<float>(bits - (1 << 23)) * 0x1p-23f;
}

// offset + scale * u, u = hash_uniform_pm1(stream, index): one f32 multiply, then one add (no
// fused multiply-add on either side: -ffp-contract=off and nvcc --fmad=false).
BX_HOST_DEVICE inline float hash_weight(uint64_t stream, uint64_t index, float offset,
                                        float scale) {
  return offset + scale * hash_uniform_pm1(stream, index);
}

}  // namespace bx
