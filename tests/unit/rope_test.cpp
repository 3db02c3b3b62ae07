// Tests of kernels/rope.h: make_rope_table and rope_inplace.
//
//   T1 exact      a hand-made table of quarter turns (cos, sin in {0, 1, -1}) on small integers
//                 gives the exact rotation for both layouts; position 0 is the identity; random
//                 inputs equal the header's formula (two products, then one add) bit for bit; the
//                 Hugging Face layout on a permuted head equals the GGUF layout bit for bit.
//   T2 accurate   the table is cos/sin of p * theta^(-2i/d) rounded once from double; the rotated
//                 vector is within 2e-6 * |x| of a float64 rotation.
//   T3 invariant  a token rotated inside a batch of T tokens == the token alone (memcmp), for
//                 many T, thread counts 1/2/3 and every ISA. Negative control: the same rotation
//                 with fma gives different bits for some input, so the comparison can fail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "support/kernel_test_data.h"
#include "kernels/rope.h"

namespace bx {
namespace {

using test::pool;
using test::random_floats;
using test::same_bits;

// Index of the two elements of pair i in a head.
std::pair<int, int> pair_of(RopeLayout layout, int head_dim, int i) {
  if (layout == RopeLayout::adjacent_pairs) return {2 * i, 2 * i + 1};
  return {i, i + head_dim / 2};
}

// The header's formula for one token, written plainly; use_fma is the negative control.
void rope_plain(float* x, int pos, int n_heads, const RopeTable& tb, bool use_fma = false) {
  const int half = tb.head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* xh = x + h * tb.head_dim;
    for (int i = 0; i < half; ++i) {
      const auto [a, b] = pair_of(tb.layout, tb.head_dim, i);
      const float c = tb.cos[static_cast<size_t>(pos * half + i)];
      const float s = tb.sin[static_cast<size_t>(pos * half + i)];
      const float x0 = xh[a], x1 = xh[b];
      if (use_fma) {
        xh[a] = std::fma(x0, c, -(x1 * s));
        xh[b] = std::fma(x0, s, x1 * c);
      } else {
        xh[a] = x0 * c - x1 * s;
        xh[b] = x0 * s + x1 * c;
      }
    }
  }
}

TEST(RopeTable, ValuesAreDoubleRoundedOnce) {
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::half_split}) {
    const int d = 64, P = 300;
    const double theta = 10000.0;
    const RopeTable tb = make_rope_table(d, theta, P, layout);
    ASSERT_EQ(tb.cos.size(), static_cast<size_t>(P * d / 2));
    ASSERT_EQ(tb.sin.size(), static_cast<size_t>(P * d / 2));
    EXPECT_EQ(tb.layout, layout);
    for (int p = 0; p < P; ++p) {
      for (int i = 0; i < d / 2; ++i) {
        const double angle = p * std::pow(theta, -2.0 * i / d);
        const size_t at = static_cast<size_t>(p * d / 2 + i);
        ASSERT_EQ(tb.cos[at], static_cast<float>(std::cos(angle))) << p << " " << i;
        ASSERT_EQ(tb.sin[at], static_cast<float>(std::sin(angle))) << p << " " << i;
      }
    }
    // Position 0: no rotation.
    for (int i = 0; i < d / 2; ++i) {
      EXPECT_EQ(tb.cos[static_cast<size_t>(i)], 1.0f);
      EXPECT_EQ(tb.sin[static_cast<size_t>(i)], 0.0f);
    }
  }
}

TEST(RopeTable, RejectsBadShapes) {
  EXPECT_THROW(make_rope_table(7, 10000.0, 16, RopeLayout::adjacent_pairs), Error);
  EXPECT_THROW(make_rope_table(0, 10000.0, 16, RopeLayout::adjacent_pairs), Error);
  EXPECT_THROW(make_rope_table(8, -1.0, 16, RopeLayout::adjacent_pairs), Error);
  EXPECT_THROW(make_rope_table(8, 10000.0, -1, RopeLayout::adjacent_pairs), Error);
}

