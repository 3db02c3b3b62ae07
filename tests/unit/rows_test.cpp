// Tests of kernels/rows.h: rmsnorm, log_softmax, row_max, argmax, silu_mul, add_inplace.
//
//   T1 exact      small integers (where every sum is exact in any order) give the plain scalar
//                 formula bit for bit; silu_mul equals its formula bit for bit on any input.
//   T2 accurate   error against float64 within the bounds stated at each test.
//   T3 invariant  a row computed inside a batch of M rows == the row computed alone (memcmp), for
//                 many M, thread counts 1/2/3 and every supported ISA. Negative controls: an
//                 RMSNorm or log-softmax with a plain sequential sum, or with a sum split by M,
//                 gives different bits for some row, so the comparisons can fail.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "support/kernel_test_data.h"
#include "kernels/lanes.h"
#include "kernels/math.h"
#include "kernels/rows.h"

namespace bx {
namespace {

using test::pool;
using test::random_floats;
using test::same_bits;
using test::random_ints;
using test::supported_isas;
using test::IsaGuard;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// ---- rmsnorm ----

// The header's formula with a plain left-to-right sum of squares.
void rmsnorm_sequential(const float* x, const float* w, float eps, float* out, int64_t D) {
  float ss = 0.0f;
  for (int64_t i = 0; i < D; ++i) ss = std::fma(x[i], x[i], ss);
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(D) + eps);
  for (int64_t i = 0; i < D; ++i) out[i] = (x[i] * r) * w[i];
}

TEST(RmsNorm, T1SmallIntegersMatchPlainFormula) {
  for (int64_t D : {1, 2, 7, 15, 16, 17, 33, 100, 4096}) {
    const int64_t M = 5;
    const auto x = random_ints(static_cast<size_t>(M * D), 11, -8, 8);
    const auto w = random_ints(static_cast<size_t>(D), 12, -4, 4);
    std::vector<float> out(x.size()), want(x.size());
    rmsnorm(x.data(), D, w.data(), 0.25f, out.data(), D, M, D, pool(2));
    for (int64_t m = 0; m < M; ++m) {
      rmsnorm_sequential(x.data() + m * D, w.data(), 0.25f, want.data() + m * D, D);
    }
    EXPECT_TRUE(same_bits(out.data(), want.data(), M * D)) << "D = " << D;
  }
}

TEST(RmsNorm, T2WithinBoundOfFloat64) {
  // Bound: relative error 1e-5 per element (the canonical sum of D squares, sqrt, division and
  // two products; observed errors are near 1e-7).
  for (int64_t D : {1, 16, 100, 4096, 8192}) {
    const auto x = random_floats(static_cast<size_t>(D), 21, -3.0f, 3.0f);
    const auto w = random_floats(static_cast<size_t>(D), 22, 0.5f, 1.5f);
    std::vector<float> out(x.size());
    const float eps = 1e-5f;
    rmsnorm(x.data(), D, w.data(), eps, out.data(), D, 1, D, pool(1));
    double ss = 0.0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
    for (int64_t i = 0; i < D; ++i) {
      const double ref = static_cast<double>(x[i]) * r * w[i];
      ASSERT_LE(std::fabs(out[i] - ref), 1e-5 * std::fabs(ref) + 1e-30) << "D " << D << " i " << i;
    }
  }
}

TEST(RmsNorm, OutputMayAliasInput) {
  const int64_t M = 3, D = 40;
  auto x = random_floats(static_cast<size_t>(M * D), 31, -2.0f, 2.0f);
  const auto w = random_floats(static_cast<size_t>(D), 32, -1.0f, 1.0f);
  std::vector<float> out(x.size());
  rmsnorm(x.data(), D, w.data(), 1e-6f, out.data(), D, M, D, pool(2));
  rmsnorm(x.data(), D, w.data(), 1e-6f, x.data(), D, M, D, pool(2));
  EXPECT_TRUE(same_bits(x.data(), out.data(), M * D));
}

// ---- log_softmax ----

// The header's formula with a plain left-to-right sum.
void log_softmax_sequential(const float* x, float* out, int64_t N) {
  const float mx = row_max(x, N);
  float s = 0.0f;
  for (int64_t i = 0; i < N; ++i) s = s + exp_f32(x[i] - mx);
  const float log_s = log_f32(s);
  for (int64_t i = 0; i < N; ++i) out[i] = (x[i] - mx) - log_s;
}

TEST(LogSoftmax, T1ExactSumsMatchPlainFormula) {
  // Values c or -inf: exp gives exactly 1 or 0, so the sum is the exact count in any order.
  std::mt19937 rng(41);
  for (int64_t N : {1, 2, 16, 17, 100, 1000}) {
    std::vector<float> x(static_cast<size_t>(N));
    for (auto& v : x) v = (rng() % 3 == 0) ? -kInf : 2.5f;
    x[static_cast<size_t>(N / 2)] = 2.5f;
    std::vector<float> out(x.size()), want(x.size());
    log_softmax(x.data(), N, out.data(), N, 1, N, pool(1));
    log_softmax_sequential(x.data(), want.data(), N);
    EXPECT_TRUE(same_bits(out.data(), want.data(), N)) << "N = " << N;
    for (float v : out) EXPECT_TRUE(v == -kInf || std::isfinite(v));
  }
}

TEST(LogSoftmax, T2WithinBoundOfFloat64) {
  // Bound: |error| <= 2e-6 * (1 + |ref|): the subtraction x - mx, the canonical sum of N values
  // in (0, 1] and log_f32 (< 1 ulp) each add a few float ulps.
  for (int64_t N : {1, 5, 16, 17, 1000, 32000}) {
    const auto x = random_floats(static_cast<size_t>(N), 51, -20.0f, 20.0f);
    std::vector<float> out(x.size());
    log_softmax(x.data(), N, out.data(), N, 1, N, pool(1));
    double mx = -1e300;
    for (float v : x) mx = std::max(mx, static_cast<double>(v));
    double s = 0.0;
    for (float v : x) s += std::exp(v - mx);
    const double log_s = std::log(s);
    for (int64_t i = 0; i < N; ++i) {
      const double ref = (x[i] - mx) - log_s;
      ASSERT_LE(std::fabs(out[i] - ref), 2e-6 * (1.0 + std::fabs(ref))) << "N " << N << " i " << i;
    }
  }
}

TEST(LogSoftmax, NonFiniteRows) {
  auto run = [](std::vector<float> x) {
    std::vector<float> out(x.size());
    const int64_t N = static_cast<int64_t>(x.size());
    log_softmax(x.data(), N, out.data(), N, 1, N, pool(1));
    return out;
  };
  for (float v : run({1.0f, kNan, 2.0f})) EXPECT_TRUE(std::isnan(v));
  for (float v : run({1.0f, kInf, 2.0f})) EXPECT_TRUE(std::isnan(v));
  for (float v : run({-kInf, -kInf})) EXPECT_TRUE(std::isnan(v));
  const auto out = run({0.0f, -kInf, 0.0f});
  EXPECT_EQ(out[1], -kInf);
  EXPECT_EQ(out[0], -log_f32(2.0f));
  EXPECT_EQ(out[2], -log_f32(2.0f));
}

TEST(LogSoftmax, OutputMayAliasInput) {
  const int64_t M = 3, N = 70;
  auto x = random_floats(static_cast<size_t>(M * N), 61, -5.0f, 5.0f);
  std::vector<float> out(x.size());
  log_softmax(x.data(), N, out.data(), N, M, N, pool(2));
  log_softmax(x.data(), N, x.data(), N, M, N, pool(2));
  EXPECT_TRUE(same_bits(x.data(), out.data(), M * N));
}

// Rows with extreme values: differences x[i] - mx that underflow in exp (to subnormals and to
// +0), +-inf, NaNs with payloads, huge magnitudes; every length 1..40 and a few long ones (the
// masked tails), each ISA against the scalar path bit for bit.
TEST(LogSoftmax, ExtremeRowsSameBitsOnEveryIsa) {
  IsaGuard guard;
  const float specials[] = {-kInf, kInf, kNan, std::bit_cast<float>(0xffc12345u), -1e30f,
                            -3.0e38f, 3.0e38f, -87.5f, -95.0f, -103.5f, -104.0f, -104.5f,
                            -150.0f, -200.0f, 88.7f, 0.0f, -0.0f, 1e-40f, -1e-40f};
  std::mt19937 rng(77);
  std::vector<std::vector<float>> rows;
  for (int64_t N : {1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 40, 100, 1000, 4099}) {
    // Wide spread, no specials: many terms underflow to subnormals or +0.
    std::vector<float> x(static_cast<size_t>(N));
    std::uniform_real_distribution<float> wide(-120.0f, 5.0f);
    for (float& v : x) v = wide(rng);
    rows.push_back(x);
    // The same with one or a few special values at random positions.
    for (float sp : specials) {
      auto y = x;
      const int k = 1 + static_cast<int>(rng() % 3);
      for (int j = 0; j < k; ++j) y[rng() % y.size()] = sp;
      rows.push_back(y);
    }
    // Every element -104 .. -87 below a single 0 (all terms subnormal but one).
    auto z = x;
    std::uniform_real_distribution<float> sub(-104.0f, -87.0f);
    for (float& v : z) v = sub(rng);
    z[rng() % z.size()] = 0.0f;
    rows.push_back(z);
    // Two different NaNs: the first one decides the payload of the row (row_max).
    if (N >= 2) {
      auto w = x;
      const size_t a = rng() % w.size(), b = rng() % w.size();
      w[std::min(a, b)] = std::bit_cast<float>(0x7fc0beefu);
      w[std::max(a, b)] = std::bit_cast<float>(0xffc00001u);
      if (a != b) rows.push_back(w);
    }
    // Zeros of both signs as the maximum (+0 ranks above -0), and all -0.
    auto zs = x;
    for (float& v : zs) v = -std::fabs(v);
    zs[rng() % zs.size()] = -0.0f;
    rows.push_back(zs);
    zs[rng() % zs.size()] = 0.0f;
    rows.push_back(zs);
    rows.emplace_back(static_cast<size_t>(N), -0.0f);
    // All -inf, and all equal.
    rows.emplace_back(static_cast<size_t>(N), -kInf);
    rows.emplace_back(static_cast<size_t>(N), -3.5f);
  }
  for (const auto& x : rows) {
    const int64_t N = static_cast<int64_t>(x.size());
    set_isa(Isa::scalar);
    std::vector<float> want(x.size());
    log_softmax(x.data(), N, want.data(), N, 1, N, pool(1));
    for (Isa isa : supported_isas()) {
      set_isa(isa);
      std::vector<float> got(x.size());
      log_softmax(x.data(), N, got.data(), N, 1, N, pool(1));
      ASSERT_TRUE(same_bits(got.data(), want.data(), N)) << "N " << N << " isa " << isa_name(isa);
      auto in_place = x;
      log_softmax(in_place.data(), N, in_place.data(), N, 1, N, pool(1));
      ASSERT_TRUE(same_bits(in_place.data(), want.data(), N))
          << "N " << N << " isa " << isa_name(isa) << " in place";
    }
  }
}

// ---- row_max, argmax ----

TEST(RowMax, NanAndSignedZero) {
  const std::vector<float> a = {1.0f, kNan, 3.0f};
  EXPECT_TRUE(std::isnan(row_max(a.data(), 3)));
  EXPECT_EQ(row_max(a.data(), 0), -kInf);
  const std::vector<float> z1 = {-0.0f, 0.0f, -1.0f};
  const std::vector<float> z2 = {0.0f, -0.0f, -1.0f};
  EXPECT_FALSE(std::signbit(row_max(z1.data(), 3)));
  EXPECT_FALSE(std::signbit(row_max(z2.data(), 3)));
  const std::vector<float> z3 = {-0.0f, -2.0f};
  EXPECT_TRUE(std::signbit(row_max(z3.data(), 2)));
  const std::vector<float> b = {-kInf, 7.0f, kInf, 7.0f};
  EXPECT_EQ(row_max(b.data(), 4), kInf);
}

TEST(Argmax, TiesNansAndEdges) {
  const std::vector<float> ties = {1.0f, 5.0f, 2.0f, 5.0f, 5.0f};
  EXPECT_EQ(argmax(ties.data(), 5), 1);
  const std::vector<float> nans = {kNan, 1.0f, kNan, 3.0f, kNan};
  EXPECT_EQ(argmax(nans.data(), 5), 3);
  const std::vector<float> all_nan = {kNan, kNan};
  EXPECT_EQ(argmax(all_nan.data(), 2), 0);
  EXPECT_EQ(argmax(nullptr, 0), 0);
  const std::vector<float> zeros = {-1.0f, -0.0f, 0.0f};
  EXPECT_EQ(argmax(zeros.data(), 3), 1);  // -0 == +0: a tie, so the lowest index
  const std::vector<float> infs = {-kInf, -kInf, -kInf};
  EXPECT_EQ(argmax(infs.data(), 3), 0);
  const std::vector<float> big = {3.0f, kInf, kInf};
  EXPECT_EQ(argmax(big.data(), 3), 1);
}

// ---- silu_mul, add_inplace ----

TEST(SiluMul, T1MatchesFormulaBitwise) {
  const int64_t M = 4, F = 1000;
  const auto g = random_floats(static_cast<size_t>(M * F), 71, -30.0f, 30.0f);
  const auto u = random_floats(static_cast<size_t>(M * F), 72, -2.0f, 2.0f);
  std::vector<float> out(g.size()), want(g.size());
  silu_mul(g.data(), F, u.data(), F, out.data(), F, M, F, pool(3));
  for (size_t i = 0; i < g.size(); ++i) want[i] = (g[i] / (1.0f + exp_f32(-g[i]))) * u[i];
  EXPECT_TRUE(same_bits(out.data(), want.data(), M * F));
}

TEST(SiluMul, T2WithinBoundOfFloat64) {
  // Bound: relative error 1e-6 (exp_f32 < 1 ulp, then one add, one division, one product).
  const int64_t F = 20000;
  const auto g = random_floats(static_cast<size_t>(F), 81, -40.0f, 40.0f);
  const auto u = random_floats(static_cast<size_t>(F), 82, -2.0f, 2.0f);
  std::vector<float> out(g.size());
  silu_mul(g.data(), F, u.data(), F, out.data(), F, 1, F, pool(1));
  for (int64_t i = 0; i < F; ++i) {
    const double gd = g[i];
    const double ref = gd / (1.0 + std::exp(-gd)) * u[i];
    ASSERT_LE(std::fabs(out[i] - ref), 1e-6 * std::fabs(ref) + 1e-37) << "g " << g[i];
  }
  // Large negative gates underflow to a signed zero, large positive ones pass through.
  const std::vector<float> gs = {-200.0f, 200.0f, 0.0f};
  const std::vector<float> us = {1.0f, 3.0f, 5.0f};
  std::vector<float> o(3);
  silu_mul(gs.data(), 3, us.data(), 3, o.data(), 3, 1, 3, pool(1));
  EXPECT_EQ(o[0], 0.0f);
  EXPECT_EQ(o[1], 600.0f);
  EXPECT_EQ(o[2], 0.0f);
}

TEST(AddInplace, T1SmallIntegers) {
  const int64_t M = 7, D = 33;
  auto y = random_ints(static_cast<size_t>(M * D), 91, -100, 100);
  const auto x = random_ints(static_cast<size_t>(M * D), 92, -100, 100);
  auto want = y;
  for (size_t i = 0; i < y.size(); ++i) want[i] = want[i] + x[i];
  add_inplace(y.data(), D, x.data(), D, M, D, pool(3));
  EXPECT_TRUE(same_bits(y.data(), want.data(), M * D));
}

// ---- T3: a row inside a batch == the row alone, any M, thread count, ISA ----

// A row kernel on rows [M] of width D, input row stride ld, output row stride ld: out = f(x).
using RowKernel = std::function<void(const float* x, float* out, int64_t ld, int64_t M, int64_t D,
                                     ThreadPool& pool)>;

std::vector<std::pair<const char*, RowKernel>> row_kernels(const std::vector<float>& w,
                                                           const std::vector<float>& up) {
  return {
      {"rmsnorm", [&w](const float* x, float* out, int64_t ld, int64_t M, int64_t D,
                       ThreadPool& p) { rmsnorm(x, ld, w.data(), 1e-6f, out, ld, M, D, p); }},
      {"log_softmax", [](const float* x, float* out, int64_t ld, int64_t M, int64_t D,
                         ThreadPool& p) { log_softmax(x, ld, out, ld, M, D, p); }},
      {"silu_mul",
       [&up](const float* x, float* out, int64_t ld, int64_t M, int64_t D, ThreadPool& p) {
         silu_mul(x, ld, up.data(), 0, out, ld, M, D, p);  // up: one row, broadcast
       }},
      {"add_inplace",
       [&up](const float* x, float* out, int64_t ld, int64_t M, int64_t D, ThreadPool& p) {
         std::memcpy(out, x, static_cast<size_t>((M - 1) * ld + D) * sizeof(float));
         add_inplace(out, ld, up.data(), 0, M, D, p);
       }},
  };
}

TEST(RowsInvariance, T3RowInBatchEqualsRowAlone) {
  IsaGuard guard;
  for (int64_t D : {1, 17, 64, 1000}) {
    const int64_t ld = D + 3;  // padded rows
    const int64_t max_m = 64;
    const auto x = random_floats(static_cast<size_t>(max_m * ld), 101, -6.0f, 6.0f);
    const auto w = random_floats(static_cast<size_t>(D), 102, -1.0f, 1.0f);
    const auto up = random_floats(static_cast<size_t>(D), 103, -1.0f, 1.0f);
    for (const auto& [name, kernel] : row_kernels(w, up)) {
      // Each row alone, scalar ISA, one thread: the baseline.
      set_isa(Isa::scalar);
      std::vector<float> alone(static_cast<size_t>(max_m * ld), 0.0f);
      for (int64_t m = 0; m < max_m; ++m) {
        kernel(x.data() + m * ld, alone.data() + m * ld, ld, 1, D, pool(1));
      }
      for (Isa isa : supported_isas()) {
        set_isa(isa);
        for (int threads : {1, 2, 3}) {
          for (int64_t M : {1, 2, 3, 5, 8, 13, 33, 64}) {
            // The batch holds rows [first, first + M): row m sits at slot m - first.
            const int64_t first = (M * 7) % (max_m - M + 1);
            std::vector<float> out(static_cast<size_t>(M * ld), 0.0f);
            kernel(x.data() + first * ld, out.data(), ld, M, D, pool(threads));
            for (int64_t m = 0; m < M; ++m) {
              ASSERT_TRUE(same_bits(out.data() + m * ld, alone.data() + (first + m) * ld, D))
                  << name << " D " << D << " M " << M << " row " << m << " threads " << threads
                  << " isa " << isa_name(isa);
            }
          }
        }
      }
    }
  }
}

// ---- negative controls ----

// RMSNorm whose sum of squares is split into min(M, 4) parts (as a kernel tuned for small
// batches might do), each summed in order, the parts added left to right.
void rmsnorm_split_by_m(const float* x, const float* w, float eps, float* out, int64_t M,
                        int64_t D) {
  const int64_t parts = std::min<int64_t>(M, 4);
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * D;
    float ss = 0.0f;
    for (int64_t p = 0; p < parts; ++p) {
      float part = 0.0f;
      for (int64_t i = p * D / parts; i < (p + 1) * D / parts; ++i) {
        part = std::fma(xr[i], xr[i], part);
      }
      ss = ss + part;
    }
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(D) + eps);
    for (int64_t i = 0; i < D; ++i) out[m * D + i] = (xr[i] * r) * w[i];
  }
}

