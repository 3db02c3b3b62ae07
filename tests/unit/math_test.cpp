// Tests of kernels/math.h: exp_f32 and log_f32.
//
//   T1 exact      special values (0, +-inf, nan, overflow, underflow, negatives) bit for bit, and a
//                 golden hash of the outputs over a fixed sweep, so the bits cannot change
//                 unnoticed (a change is a new kernel version, INVARIANCE.md "time").
//   T2 accurate   error below 1 ulp (faithful rounding) against double std::exp / std::log on a
//                 dense sweep of every k-th float, subnormal inputs and results included. An
//                 exhaustive run over all 2^32 inputs (offline) found at most 0.979 ulp for exp and
//                 0.940 ulp for log.
//   Vector exp    the AVX2 and AVX-512 exp (kernels/cpu/exp_isa.h) equal exp_f32 bit for bit, on
//                 every ISA this CPU supports: every 61st float (70 million inputs), every float
//                 where the result is subnormal or near overflow, the special values and the
//                 boundaries kHi / kLo, and every length 0..40 (the masked tails). The run over
//                 all 2^32 inputs is DISABLED_ here (run it by hand with
//                 --gtest_also_run_disabled_tests --gtest_filter='*AllFloats*').
#include <gtest/gtest.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/exp_isa.h"
#include "kernels/math.h"

namespace bx {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

uint32_t bits(float x) {
  return std::bit_cast<uint32_t>(x);
}

// Error of `got` against the exact value `ref`, in units of the float ulp at ref (the subnormal
// spacing 2^-149 below 2^-126). A value beyond the float range must come out as +inf exactly when
// it rounds to inf.
double ulp_error(float got, double ref) {
  const double round_to_inf = std::ldexp(2.0 - std::ldexp(1.0, -24), 127);  // FLT_MAX + ulp/2
  if (ref >= round_to_inf) return std::isinf(got) && got > 0 ? 0.0 : 1e30;
  if (std::isinf(got) || std::isnan(got)) return 1e30;
  int e = 0;
  std::frexp(ref, &e);  // |ref| = m 2^e, m in [0.5, 1)
  const double ulp = std::ldexp(1.0, std::max(e - 24, -149));
  return std::fabs(static_cast<double>(got) - ref) / ulp;
}

TEST(ExpF32, SpecialValues) {
  EXPECT_EQ(bits(exp_f32(0.0f)), bits(1.0f));
  EXPECT_EQ(bits(exp_f32(-0.0f)), bits(1.0f));
  EXPECT_EQ(bits(exp_f32(kInf)), bits(kInf));
  EXPECT_EQ(bits(exp_f32(-kInf)), bits(0.0f));
  EXPECT_TRUE(std::isnan(exp_f32(kNan)));
  EXPECT_TRUE(std::isnan(exp_f32(-kNan)));
  // Overflow: e^88.72283 < FLT_MAX < e^88.72284.
  EXPECT_TRUE(std::isfinite(exp_f32(88.72283f)));
  EXPECT_EQ(bits(exp_f32(88.72284f)), bits(kInf));
  EXPECT_EQ(bits(exp_f32(100.0f)), bits(kInf));
  EXPECT_EQ(bits(exp_f32(FLT_MAX)), bits(kInf));
  // Gradual underflow: e^-103.9 is a few subnormal ulps; e^-104 rounds to zero.
  EXPECT_GT(exp_f32(-103.0f), 0.0f);
  EXPECT_LT(exp_f32(-103.0f), FLT_MIN);
  EXPECT_EQ(bits(exp_f32(-104.0f)), bits(0.0f));
  EXPECT_EQ(bits(exp_f32(-200.0f)), bits(0.0f));
  EXPECT_EQ(bits(exp_f32(-FLT_MAX)), bits(0.0f));
  // Tiny arguments (subnormal included) give 1.
  EXPECT_EQ(bits(exp_f32(std::numeric_limits<float>::denorm_min())), bits(1.0f));
  EXPECT_EQ(bits(exp_f32(-std::numeric_limits<float>::denorm_min())), bits(1.0f));
  EXPECT_EQ(bits(exp_f32(1e-30f)), bits(1.0f));
}

TEST(LogF32, SpecialValues) {
  EXPECT_EQ(bits(log_f32(1.0f)), bits(0.0f));
  EXPECT_EQ(bits(log_f32(0.0f)), bits(-kInf));
  EXPECT_EQ(bits(log_f32(-0.0f)), bits(-kInf));
  EXPECT_EQ(bits(log_f32(kInf)), bits(kInf));
  EXPECT_TRUE(std::isnan(log_f32(-kInf)));
  EXPECT_TRUE(std::isnan(log_f32(-1.0f)));
  EXPECT_TRUE(std::isnan(log_f32(-std::numeric_limits<float>::denorm_min())));
  EXPECT_TRUE(std::isnan(log_f32(kNan)));
  // Subnormals: log(2^-149) = -149 ln 2.
  const float tiny = std::numeric_limits<float>::denorm_min();
  EXPECT_LE(ulp_error(log_f32(tiny), -149.0 * std::log(2.0)), 1.0);
  EXPECT_LE(ulp_error(log_f32(FLT_MAX), std::log(static_cast<double>(FLT_MAX))), 1.0);
}

// Every `stride`-th bit pattern from `first` to `last` (inclusive, as unsigned bit patterns).
template <class F, class R>
double max_ulp_over(uint32_t first, uint32_t last, uint32_t stride, F f, R ref, float* worst) {
  double max_err = 0.0;
  for (uint64_t b = first; b <= last; b += stride) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(b));
    const double err = ulp_error(f(x), ref(static_cast<double>(x)));
    if (err > max_err) {
      max_err = err;
      *worst = x;
    }
  }
  return max_err;
}

