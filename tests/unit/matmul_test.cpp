// Tests of kernels/matmul.h: y[M,N] = x[M,K] @ W[N,K]^T and the canonical dot.
//
//   T1 exact      small integers give exactly sum x*w and matmul_reference; random inputs give
//                 the same bits on every ISA path and equal lanes::dot_reference.
//   T2 accurate   relative error against a float64 reference within a K-dependent bound.
//   T3 invariant  row i of a batch of M rows == the same row computed alone (memcmp), for many
//                 M, K, N, thread counts and ISAs; the split_k_by_m negative control must fail it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/lanes.h"
#include "kernels/matmul.h"

namespace bx {
namespace {

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

std::vector<float> random_ints(size_t n, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = static_cast<float>(dist(rng));
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

// A weight matrix [N, K] held as f32 or as bf16 (then `f32` holds the widened values).
struct Weights {
  DType dtype = DType::f32;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  const void* data() const {
    return dtype == DType::bf16 ? static_cast<const void*>(bf16.data()) : f32.data();
  }
};

Weights make_weights(std::vector<float> w, DType dtype) {
  Weights out;
  out.dtype = dtype;
  if (dtype == DType::bf16) {
    out.bf16 = to_bf16(w);
    for (size_t i = 0; i < w.size(); ++i) w[i] = bf16_to_f32(out.bf16[i]);
  }
  out.f32 = std::move(w);
  return out;
}

MatmulArgs dense_args(const float* x, const Weights& w, float* y, int64_t M, int64_t N, int64_t K,
                      ReductionOrder order = ReductionOrder::canonical) {
  MatmulArgs a;
  a.x = x;
  a.x_stride = K;
  a.w = w.data();
  a.w_dtype = w.dtype;
  a.w_stride = K;
  a.y = y;
  a.y_stride = N;
  a.M = M;
  a.N = N;
  a.K = K;
  a.order = order;
  return a;
}

// y = x[0..M) @ W^T on `isa` with `threads` threads; y starts as NaN so no output is skipped.
std::vector<float> run(const std::vector<float>& x, const Weights& w, int64_t M, int64_t N,
                       int64_t K, ThreadPool& pool, Isa isa,
                       ReductionOrder order = ReductionOrder::canonical) {
  std::vector<float> y(static_cast<size_t>(M * N), std::numeric_limits<float>::quiet_NaN());
  matmul(dense_args(x.data(), w, y.data(), M, N, K, order), pool, isa);
  return y;
}

std::vector<float> reference(const std::vector<float>& x, const Weights& w, int64_t M, int64_t N,
                             int64_t K) {
  std::vector<float> y(static_cast<size_t>(M * N), std::numeric_limits<float>::quiet_NaN());
  matmul_reference(dense_args(x.data(), w, y.data(), M, N, K));
  return y;
}

bool same_bits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float)) == 0;
}

std::string shape(int64_t M, int64_t N, int64_t K) {
  return "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
}

ThreadPool& pool_of(int threads) {
  static ThreadPool p1(1), p2(2), p3(3);
  return threads == 1 ? p1 : threads == 2 ? p2 : p3;
}

// Shapes that cross every tile and block edge of the SIMD paths (tiles of 1-4 rows x 1-8
// columns, M blocks of 64, N blocks of 48, K blocks of 1024, the blocked path from M = 16).
const int64_t kEdgeM[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 19, 34, 64, 70};
const int64_t kEdgeN[] = {1, 2, 5, 6, 7, 13, 48, 50, 97};
const int64_t kEdgeK[] = {0, 1, 2, 15, 16, 17, 31, 100, 1023, 1024, 1025, 2100};

// ---- T1 exact ---------------------------------------------------------------------------------

