// Tests of kernels/cuda/gemm.h: y[M,N] = x[M,K] @ W[N,K]^T on the tensor cores (bf16 -> f32).
//
//   T1 exact      small integers give exactly the integer sums; random inputs give the same
//                 bits on repeat, for every tile shape and for both schedules (K splits summed
//                 in registers, or in a workspace by a second kernel).
//   T2 accurate   against float64 on the same bf16 inputs (f32 accumulation bound), and on the
//                 original f32 inputs (bf16 rounding bound).
//   T3 invariant  row i alone == row i inside batches of M = 1..1183 (ragged, at any offset);
//                 negative controls: a split of K that follows M, and cuBLAS, do differ.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/gemm.h"
#include "support/cuda_test_data.h"

namespace bx {
namespace {

using cuda::DeviceBuffer;
using cuda::GemmArgs;
using cuda::GemmSchedule;
using cuda::GemmTile;
using test::to_device;
using test::to_host;

// Device copies of x [rows, K] and W [N, K] (bf16) and room for y [rows, N] (f32).
struct Problem {
  int64_t rows, N, K;
  std::vector<uint16_t> x, w;
  DeviceBuffer dx, dw, dy, dws;  // dws: workspace of the split schedule
  Problem(int64_t rows_, int64_t N_, int64_t K_, std::vector<uint16_t> x_, std::vector<uint16_t> w_)
      : rows(rows_),
        N(N_),
        K(K_),
        x(std::move(x_)),
        w(std::move(w_)),
        dx(to_device(x)),
        dw(to_device(w)),
        dy(static_cast<size_t>(rows * N) * sizeof(float)),
        dws(static_cast<size_t>(cuda::gemm_workspace_floats(rows, N, K)) * sizeof(float)) {}

  // y = x[first .. first + M) @ W^T; returns y [M, N].
  std::vector<float> run(int64_t first, int64_t M, GemmTile tile = GemmTile::automatic,
                         GemmSchedule schedule = GemmSchedule::automatic) {
    test::poison(dy);
    cuda::gemm_bf16(args(first, M, 0, K, false), nullptr, tile, schedule);
    test::sync();
    return to_host<float>(dy, static_cast<size_t>(M * N));
  }
  std::vector<float> run_cublas(int64_t first, int64_t M) {
    test::poison(dy);
    cuda::gemm_bf16_cublas(args(first, M, 0, K, false), nullptr);
    test::sync();
    return to_host<float>(dy, static_cast<size_t>(M * N));
  }
  // Negative control: K split into S = 1 + M % 3 parts (16-aligned), added left to right.
  std::vector<float> run_split_by_m(int64_t first, int64_t M) {
    test::poison(dy);
    const int64_t parts = 1 + M % 3;
    const int64_t part = (K / parts + 15) / 16 * 16;
    for (int64_t k0 = 0, p = 0; k0 < K; k0 += part, ++p) {
      cuda::gemm_bf16(args(first, M, k0, std::min(part, K - k0), p > 0), nullptr);
    }
    test::sync();
    return to_host<float>(dy, static_cast<size_t>(M * N));
  }
  GemmArgs args(int64_t first, int64_t M, int64_t k0, int64_t k_len, bool accumulate) {
    GemmArgs a;
    a.x = dx.get<uint16_t>() + first * K + k0;
    a.x_stride = K;
    a.w = dw.get<uint16_t>() + k0;
    a.w_stride = K;
    a.y = dy.get<float>();
    a.y_stride = N;
    a.M = M;
    a.N = N;
    a.K = k_len;
    a.accumulate = accumulate;
    a.workspace = dws.get<float>();
    a.workspace_floats = cuda::gemm_workspace_floats(rows, N, K);
    return a;
  }
  // float64 reference of row r of x.
  std::vector<double> reference_row(int64_t r) const {
    std::vector<double> out(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        s += static_cast<double>(bf16_to_f32(x[r * K + k])) * bf16_to_f32(w[n * K + k]);
      }
      out[n] = s;
    }
    return out;
  }
};

Problem random_problem(int64_t rows, int64_t N, int64_t K, uint32_t seed) {
  return Problem(rows, N, K, test::random_bf16(static_cast<size_t>(rows * K), seed),
                 test::random_bf16(static_cast<size_t>(N * K), seed + 1));
}

bool rows_equal(const std::vector<float>& a, int64_t ra, const std::vector<float>& b, int64_t rb,
                int64_t N) {
  return test::same_bits(a.data() + ra * N, b.data() + rb * N, static_cast<size_t>(N));
}

TEST(CudaGemm, SmallIntegersAreExactOnEveryTileAndSchedule) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 70, N = 136, K = 2056;  // ragged in every tile dimension; 3 K splits
  Problem p(M, N, K, test::random_int_bf16(static_cast<size_t>(M * K), 1, -4, 4),
            test::random_int_bf16(static_cast<size_t>(N * K), 2, -4, 4));
  for (GemmTile tile : {GemmTile::t16x32, GemmTile::t64x32, GemmTile::t64x128, GemmTile::t128x128,
                        GemmTile::t128x128w16}) {
    for (GemmSchedule schedule : {GemmSchedule::registers, GemmSchedule::splits}) {
      const std::vector<float> y = p.run(0, M, tile, schedule);
      for (int64_t m = 0; m < M; ++m) {
        const std::vector<double> ref = p.reference_row(m);
        for (int64_t n = 0; n < N; ++n) {
          ASSERT_EQ(static_cast<double>(y[m * N + n]), ref[n]) << "m=" << m << " n=" << n;
        }
      }
    }
  }
}