TEST(RowsNegativeControl, SequentialSumRmsNormDiffers) {
  const int64_t D = 512, M = 64;
  const auto x = random_floats(static_cast<size_t>(M * D), 111, -3.0f, 3.0f);
  const auto w = random_floats(static_cast<size_t>(D), 112, -1.0f, 1.0f);
  std::vector<float> canonical(x.size()), seq(x.size());
  rmsnorm(x.data(), D, w.data(), 1e-6f, canonical.data(), D, M, D, pool(1));
  int differing = 0;
  for (int64_t m = 0; m < M; ++m) {
    rmsnorm_sequential(x.data() + m * D, w.data(), 1e-6f, seq.data() + m * D, D);
    if (!same_bits(seq.data() + m * D, canonical.data() + m * D, D)) ++differing;
  }
  EXPECT_GT(differing, 0) << "a sequential sum of squares never differed from the lane order";
}

TEST(RowsNegativeControl, BatchDependentRmsNormFailsT3) {
  // The same comparison as T3RowInBatchEqualsRowAlone, applied to a kernel whose order depends
  // on M: some row must come out different in a batch than alone.
  const int64_t D = 512, M = 8;
  const auto x = random_floats(static_cast<size_t>(M * D), 121, -3.0f, 3.0f);
  const auto w = random_floats(static_cast<size_t>(D), 122, -1.0f, 1.0f);
  std::vector<float> batch(x.size()), alone(x.size());
  rmsnorm_split_by_m(x.data(), w.data(), 1e-6f, batch.data(), M, D);
  int differing = 0;
  for (int64_t m = 0; m < M; ++m) {
    rmsnorm_split_by_m(x.data() + m * D, w.data(), 1e-6f, alone.data() + m * D, 1, D);
    if (!same_bits(batch.data() + m * D, alone.data() + m * D, D)) ++differing;
  }
  EXPECT_GT(differing, 0) << "the M-dependent split never changed a row";
}

TEST(RowsNegativeControl, SequentialSumLogSoftmaxDiffers) {
  const int64_t N = 4096, M = 16;
  const auto x = random_floats(static_cast<size_t>(M * N), 131, -4.0f, 4.0f);
  std::vector<float> canonical(x.size()), seq(x.size());
  log_softmax(x.data(), N, canonical.data(), N, M, N, pool(1));
  int differing = 0;
  for (int64_t m = 0; m < M; ++m) {
    log_softmax_sequential(x.data() + m * N, seq.data() + m * N, N);
    if (!same_bits(seq.data() + m * N, canonical.data() + m * N, N)) ++differing;
  }
  EXPECT_GT(differing, 0) << "a sequential sum of exp never differed from the lane order";
}

}  // namespace
}  // namespace bx