TEST(MatmulExact, SmallIntegersGiveThePlainSum) {
  for (DType dtype : {DType::f32, DType::bf16}) {
    for (int64_t K : kEdgeK) {
      for (int64_t M : {int64_t{1}, int64_t{5}, int64_t{17}, int64_t{70}}) {
        for (int64_t N : {int64_t{1}, int64_t{7}, int64_t{50}}) {
          // |x|, |w| <= 8: every partial sum is an integer below 2^24, so float is exact.
          const auto x = random_ints(static_cast<size_t>(M * K), 1, -8, 8);
          const Weights w = make_weights(random_ints(static_cast<size_t>(N * K), 2, -8, 8), dtype);
          std::vector<float> plain(static_cast<size_t>(M * N));
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
              float s = 0.0f;
              for (int64_t k = 0; k < K; ++k) s += x[m * K + k] * w.f32[n * K + k];
              plain[m * N + n] = s;
            }
          }
          const auto ref = reference(x, w, M, N, K);
          ASSERT_TRUE(same_bits(ref.data(), plain.data(), M * N)) << shape(M, N, K);
          for (Isa isa : supported_isas()) {
            const auto y = run(x, w, M, N, K, pool_of(2), isa);
            ASSERT_TRUE(same_bits(y.data(), plain.data(), M * N))
                << isa_name(isa) << " " << dtype_name(dtype) << " " << shape(M, N, K);
          }
        }
      }
    }
  }
}

TEST(MatmulExact, ZeroKAndNegativeZeroProductsGivePositiveZero) {
  // K = 0 is the empty canonical dot: +0.0f. Products that are all -0.0f still give +0.0f,
  // because every lane starts at +0.0f and the padding steps are real fma(0, 0, acc).
  for (int64_t K : {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{16}, int64_t{40}}) {
    const int64_t M = 18, N = 9;
    std::vector<float> x(static_cast<size_t>(M * K), -1.0f);
    const Weights w =
        make_weights(std::vector<float>(static_cast<size_t>(N * K), 0.0f), DType::f32);
    for (Isa isa : supported_isas()) {
      const auto y = run(x, w, M, N, K, pool_of(1), isa);
      for (float v : y) {
        ASSERT_EQ(v, 0.0f) << isa_name(isa) << " K=" << K;
        ASSERT_FALSE(std::signbit(v)) << isa_name(isa) << " K=" << K;
      }
      const float* none = nullptr;
      const float d = K == 0 ? dot(none, none, 0, isa) : dot(x.data(), w.f32.data(), K, isa);
      ASSERT_FALSE(std::signbit(d)) << isa_name(isa) << " K=" << K;
    }
  }
}

TEST(MatmulExact, RandomInputsGiveTheSameBitsOnEveryIsa) {
  uint32_t seed = 10;
  for (DType dtype : {DType::f32, DType::bf16}) {
    for (int64_t K : kEdgeK) {
      for (int64_t M : kEdgeM) {
        for (int64_t N : kEdgeN) {
          if (M * N * K > 3'000'000) continue;  // keeps the scalar path quick
          const auto x = random_floats(static_cast<size_t>(M * K), ++seed);
          const Weights w = make_weights(random_floats(static_cast<size_t>(N * K), ++seed), dtype);
          const auto ref = reference(x, w, M, N, K);
          for (Isa isa : supported_isas()) {
            const auto y = run(x, w, M, N, K, pool_of(2), isa);
            ASSERT_TRUE(same_bits(y.data(), ref.data(), M * N))
                << isa_name(isa) << " " << dtype_name(dtype) << " " << shape(M, N, K);
          }
        }
      }
    }
  }
}

TEST(MatmulExact, ReferenceIsTheCanonicalDot) {
  const int64_t M = 3, N = 4, K = 77;
  const auto x = random_floats(M * K, 3);
  const Weights w = make_weights(random_floats(N * K, 4), DType::f32);
  const auto y = reference(x, w, M, N, K);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      const float d = lanes::dot_reference(&x[m * K], &w.f32[n * K], K);
      ASSERT_TRUE(same_bits(&y[m * N + n], &d, 1)) << m << "," << n;
    }
  }
}

