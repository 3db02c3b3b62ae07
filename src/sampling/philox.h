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
#pragma once

#include <array>
#include <cstdint>

namespace bx {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

namespace philox_detail {

inline constexpr uint32_t kMul0 = 0xD2511F53u;
inline constexpr uint32_t kMul1 = 0xCD9E8D57u;
inline constexpr uint32_t kWeyl0 = 0x9E3779B9u;
inline constexpr uint32_t kWeyl1 = 0xBB67AE85u;

constexpr PhiloxCounter round(const PhiloxCounter& c, const PhiloxKey& k) {
  const uint64_t p0 = uint64_t{kMul0} * c[0];
  const uint64_t p1 = uint64_t{kMul1} * c[2];
  return {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
          static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
}

}  // namespace philox_detail

// The ten-round Philox4x32 bijection of `counter` under `key`.
constexpr PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      key[0] += philox_detail::kWeyl0;
      key[1] += philox_detail::kWeyl1;
    }
    counter = philox_detail::round(counter, key);
  }
  return counter;
}

// First Random123 known-answer vector (all zeros); the full set lives in the unit test.
static_assert(philox4x32_10({0, 0, 0, 0}, {0, 0}) ==
              PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});

}  // namespace bx