TEST(ExpF32, BelowOneUlpOnDenseSweep) {
  auto f = [](float x) { return exp_f32(x); };
  auto ref = [](double x) { return std::exp(x); };
  float worst = 0.0f;
  // Positive arguments up to past the overflow threshold (89), then negative ones down to past
  // the underflow threshold (-104): every 127th float, about 17 million points.
  double err = max_ulp_over(0u, bits(89.0f), 127, f, ref, &worst);
  EXPECT_LT(err, 1.0) << "worst x = " << worst;
  err = max_ulp_over(bits(-0.0f), bits(-105.0f), 127, f, ref, &worst);
  EXPECT_LT(err, 1.0) << "worst x = " << worst;
  // Every float in [-104, -87.3], where the result is subnormal.
  err = max_ulp_over(bits(-87.3f), bits(-104.0f), 1, f, ref, &worst);
  EXPECT_LT(err, 1.0) << "worst x = " << worst;
  // Every 3rd float in [0.25, 0.5] and [-0.5, -0.25], where n = 0: the polynomial is the result.
  err = max_ulp_over(bits(0.25f), bits(0.5f), 3, f, ref, &worst);
  EXPECT_LT(err, 1.0) << "worst x = " << worst;
  err = max_ulp_over(bits(-0.25f), bits(-0.5f), 3, f, ref, &worst);
  EXPECT_LT(err, 1.0) << "worst x = " << worst;
}

TEST(LogF32, BelowOneUlpOnDenseSweep) {
  auto f = [](float x) { return log_f32(x); };
  auto ref = [](double x) { return std::log(x); };
  float worst = 0.0f;
  // Every 167th positive float, subnormals included (about 13 million points).
  double err = max_ulp_over(1u, bits(FLT_MAX), 167, f, ref, &worst);
  EXPECT_LT(err, 1.0) << "worst x = " << worst;
  // Every 3rd float in [0.5, 2], where the result is small and cancellation would show.
  err = max_ulp_over(bits(0.5f), bits(2.0f), 3, f, ref, &worst);
  EXPECT_LT(err, 1.0) << "worst x = " << worst;
}

// The outputs of a fixed sweep, hashed (FNV-1a over the bit patterns). A different value means
// exp_f32 or log_f32 changed: outputs of the engine change with it, so that is a new kernel
// version (INVARIANCE.md: "time" and the system fingerprint), never a silent edit.
uint64_t sweep_hash(float (*f)(float), float lo, float hi, int n) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i <= n; ++i) {
    const float x = lo + (hi - lo) * (static_cast<float>(i) / static_cast<float>(n));
    const uint32_t b = bits(f(x));
    for (int k = 0; k < 4; ++k) {
      h ^= (b >> (8 * k)) & 0xffu;
      h *= 1099511628211ull;
    }
  }
  return h;
}

TEST(ExpLogF32, GoldenBits) {
  EXPECT_EQ(sweep_hash(exp_f32, -110.0f, 90.0f, 1 << 20), 0x800d48131e61768full);
  EXPECT_EQ(sweep_hash(log_f32, 0.0f, 1000.0f, 1 << 20), 0xbe12773a3147104dull);
}

// ---- vector exp == exp_f32 ----

using VecExp = void (*)(const float* x, float* y, int64_t n);

std::vector<std::pair<const char*, VecExp>> vector_exps() {
  std::vector<std::pair<const char*, VecExp>> out;
  if (isa_supported(Isa::avx2)) out.emplace_back("avx2", cpu::exp_avx2);
  if (isa_supported(Isa::avx512)) out.emplace_back("avx512", cpu::exp_avx512);
  return out;
}

// Counts the inputs x[0..n) where f differs from exp_f32 in any bit; *first_bad is the first.
int64_t mismatches(VecExp f, const float* x, int64_t n, uint32_t* first_bad) {
  std::vector<float> y(static_cast<size_t>(n));
  f(x, y.data(), n);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (bits(y[static_cast<size_t>(i)]) != bits(exp_f32(x[i]))) {
      if (bad++ == 0) *first_bad = bits(x[i]);
    }
  }
  return bad;
}