TEST(MatmulExact, StridedRowsReadOnlyTheirElements) {
  // Gaps between rows hold NaN: any read past K (or write past N) shows up in the result.
  const int64_t M = 21, N = 53, K = 530, xs = K + 7, ws = K + 3, ys = N + 5;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto xd = random_floats(M * K, 5);
  const auto wd = random_floats(N * K, 6);
  std::vector<float> x(M * xs, nan);
  std::vector<float> wf(N * ws, nan);
  for (int64_t m = 0; m < M; ++m) std::copy_n(&xd[m * K], K, &x[m * xs]);
  for (int64_t n = 0; n < N; ++n) std::copy_n(&wd[n * K], K, &wf[n * ws]);
  const std::vector<uint16_t> wb = to_bf16(wf);
  for (DType dtype : {DType::f32, DType::bf16}) {
    Weights dense = make_weights(wd, dtype);
    const auto ref = reference(xd, dense, M, N, K);
    for (Isa isa : supported_isas()) {
      std::vector<float> y(M * ys, -7.0f);
      MatmulArgs a;
      a.x = x.data();
      a.x_stride = xs;
      a.w = dtype == DType::bf16 ? static_cast<const void*>(wb.data()) : wf.data();
      a.w_dtype = dtype;
      a.w_stride = ws;
      a.y = y.data();
      a.y_stride = ys;
      a.M = M;
      a.N = N;
      a.K = K;
      matmul(a, pool_of(3), isa);
      for (int64_t m = 0; m < M; ++m) {
        ASSERT_TRUE(same_bits(&y[m * ys], &ref[m * N], N)) << isa_name(isa) << " row " << m;
        for (int64_t n = N; n < ys; ++n) ASSERT_EQ(y[m * ys + n], -7.0f);
      }
    }
  }
}

TEST(DotExact, EveryIsaEqualsTheReference) {
  for (int64_t n = 0; n <= 300; ++n) {
    const auto a = random_floats(static_cast<size_t>(n) + 1, static_cast<uint32_t>(100 + n));
    const auto b = random_floats(static_cast<size_t>(n) + 1, static_cast<uint32_t>(900 + n));
    const float ref = lanes::dot_reference(a.data(), b.data(), n);
    for (Isa isa : supported_isas()) {
      const float d = dot(a.data(), b.data(), n, isa);
      ASSERT_TRUE(same_bits(&d, &ref, 1)) << isa_name(isa) << " n=" << n;
    }
    const float active = dot(a.data(), b.data(), n);
    ASSERT_TRUE(same_bits(&active, &ref, 1)) << "active ISA, n=" << n;
  }
}

TEST(MatmulArgsCheck, BadArgumentsThrow) {
  std::vector<float> x(64), w(64), y(64);
  MatmulArgs a;
  a.x = x.data();
  a.w = w.data();
  a.y = y.data();
  a.M = 2;
  a.N = 2;
  a.K = 8;
  MatmulArgs neg = a;
  neg.K = -1;
  EXPECT_THROW(matmul(neg, pool_of(1)), Error);
  MatmulArgs stride = a;
  stride.x_stride = 4;
  EXPECT_THROW(matmul(stride, pool_of(1)), Error);
  MatmulArgs f16 = a;
  f16.w_dtype = DType::f16;
  EXPECT_THROW(matmul(f16, pool_of(1)), Error);
  MatmulArgs null_w = a;
  null_w.w = nullptr;
  EXPECT_THROW(matmul_reference(null_w), Error);
  EXPECT_NO_THROW(matmul(a, pool_of(1)));  // strides 0 mean dense
}

// ---- T2 accurate ------------------------------------------------------------------------------

