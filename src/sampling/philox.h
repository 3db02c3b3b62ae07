// Philox4x32-10: the counter-based generator behind sampling (INVARIANCE.md R6).
//
// Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3" (SC'11). A
// bijection of a 128-bit counter under a 64-bit key, so a draw is a pure function of
// (counter, key): no state, nothing that depends on what was drawn before or elsewhere.
//
// One round, on counter words c0..c3 and key words k0, k1 (all uint32, products in uint64):
//   p0 = 0xD2511F53 * c0        p1 = 0xCD9E8D57 * c2
//   c' = (hi(p1) ^ c1 ^ k0,  lo(p1),  hi(p0) ^ c3 ^ k1,  lo(p0))
// Ten rounds; between two rounds the key is bumped by the Weyl increments:
//   k0 += 0x9E3779B9,  k1 += 0xBB67AE85   (mod 2^32)
// Checked against Random123's published known-answer vectors in tests/unit/sampler_test.cpp
// (and at compile time below).
// The rounds are written once on plain words (philox4x32_10_words), for the host and the GPU
// (core/host_device.h): the CUDA sampler (kernels/cuda/sample.h) draws the same numbers.
#pragma once

#include <array>
#include <cstdint>

#include "core/host_device.h"

namespace bx {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

namespace philox_detail {

inline constexpr uint32_t kMul0 = 0xD2511F53u;
inline constexpr uint32_t kMul1 = 0xCD9E8D57u;
inline constexpr uint32_t kWeyl0 = 0x9E3779B9u;
inline constexpr uint32_t kWeyl1 = 0xBB67AE85u;

}  // namespace philox_detail

// The ten-round Philox4x32 bijection of counter (c0, c1, c2, c3) under key (k0, k1), in place.
BX_HOST_DEVICE BX_ALWAYS_INLINE constexpr void philox4x32_10_words(uint32_t& c0, uint32_t& c1,
                                                                   uint32_t& c2, uint32_t& c3,
                                                                   uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += philox_detail::kWeyl0;
      k1 += philox_detail::kWeyl1;
    }
    const uint64_t p0 = uint64_t{philox_detail::kMul0} * c0;
    const uint64_t p1 = uint64_t{philox_detail::kMul1} * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
  }
}

// The ten-round Philox4x32 bijection of `counter` under `key`.
constexpr PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  philox4x32_10_words(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
  return counter;
}

// First Random123 known-answer vector (all zeros); the full set lives in the unit test.
static_assert(philox4x32_10({0, 0, 0, 0}, {0, 0}) ==
              PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});

// Philox4x32-10 of counter (token_index low 32 bits, token_index high 32 bits, 0, 0) under key
// (seed low 32 bits, seed high 32 bits): the top 24 bits of the first output word, times 2^-24,
// a uniform float in [0, 1). Counter words 2 and 3 are kept at zero, free for other draws keyed
// by the same (seed, token_index).
BX_HOST_DEVICE inline float philox_uniform(uint64_t seed, uint64_t token_index) {
  uint32_t c0 = static_cast<uint32_t>(token_index), c1 = static_cast<uint32_t>(token_index >> 32);
  uint32_t c2 = 0, c3 = 0;
  philox4x32_10_words(c0, c1, c2, c3, static_cast<uint32_t>(seed),
                      static_cast<uint32_t>(seed >> 32));
  const uint32_t top24 = c0 >> 8;
  return static_cast<float>(top24) * 0x1p-24f;  // exact: 24 bits fit a float, 2^-24 scales
}

}  // namespace bx