// Every `stride`-th bit pattern from `first` to `last` (inclusive), in chunks.
int64_t mismatches_over(VecExp f, uint64_t first, uint64_t last, uint64_t stride,
                        uint32_t* first_bad) {
  constexpr int64_t kChunk = 1 << 16;
  std::vector<float> x;
  x.reserve(kChunk);
  int64_t bad = 0;
  for (uint64_t b = first; b <= last; b += stride) {
    x.push_back(std::bit_cast<float>(static_cast<uint32_t>(b)));
    if (static_cast<int64_t>(x.size()) == kChunk || b + stride > last) {
      uint32_t fb = 0;
      const int64_t k = mismatches(f, x.data(), static_cast<int64_t>(x.size()), &fb);
      if (k > 0 && bad == 0) *first_bad = fb;
      bad += k;
      x.clear();
    }
  }
  return bad;
}

TEST(VectorExp, SpecialValuesAndBoundariesBitwise) {
  std::vector<float> x = {0.0f, -0.0f, kInf, -kInf, kNan, -kNan, FLT_MAX, -FLT_MAX, FLT_MIN,
                          -FLT_MIN, std::numeric_limits<float>::denorm_min(),
                          -std::numeric_limits<float>::denorm_min(), 1.0f, -1.0f, 0.5f, -0.5f,
                          88.72283f, 88.72284f, 88.75f, -87.33655f, -103.97208f, -104.0f,
                          -149.0f * 0.6931472f, 0.34657359f, -0.34657359f};
  // NaNs with payloads, quiet and signalling, both signs.
  for (uint32_t b : {0x7fc00001u, 0xffc12345u, 0x7f800001u, 0xff80ffffu, 0x7fbfffffu}) {
    x.push_back(std::bit_cast<float>(b));
  }
  // 4096 floats either side of each bound and of each point where n = rint(x / ln 2) changes
  // (the rounding trick) for n in [-151, 129].
  std::vector<float> centres = {cpu::exp_const::kHi, cpu::exp_const::kLo};
  for (int k = -151; k <= 129; ++k) centres.push_back((static_cast<float>(k) + 0.5f) * 0.6931472f);
  for (float c : centres) {
    const uint32_t b = bits(c);
    for (uint32_t d = 0; d < 4096; ++d) {
      x.push_back(std::bit_cast<float>(b + d));
      x.push_back(std::bit_cast<float>(b - d));
    }
  }
  for (const auto& [name, f] : vector_exps()) {
    uint32_t first_bad = 0;
    EXPECT_EQ(mismatches(f, x.data(), static_cast<int64_t>(x.size()), &first_bad), 0)
        << name << " first bad input bits 0x" << std::hex << first_bad;
  }
}

TEST(VectorExp, DenseSweepBitwise) {
  for (const auto& [name, f] : vector_exps()) {
    uint32_t first_bad = 0;
    // Every 61st bit pattern of all 2^32 (70 million inputs; all signs, NaNs and infinities).
    EXPECT_EQ(mismatches_over(f, 0u, 0xffffffffu, 61, &first_bad), 0)
        << name << " first bad 0x" << std::hex << first_bad;
    // Every float in [-104, -87.3] (subnormal results, the two-factor scaling) and in
    // [88.7, 88.75] (overflow).
    EXPECT_EQ(mismatches_over(f, bits(-87.3f), bits(-104.0f), 1, &first_bad), 0)
        << name << " first bad 0x" << std::hex << first_bad;
    EXPECT_EQ(mismatches_over(f, bits(88.7f), bits(88.75f), 1, &first_bad), 0)
        << name << " first bad 0x" << std::hex << first_bad;
  }
}

TEST(VectorExp, EveryTailLength) {
  std::vector<float> x(48), y(48);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -100.0f + 4.5f * static_cast<float>(i);
  for (const auto& [name, f] : vector_exps()) {
    for (int64_t n = 0; n <= 40; ++n) {
      for (float& v : y) v = -7.0f;
      f(x.data(), y.data(), n);
      for (int64_t i = 0; i < 48; ++i) {
        const float want = i < n ? exp_f32(x[static_cast<size_t>(i)]) : -7.0f;
        ASSERT_EQ(bits(y[static_cast<size_t>(i)]), bits(want)) << name << " n " << n << " i " << i;
      }
    }
  }
}

// All 2^32 inputs; a minute or so per ISA. Run by hand (see the top of this file).
TEST(VectorExp, DISABLED_AllFloatsBitwise) {
  for (const auto& [name, f] : vector_exps()) {
    uint32_t first_bad = 0;
    EXPECT_EQ(mismatches_over(f, 0u, 0xffffffffu, 1, &first_bad), 0)
        << name << " first bad 0x" << std::hex << first_bad;
  }
}

}  // namespace
}  // namespace bx