TEST(CudaGemm, SameBitsOnRepeatOnEveryTileAndSchedule) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 200, N = 328, K = 1032;
  Problem p = random_problem(M, N, K, 10);
  const std::vector<float> first = p.run(0, M);
  EXPECT_TRUE(test::same_bits(first.data(), p.run(0, M).data(), first.size()));
  for (GemmTile tile : {GemmTile::t16x32, GemmTile::t64x32, GemmTile::t64x128, GemmTile::t128x128,
                        GemmTile::t128x128w16}) {
    for (GemmSchedule schedule : {GemmSchedule::registers, GemmSchedule::splits}) {
      EXPECT_TRUE(test::same_bits(first.data(), p.run(0, M, tile, schedule).data(), first.size()))
          << "tile " << static_cast<int>(tile) << ", schedule " << static_cast<int>(schedule);
    }
  }
}

TEST(CudaGemm, AccurateAgainstFloat64) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 33, N = 200, K = 4096;
  // f32 inputs, rounded to bf16 for the GPU.
  const std::vector<float> xf = test::random_f32(static_cast<size_t>(M * K), 20);
  const std::vector<float> wf = test::random_f32(static_cast<size_t>(N * K), 21);
  std::vector<uint16_t> xb(xf.size()), wb(wf.size());
  for (size_t i = 0; i < xf.size(); ++i) xb[i] = f32_to_bf16(xf[i]);
  for (size_t i = 0; i < wf.size(); ++i) wb[i] = f32_to_bf16(wf[i]);
  Problem p(M, N, K, xb, wb);
  const std::vector<float> y = p.run(0, M);
  double d_same = 0, d_orig = 0, r_same = 0, r_orig = 0;
  for (int64_t m = 0; m < M; ++m) {
    const std::vector<double> ref = p.reference_row(m);  // on the bf16 inputs
    for (int64_t n = 0; n < N; ++n) {
      double orig = 0.0;  // on the original f32 inputs
      for (int64_t k = 0; k < K; ++k) orig += static_cast<double>(xf[m * K + k]) * wf[n * K + k];
      const double v = y[m * N + n];
      ASSERT_TRUE(std::isfinite(v));
      d_same += (v - ref[n]) * (v - ref[n]);
      r_same += ref[n] * ref[n];
      d_orig += (v - orig) * (v - orig);
      r_orig += orig * orig;
    }
  }
  const double err_same = std::sqrt(d_same / r_same), err_orig = std::sqrt(d_orig / r_orig);
  std::printf("relative error: %.3g vs float64 on the bf16 inputs, %.3g on the f32 inputs\n",
              err_same, err_orig);
  EXPECT_LT(err_same, 1e-5);  // f32 accumulation of exact bf16 products over K = 4096
  EXPECT_LT(err_orig, 1e-2);  // bf16 rounding of both inputs (about 2^-9 each)
}