TEST(MatmulAccurate, RelativeErrorAgainstFloat64) {
  // Each lane sums about K/16 products, then 4 tree levels: the error of each output is at most
  // (K/16 + 5) u * sum |x w| (u = 2^-24), the usual bound for a sum of that depth.
  const double u = std::ldexp(1.0, -24);
  for (DType dtype : {DType::f32, DType::bf16}) {
    for (int64_t K : {int64_t{1}, int64_t{17}, int64_t{256}, int64_t{1000}, int64_t{4096}}) {
      const int64_t M = 19, N = 23;
      const auto x = random_floats(M * K, 20, -2.0f, 2.0f);
      const auto w_exact = random_floats(N * K, 21, -1.0f, 1.0f);
      const Weights w = make_weights(w_exact, dtype);
      const auto y = run(x, w, M, N, K, pool_of(2), active_isa());
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double exact = 0.0, exact_orig = 0.0, magnitude = 0.0;
          for (int64_t k = 0; k < K; ++k) {
            const double xv = x[m * K + k];
            exact += xv * w.f32[n * K + k];
            exact_orig += xv * w_exact[n * K + k];
            magnitude += std::fabs(xv * w.f32[n * K + k]);
          }
          const double got = y[m * N + n];
          const double bound = (static_cast<double>(K) / 16.0 + 5.0) * u * magnitude;
          ASSERT_LE(std::fabs(got - exact), bound) << dtype_name(dtype) << " " << shape(M, N, K);
          if (dtype == DType::bf16) {  // against the unrounded weights: bf16 keeps 8 bits
            ASSERT_LE(std::fabs(got - exact_orig), bound + std::ldexp(1.0, -8) * magnitude);
          }
        }
      }
    }
  }
}

// ---- T3 invariant -----------------------------------------------------------------------------

// Each row of x computed alone (M = 1) on one thread: the baseline every batch must match.
std::vector<float> rows_alone(const std::vector<float>& x, const Weights& w, int64_t rows,
                              int64_t N, int64_t K, Isa isa, ReductionOrder order) {
  std::vector<float> alone(static_cast<size_t>(rows * N));
  std::vector<float> row_x(static_cast<size_t>(K));
  for (int64_t i = 0; i < rows; ++i) {
    std::copy_n(&x[i * K], K, row_x.data());
    const auto y = run(row_x, w, 1, N, K, pool_of(1), isa, order);
    std::copy_n(y.data(), N, &alone[i * N]);
  }
  return alone;
}

// For every M in `ms`: runs the batch x[0..M) and compares each row with `alone` (memcmp).
// Returns the number of rows that differ (the caller decides whether that is a pass).
int64_t differing_rows(const std::vector<float>& x, const Weights& w, int64_t N, int64_t K,
                       const std::vector<int64_t>& ms, const std::vector<float>& alone, int threads,
                       Isa isa, ReductionOrder order, std::string* first_diff) {
  int64_t differ = 0;
  for (int64_t M : ms) {
    const auto batch = run(x, w, M, N, K, pool_of(threads), isa, order);
    for (int64_t i = 0; i < M; ++i) {
      if (!same_bits(&batch[i * N], &alone[i * N], N)) {
        if (differ++ == 0 && first_diff != nullptr) {
          *first_diff = std::string(isa_name(isa)) + " threads=" + std::to_string(threads) + " " +
                        shape(M, N, K) + " row " + std::to_string(i);
        }
      }
    }
  }
  return differ;
}

std::vector<int64_t> all_batch_sizes() {
  std::vector<int64_t> ms;
  for (int64_t m = 1; m <= 80; ++m) ms.push_back(m);
  ms.push_back(128);
  ms.push_back(257);
  return ms;
}

std::vector<int64_t> some_batch_sizes() {
  return {1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 63, 64, 65, 80, 128, 257};
}