// Llama 3.1's rope_scaling (factor 8, low 1, high 4, original context 8192; head_dim 128, theta
// 5e5): short wavelengths (< 8192 / 4) keep their frequency, long ones (> 8192) are divided by 8
// exactly, the ones between are blended, strictly between the two and decreasing with i; and the
// table holds cos / sin of p times those frequencies.
TEST(RopeTable, Llama3ScalingRegimes) {
  RopeScaling s;
  s.kind = RopeScaling::Kind::llama3;
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_positions = 8192;
  const int d = 128;
  const double theta = 500000.0, pi = 3.14159265358979323846;
  int high = 0, low = 0, medium = 0;
  double previous = 2.0;
  for (int i = 0; i < d / 2; ++i) {
    const double f = rope_frequency(i, d, theta, RopeScaling{});
    const double scaled = rope_frequency(i, d, theta, s);
    EXPECT_EQ(f, std::pow(theta, -2.0 * i / d));
    const double wavelength = 2.0 * pi / f;
    if (wavelength < 8192.0 / 4.0) {
      EXPECT_EQ(scaled, f) << i;
      ++high;
    } else if (wavelength > 8192.0) {
      EXPECT_EQ(scaled, f / 8.0) << i;
      ++low;
    } else {
      EXPECT_GT(scaled, f / 8.0) << i;
      EXPECT_LT(scaled, f) << i;
      ++medium;
    }
    EXPECT_LT(scaled, previous) << i;
    previous = scaled;
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(medium, 0);
  EXPECT_GT(low, 0);
  const RopeTable tb = make_rope_table(d, theta, 100, RopeLayout::half_split, s);
  for (int p : {1, 37, 99}) {
    for (int i = 0; i < d / 2; ++i) {
      const double angle = p * rope_frequency(i, d, theta, s);
      ASSERT_EQ(tb.cos[static_cast<size_t>(p * d / 2 + i)], static_cast<float>(std::cos(angle)));
      ASSERT_EQ(tb.sin[static_cast<size_t>(p * d / 2 + i)], static_cast<float>(std::sin(angle)));
    }
  }
  RopeScaling bad = s;
  bad.low_freq_factor = 4.0;
  EXPECT_THROW(make_rope_table(d, theta, 16, RopeLayout::half_split, bad), Error);
  bad = s;
  bad.factor = 0.0;
  EXPECT_THROW(make_rope_table(d, theta, 16, RopeLayout::half_split, bad), Error);
  bad = s;
  bad.original_max_positions = 0;
  EXPECT_THROW(make_rope_table(d, theta, 16, RopeLayout::half_split, bad), Error);
}

TEST(Rope, RejectsPositionsOutsideTheTable) {
  const RopeTable tb = make_rope_table(8, 10000.0, 16, RopeLayout::adjacent_pairs);
  std::vector<float> x(16, 1.0f);
  const std::vector<int32_t> bad_hi = {3, 16};
  const std::vector<int32_t> bad_lo = {-1, 0};
  EXPECT_THROW(rope_inplace(x.data(), 8, bad_hi.data(), 2, 1, tb, pool(1)), Error);
  EXPECT_THROW(rope_inplace(x.data(), 8, bad_lo.data(), 2, 1, tb, pool(1)), Error);
}

TEST(Rope, T1QuarterTurnsOnSmallIntegers) {
  // A hand-made table: position p turns every pair by p quarter turns.
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::half_split}) {
    RopeTable tb;
    tb.head_dim = 8;
    tb.max_positions = 4;
    tb.layout = layout;
    const float c[4] = {1, 0, -1, 0}, s[4] = {0, 1, 0, -1};
    for (int p = 0; p < 4; ++p) {
      for (int i = 0; i < 4; ++i) {
        tb.cos.push_back(c[p]);
        tb.sin.push_back(s[p]);
      }
    }
    const int n_heads = 2;
    std::vector<float> x0(16);
    for (int k = 0; k < 16; ++k) x0[static_cast<size_t>(k)] = static_cast<float>(k + 1);
    for (int32_t p = 0; p < 4; ++p) {
      std::vector<float> x = x0;
      rope_inplace(x.data(), 16, &p, 1, n_heads, tb, pool(1));
      for (int h = 0; h < n_heads; ++h) {
        for (int i = 0; i < 4; ++i) {
          const auto [a, b] = pair_of(layout, 8, i);
          const float u = x0[static_cast<size_t>(h * 8 + a)];
          const float v = x0[static_cast<size_t>(h * 8 + b)];
          // (u, v) turned by p quarter turns: (u, v), (-v, u), (-u, -v), (v, -u)
          const float want_a[4] = {u, -v, -u, v};
          const float want_b[4] = {v, u, -v, -u};
          EXPECT_EQ(x[static_cast<size_t>(h * 8 + a)], want_a[p]) << p << " " << h << " " << i;
          EXPECT_EQ(x[static_cast<size_t>(h * 8 + b)], want_b[p]) << p << " " << h << " " << i;
        }
      }
    }
  }
}

