#include "kernels/math.h"

#include "core/fma_clones.h"
#include "kernels/cpu/exp_isa.h"
#include "kernels/exp_steps.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace bx {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The constants of log's last step, ln 2 split in two, are exp's (kernels/cpu/exp_isa.h).
using namespace cpu::exp_const;

// ---- log ----
constexpr float kSqrt2 = static_cast<float>(1.4142135623730951);
// 2 atanh(s) = 2s + s * R(z),  z = s^2,  R(z) = 2z/3 + 2z^2/5 + 2z^3/7 + 2z^4/9 + 2z^5/11.
constexpr float kL1 = static_cast<float>(2.0 / 3.0);
constexpr float kL2 = static_cast<float>(2.0 / 5.0);
constexpr float kL3 = static_cast<float>(2.0 / 7.0);
constexpr float kL4 = static_cast<float>(2.0 / 9.0);
constexpr float kL5 = static_cast<float>(2.0 / 11.0);

}  // namespace

// Both functions are compiled with and without the FMA instruction (core/fma_clones.h).

// e^x: the operations are written once, for the host and the GPU, in kernels/exp_steps.h.
BX_FMA_CLONES float exp_f32(float x) {
  return exp_steps(x);
}

// log x = e ln 2 + log1p(f),  x = 2^e * (1 + f),  1 + f in [sqrt(2)/2, sqrt(2)]  (f exact).
//   s = f / (2 + f),  log1p(f) = 2 atanh(s) = 2s + s R(s^2) = f - s (f - R)   (as 2s = f - s f).
//   e ln 2 = e * kLn2Hi (exact) + e * kLn2Lo, the small parts added first.
BX_FMA_CLONES float log_f32(float x) {
  if (std::isnan(x)) return x + x;
  if (x < 0.0f) return std::numeric_limits<float>::quiet_NaN();
  if (x == 0.0f) return -kInf;
  if (x == kInf) return kInf;
  int e = 0;
  uint32_t ix = std::bit_cast<uint32_t>(x);
  if (ix < 0x00800000u) {  // subnormal: scale by 2^23 (exact) into the normal range
    ix = std::bit_cast<uint32_t>(x * 8388608.0f);
    e = -23;
  }
  e += static_cast<int>(ix >> 23) - 127;
  float m = std::bit_cast<float>((ix & 0x007fffffu) | 0x3f800000u);  // [1, 2)
  if (m > kSqrt2) {
    m = m * 0.5f;
    e += 1;
  }
  const float f = m - 1.0f;  // exact (Sterbenz)
  const float s = f / (2.0f + f);
  const float z = s * s;
  float r = kL5;
  r = std::fma(r, z, kL4);
  r = std::fma(r, z, kL3);
  r = std::fma(r, z, kL2);
  r = std::fma(r, z, kL1);
  r = r * z;
  const float log1p_f = std::fma(-s, f - r, f);
  if (e == 0) return log1p_f;
  const float ef = static_cast<float>(e);
  return ef * kLn2Hi + std::fma(ef, kLn2Lo, log1p_f);
}

}  // namespace bx