TEST(MatmulInvariant, RowInBatchEqualsRowAlone) {
  const int64_t kMaxM = 257;
  const int64_t Ks[] = {1, 15, 16, 17, 63, 64, 100, 4100};
  const int64_t Ns[] = {1, 5, 17, 64, 300};
  uint32_t seed = 50;
  for (Isa isa : supported_isas()) {
    for (int64_t K : Ks) {
      for (int64_t N : Ns) {
        // Keep the scalar path (about 1 GFLOP/s) and the largest shapes to a few batch sizes.
        const double work = static_cast<double>(N * K);
        const bool full = isa == Isa::scalar ? work <= 2'000 : work <= 40'000;
        if (isa == Isa::scalar && work > 100'000) continue;
        const std::vector<int64_t> ms = full ? all_batch_sizes() : some_batch_sizes();
        const auto x = random_floats(static_cast<size_t>(kMaxM * K), ++seed);
        const auto w_data = random_floats(static_cast<size_t>(N * K), ++seed);
        for (DType dtype : {DType::f32, DType::bf16}) {
          const Weights w = make_weights(w_data, dtype);
          const int64_t rows = ms.back();
          const auto alone = rows_alone(x, w, rows, N, K, isa, ReductionOrder::canonical);
          for (int threads : {1, 2, 3}) {
            std::string where;
            const int64_t differ = differing_rows(x, w, N, K, ms, alone, threads, isa,
                                                  ReductionOrder::canonical, &where);
            ASSERT_EQ(differ, 0) << dtype_name(dtype) << " first: " << where;
          }
        }
      }
    }
  }
}

TEST(MatmulInvariant, NegativeControlSplitKByMDiffers) {
  // The same comparison with an M-dependent split of K must find differing rows; otherwise the
  // test above could not fail.
  const int64_t N = 17, K = 100, kMaxM = 12;
  const auto x = random_floats(kMaxM * K, 70);
  const Weights w = make_weights(random_floats(N * K, 71), DType::f32);
  std::vector<int64_t> ms;
  for (int64_t m = 1; m <= kMaxM; ++m) ms.push_back(m);
  const Isa isa = active_isa();
  const auto split_alone = rows_alone(x, w, kMaxM, N, K, isa, ReductionOrder::split_k_by_m);
  const auto alone = rows_alone(x, w, kMaxM, N, K, isa, ReductionOrder::canonical);
  for (int threads : {1, 3}) {
    EXPECT_GT(differing_rows(x, w, N, K, ms, split_alone, threads, isa,
                             ReductionOrder::split_k_by_m, nullptr),
              0)
        << "split_k_by_m gave batch-invariant rows: the check is blind";
    EXPECT_EQ(
        differing_rows(x, w, N, K, ms, alone, threads, isa, ReductionOrder::canonical, nullptr), 0);
  }
}

// CPU fast mode runs split_k_by_m through the canonical kernels part by part: it must give the
// bits of the scalar reference of the same order, for every M (1, 2 and 3 parts), K and ISA.
TEST(MatmulSplitK, FastPathEqualsReferenceOfTheSameOrder) {
  const int64_t N = 50;
  for (DType dtype : {DType::f32, DType::bf16}) {
    for (int64_t K : {0, 1, 2, 17, 100, 1025}) {
      const Weights w = make_weights(random_floats(static_cast<size_t>(N * K), 81), dtype);
      const auto x = random_floats(static_cast<size_t>(17 * K), 82);
      for (int64_t M : {1, 2, 3, 4, 5, 16, 17}) {
        std::vector<float> want(static_cast<size_t>(M * N));
        const ReductionOrder split = ReductionOrder::split_k_by_m;
        matmul_reference(dense_args(x.data(), w, want.data(), M, N, K, split));
        for (Isa isa : supported_isas()) {
          for (int threads : {1, 3}) {
            const auto got = run(x, w, M, N, K, pool_of(threads), isa, split);
            EXPECT_TRUE(same_bits(got.data(), want.data(), M * N))
                << dtype_name(dtype) << " " << shape(M, N, K) << " " << isa_name(isa);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace bx