TEST(Rope, T1RandomInputsMatchFormulaBitwise) {
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::half_split}) {
    const int d = 128, n_heads = 3, T = 37;
    const RopeTable tb = make_rope_table(d, 500000.0, 4096, layout);
    const int64_t stride = n_heads * d + 5;
    auto x = random_floats(static_cast<size_t>(T * stride), 201, -4.0f, 4.0f);
    std::vector<int32_t> pos(T);
    for (int t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = (t * 113) % 4096;
    auto want = x;
    for (int t = 0; t < T; ++t) {
      rope_plain(want.data() + t * stride, pos[static_cast<size_t>(t)], n_heads, tb);
    }
    rope_inplace(x.data(), stride, pos.data(), T, n_heads, tb, pool(2));
    EXPECT_TRUE(same_bits(x.data(), want.data(), T * stride));
  }
}

TEST(Rope, T1HalfSplitEqualsAdjacentOnPermutedHead) {
  const int d = 64, n_heads = 2, T = 9;
  const RopeTable adj = make_rope_table(d, 10000.0, 1000, RopeLayout::adjacent_pairs);
  const RopeTable hf = make_rope_table(d, 10000.0, 1000, RopeLayout::half_split);
  auto x = random_floats(static_cast<size_t>(T * n_heads * d), 211, -2.0f, 2.0f);
  // y holds x with pair i moved from (2i, 2i+1) to (i, i + d/2).
  std::vector<float> y(x.size());
  for (int r = 0; r < T * n_heads; ++r) {
    for (int i = 0; i < d / 2; ++i) {
      y[static_cast<size_t>(r * d + i)] = x[static_cast<size_t>(r * d + 2 * i)];
      y[static_cast<size_t>(r * d + i + d / 2)] = x[static_cast<size_t>(r * d + 2 * i + 1)];
    }
  }
  std::vector<int32_t> pos(T);
  for (int t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = 100 * t + 3;
  rope_inplace(x.data(), n_heads * d, pos.data(), T, n_heads, adj, pool(1));
  rope_inplace(y.data(), n_heads * d, pos.data(), T, n_heads, hf, pool(3));
  for (int r = 0; r < T * n_heads; ++r) {
    for (int i = 0; i < d / 2; ++i) {
      ASSERT_EQ(std::memcmp(&y[static_cast<size_t>(r * d + i)],
                            &x[static_cast<size_t>(r * d + 2 * i)], sizeof(float)),
                0);
      ASSERT_EQ(std::memcmp(&y[static_cast<size_t>(r * d + i + d / 2)],
                            &x[static_cast<size_t>(r * d + 2 * i + 1)], sizeof(float)),
                0);
    }
  }
}

TEST(Rope, T2WithinBoundOfFloat64Rotation) {
  // Bound: |x' - ref| <= 2e-6 * |(x0, x1)| per pair: the table's cos/sin are each within half a
  // float ulp of the true values, then two products and one add, each rounded.
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::half_split}) {
    const int d = 128, P = 8192;
    const double theta = 10000.0;
    const RopeTable tb = make_rope_table(d, theta, P, layout);
    const int T = 64;
    auto x = random_floats(static_cast<size_t>(T * d), 221, -3.0f, 3.0f);
    const auto x_in = x;
    std::vector<int32_t> pos(T);
    for (int t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = (t * 1237 + 11) % P;
    rope_inplace(x.data(), d, pos.data(), T, 1, tb, pool(1));
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < d / 2; ++i) {
        const auto [a, b] = pair_of(layout, d, i);
        const double angle = pos[static_cast<size_t>(t)] * std::pow(theta, -2.0 * i / d);
        const double u = x_in[static_cast<size_t>(t * d + a)];
        const double v = x_in[static_cast<size_t>(t * d + b)];
        const double ra = u * std::cos(angle) - v * std::sin(angle);
        const double rb = u * std::sin(angle) + v * std::cos(angle);
        const double bound = 2e-6 * std::hypot(u, v);
        ASSERT_LE(std::fabs(x[static_cast<size_t>(t * d + a)] - ra), bound) << t << " " << i;
        ASSERT_LE(std::fabs(x[static_cast<size_t>(t * d + b)] - rb), bound) << t << " " << i;
      }
    }
  }
}