// Row i alone (M = 1) == row i inside x[first .. first + M) for many M (every automatic tile)
// and offsets. With N = 8200, K = 2056 small M takes the split schedule and large M the register
// one, so the two schedules meet inside one comparison.
TEST(CudaGemm, RowAloneEqualsRowInBatch) {
  BX_REQUIRE_HOPPER();
  for (auto [N, K] :
       {std::pair<int64_t, int64_t>{96, 256}, {520, 1024}, {72, 4104}, {8200, 2056}}) {
    const int64_t rows = 1200;
    Problem p = random_problem(rows, N, K, static_cast<uint32_t>(N + K));
    std::vector<float> alone(static_cast<size_t>(rows * N));
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<float> y = p.run(r, 1);
      std::copy(y.begin(), y.end(), alone.begin() + r * N);
    }
    std::vector<int64_t> batch_sizes;
    for (int64_t M = 1; M <= 70; ++M) batch_sizes.push_back(M);
    for (int64_t M :
         {100, 127, 128, 129, 200, 255, 256, 257, 383, 500, 511, 512, 1024, 1025, 1183}) {
      batch_sizes.push_back(M);
    }
    for (int64_t M : batch_sizes) {
      const int64_t first = M % 17;  // the batch starts at a ragged row offset
      const std::vector<float> y = p.run(first, M);
      for (int64_t i = 0; i < M; ++i) {
        ASSERT_TRUE(rows_equal(y, i, alone, first + i, N))
            << "N=" << N << " K=" << K << " M=" << M << " row " << i;
      }
    }
  }
}

// The accumulate epilogue is one f32 add after the same chain: y0 + (x W^T).
TEST(CudaGemm, AccumulateAddsOnceAfterTheChain) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 40, N = 64, K = 512;
  Problem p = random_problem(M, N, K, 30);
  const std::vector<float> plain = p.run(0, M);
  const std::vector<float> y0 = test::random_f32(static_cast<size_t>(M * N), 31);
  p.dy.upload(y0.data(), y0.size() * sizeof(float));
  cuda::gemm_bf16(p.args(0, M, 0, K, true), nullptr);
  test::sync();
  const std::vector<float> acc = to_host<float>(p.dy, y0.size());
  for (size_t i = 0; i < acc.size(); ++i) ASSERT_EQ(acc[i], y0[i] + plain[i]) << i;
}

// Negative control: splitting K by M (as BLAS libraries do for small M) changes row bits.
TEST(CudaGemm, SplitKFollowingMDiffers) {
  BX_REQUIRE_HOPPER();
  const int64_t N = 256, K = 4096, rows = 64;
  Problem p = random_problem(rows, N, K, 40);
  const std::vector<float> alone = p.run(0, 1);
  int differing = 0;
  for (int64_t M : {1, 2, 3, 4, 5, 6, 64}) {
    const std::vector<float> y = p.run_split_by_m(0, M);
    if (!rows_equal(y, 0, alone, 0, N)) ++differing;
  }
  std::printf("split-K by M: row 0 differs from the invariant row in %d of 7 batch sizes\n",
              differing);
  EXPECT_GE(differing, 4);  // every M with M % 3 != 0
}

// Negative control: cuBLAS (fast mode) is not batch-invariant on a Qwen3-8B shape.
TEST(CudaGemm, CublasRowsFollowTheBatch) {
  BX_REQUIRE_HOPPER();
  const int64_t N = 4096, K = 4096, rows = 512;
  Problem p = random_problem(rows, N, K, 50);
  const std::vector<float> alone = p.run_cublas(0, 1);
  int differing = 0;
  char which[128] = "";
  for (int64_t M : {2, 8, 32, 128, 512}) {
    const std::vector<float> y = p.run_cublas(0, M);
    if (!rows_equal(y, 0, alone, 0, N)) {
      ++differing;
      const size_t used = std::strlen(which);
      std::snprintf(which + used, sizeof which - used, " %lld", static_cast<long long>(M));
    }
  }
  std::printf("cuBLAS: row 0 alone differs from row 0 in batches of M =%s\n", which);
  EXPECT_GE(differing, 1);
  // The invariant kernel on the same data agrees with itself at every M.
  const std::vector<float> ours = p.run(0, 1);
  for (int64_t M : {2, 8, 32, 128, 512}) {
    EXPECT_TRUE(rows_equal(p.run(0, M), 0, ours, 0, N)) << "M=" << M;
  }
}

TEST(CudaGemm, RejectsUnalignedK) {
  BX_REQUIRE_HOPPER();
  Problem p = random_problem(4, 8, 24, 60);
  GemmArgs a = p.args(0, 4, 0, 20, false);
  EXPECT_THROW(cuda::gemm_bf16(a, nullptr), Error);
}

}  // namespace
}  // namespace bx