TEST(Rope, T3TokenInBatchEqualsTokenAlone) {
  const Isa saved = active_isa();
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::half_split}) {
    const int d = 64, n_heads = 4, max_t = 50;
    const RopeTable tb = make_rope_table(d, 10000.0, 2048, layout);
    const int64_t stride = n_heads * d + 2;
    const auto x = random_floats(static_cast<size_t>(max_t * stride), 231, -2.0f, 2.0f);
    std::vector<int32_t> pos(max_t);
    for (int t = 0; t < max_t; ++t) pos[static_cast<size_t>(t)] = (t * 37 + 5) % 2048;
    auto alone = x;
    for (int t = 0; t < max_t; ++t) {
      rope_inplace(alone.data() + t * stride, stride, &pos[static_cast<size_t>(t)], 1, n_heads, tb,
                   pool(1));
    }
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
      if (!isa_supported(isa)) continue;
      set_isa(isa);
      for (int threads : {1, 2, 3}) {
        for (int T : {1, 2, 3, 7, 16, 50}) {
          const int first = (T * 5) % (max_t - T + 1);
          std::vector<float> batch(x.begin() + first * stride, x.begin() + (first + T) * stride);
          rope_inplace(batch.data(), stride, pos.data() + first, T, n_heads, tb, pool(threads));
          ASSERT_TRUE(same_bits(batch.data(), alone.data() + first * stride, T * stride))
              << "T " << T << " threads " << threads << " isa " << isa_name(isa);
        }
      }
    }
  }
  set_isa(saved);
}

TEST(RopeNegativeControl, FmaRotationDiffers) {
  const int d = 128, n_heads = 8;
  const RopeTable tb = make_rope_table(d, 10000.0, 1024, RopeLayout::half_split);
  const auto x = random_floats(static_cast<size_t>(n_heads * d), 241, -3.0f, 3.0f);
  auto plain = x, fused = x;
  rope_plain(plain.data(), 777, n_heads, tb);
  rope_plain(fused.data(), 777, n_heads, tb, /*use_fma=*/true);
  EXPECT_FALSE(same_bits(plain.data(), fused.data(), n_heads * d))
      << "an fma rotation never differed from two products and one add";
}

// Frequency factors (GGUF rope_freqs.weight): freq_i / factor_i in double, then the table as
// for any frequencies; factors of the wrong count, zero, negative or not finite are refused.
TEST(RopeTable, FrequencyFactorsDivideEachPairsFrequency) {
  RopeScaling s;
  s.kind = RopeScaling::Kind::freq_factors;
  s.freq_factors = {1.0f, 2.0f, 0.5f, 8.0f};
  const int d = 8;
  const double theta = 10000.0;
  for (int i = 0; i < d / 2; ++i) {
    EXPECT_EQ(rope_frequency(i, d, theta, s),
              std::pow(theta, -2.0 * i / d) / static_cast<double>(s.freq_factors[i]));
  }
  const RopeTable tb = make_rope_table(d, theta, 10, RopeLayout::adjacent_pairs, s);
  EXPECT_EQ(tb.cos[7 * 4 + 3], static_cast<float>(std::cos(7 * std::pow(theta, -0.75) / 8.0)));
  const auto expect_refused = [&](std::vector<float> factors, const std::string& fragment) {
    RopeScaling bad = s;
    bad.freq_factors = std::move(factors);
    try {
      make_rope_table(d, theta, 10, RopeLayout::adjacent_pairs, bad);
      ADD_FAILURE() << "accepted factors for " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_refused({1.0f, 2.0f, 3.0f}, "expected head_dim / 2 = 4");
  expect_refused({1.0f, 0.0f, 1.0f, 1.0f}, "factor 1 is");
  expect_refused({1.0f, 1.0f, -2.0f, 1.0f}, "factor 2 is");
  expect_refused({1.0f, 1.0f, 1.0f, std::numeric_limits<float>::infinity()}, "factor 3 is");
}

}  // namespace
}  // namespace bx
