// Tests of kernels/cuda/gemm.h: y[M,N] = x[M,K] @ W[N,K]^T on the tensor cores (bf16 -> f32).
//
//   T1 exact      small integers give exactly the integer sums on every wgmma tile and on the
//                 mma.sync reference; on random inputs the reference and every tile give the
//                 same bits, and every tile the same bits on repeat.
//   T2 accurate   against float64 on the same bf16 inputs (f32 accumulation bound), and on the
//                 original f32 inputs (bf16 rounding bound), for the fast kernel and the reference.
//   T3 invariant  every tile shape gives the same bits as every other for M = 1..512 (ragged M,
//                 odd N and K); row i alone == row i inside batches of M = 1..1183 (ragged, at
//                 any offset); negative controls: a split of K that follows M, and cuBLAS, differ.
// Epilogues (gemm.h): output parts (q | k | v from concatenated W) give the bits of one GEMM per
// part; the gated (SwiGLU) epilogue gives the bits of two GEMMs and silu_mul (rows.h), on every
// tile and for every M, row alone == row in batch, and is accurate against float64; a gate whose
// K split follows M (the negative control) differs.
// Every run poisons y first (NaN bytes), so an unwritten element fails the comparisons.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rows.h"
#include "support/cuda_test_data.h"

namespace bx {
namespace {

using cuda::DeviceBuffer;
using cuda::GemmArgs;
using cuda::GemmTile;
using test::to_device;
using test::to_host;

// Device copies of x [rows, K] and W [N, K] (bf16) and room for y [rows, N] (f32).
struct Problem {
  int64_t rows, N, K;
  std::vector<uint16_t> x, w;
  DeviceBuffer dx, dw, dy;
  Problem(int64_t rows_, int64_t N_, int64_t K_, std::vector<uint16_t> x_, std::vector<uint16_t> w_)
      : rows(rows_),
        N(N_),
        K(K_),
        x(std::move(x_)),
        w(std::move(w_)),
        dx(to_device(x)),
        dw(to_device(w)),
        dy(static_cast<size_t>(rows * N) * sizeof(float)) {}

  // y = x[first .. first + M) @ W^T; returns y [M, N].
  std::vector<float> run(int64_t first, int64_t M, GemmTile tile = GemmTile::automatic) {
    test::poison(dy);
    cuda::gemm_bf16(args(first, M, 0, K, false), nullptr, tile);
    test::sync();
    return to_host<float>(dy, static_cast<size_t>(M * N));
  }
  std::vector<float> run_reference(int64_t first, int64_t M) {
    test::poison(dy);
    cuda::gemm_bf16_reference(args(first, M, 0, K, false), nullptr);
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

TEST(CudaGemm, SmallIntegersAreExactOnEveryTile) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 70, N = 136, K = 2056;  // ragged in every tile dimension
  Problem p(M, N, K, test::random_int_bf16(static_cast<size_t>(M * K), 1, -4, 4),
            test::random_int_bf16(static_cast<size_t>(N * K), 2, -4, 4));
  std::vector<std::vector<double>> ref;
  for (int64_t m = 0; m < M; ++m) ref.push_back(p.reference_row(m));
  auto expect_exact = [&](const std::vector<float>& y, const char* what) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        ASSERT_EQ(static_cast<double>(y[m * N + n]), ref[m][n]) << what << " m=" << m << " n=" << n;
      }
    }
  };
  for (GemmTile tile : cuda::kGemmTiles)
    expect_exact(p.run(0, M, tile), cuda::gemm_tile_name(tile));
  expect_exact(p.run_reference(0, M), "reference");
}

TEST(CudaGemm, SameBitsOnRepeat) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 200, N = 328, K = 1032;
  Problem p = random_problem(M, N, K, 10);
  for (GemmTile tile : cuda::kGemmTiles) {
    const std::vector<float> first = p.run(0, M, tile);
    EXPECT_TRUE(test::same_bits(first.data(), p.run(0, M, tile).data(), first.size()))
        << cuda::gemm_tile_name(tile);
  }
}

// T3 across tiles: for each M, every tile's y equals the first tile's, bit for bit (M at ragged
// row offsets; N and K not multiples of the tiles). Together with RowAloneEqualsRowInBatch this
// makes a row's bits independent of the tile and of the batch.
TEST(CudaGemm, EveryTileGivesTheSameBits) {
  BX_REQUIRE_HOPPER();
  for (auto [N, K] : {std::pair<int64_t, int64_t>{200, 1032}, {1000, 4096}, {72, 136}}) {
    const int64_t rows = 520;
    Problem p = random_problem(rows, N, K, static_cast<uint32_t>(3 * N + K));
    // Every M from 1 to 512 on the first shape; on the others 1..20 and the tile boundaries.
    std::vector<int64_t> batch_sizes;
    for (int64_t M = 1; M <= (N == 200 ? 512 : 20); ++M) batch_sizes.push_back(M);
    if (N != 200) {
      for (int64_t M :
           {31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 191, 255, 256, 257, 383, 511, 512}) {
        batch_sizes.push_back(M);
      }
    }
    for (int64_t M : batch_sizes) {
      const int64_t first = M % 7;
      const std::vector<float> base = p.run(first, M, cuda::kGemmTiles[0]);
      for (GemmTile tile : cuda::kGemmTiles) {
        ASSERT_TRUE(test::same_bits(base.data(), p.run(first, M, tile).data(), base.size()))
            << "N=" << N << " K=" << K << " M=" << M << " tile " << cuda::gemm_tile_name(tile)
            << " vs " << cuda::gemm_tile_name(cuda::kGemmTiles[0]);
      }
    }
  }
}

// The mma.sync reference against the wgmma kernel on random data: the same chain of k16 slices
// on another instruction gives the same bits (gemm.h), for every tile.
TEST(CudaGemm, ReferenceGivesTheSameBits) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 130, N = 520, K = 4096;
  Problem p = random_problem(M, N, K, 70);
  const std::vector<float> fast = p.run(0, M);
  const std::vector<float> ref = p.run_reference(0, M);
  size_t same = 0;
  double d = 0, r = 0;
  for (size_t i = 0; i < fast.size(); ++i) {
    same += std::memcmp(&fast[i], &ref[i], sizeof(float)) == 0 ? 1 : 0;
    d += (static_cast<double>(fast[i]) - ref[i]) * (static_cast<double>(fast[i]) - ref[i]);
    r += static_cast<double>(ref[i]) * ref[i];
  }
  std::printf("reference: %zu of %zu elements bitwise equal to the wgmma kernel, rel diff %.2e\n",
              same, fast.size(), std::sqrt(d / r));
  EXPECT_EQ(same, fast.size());
  for (GemmTile tile : cuda::kGemmTiles) {
    EXPECT_TRUE(test::same_bits(ref.data(), p.run(0, M, tile).data(), ref.size()))
        << cuda::gemm_tile_name(tile);
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
  for (bool reference : {false, true}) {
    const std::vector<float> y = reference ? p.run_reference(0, M) : p.run(0, M);
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
    std::printf("%s relative error: %.3g vs float64 on the bf16 inputs, %.3g on the f32 inputs\n",
                reference ? "reference" : "wgmma", err_same, err_orig);
    EXPECT_LT(err_same, 1e-5);  // f32 accumulation of exact bf16 products over K = 4096
    EXPECT_LT(err_orig, 1e-2);  // bf16 rounding of both inputs (about 2^-9 each)
  }
}

// Row i alone (M = 1) == row i inside x[first .. first + M) for many M (every automatic tile)
// and offsets. N = 20000 takes the wide-N tiles at small M.
TEST(CudaGemm, RowAloneEqualsRowInBatch) {
  BX_REQUIRE_HOPPER();
  for (auto [N, K] :
       {std::pair<int64_t, int64_t>{96, 256}, {520, 1024}, {72, 4104}, {20000, 264}}) {
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

// q | k | v: one GEMM over W = [Wq; Wk; Wv] with the output split into three matrices (their own
// strides) gives exactly the bits of three GEMMs, on every tile and for many M. The contract makes
// each element depend on x[m], W[n] and K only; this shows it for the parts epilogue.
TEST(CudaGemm, OutputPartsGiveTheBitsOfOneGemmPerPart) {
  BX_REQUIRE_HOPPER();
  for (auto [nq, nk, K] :
       {std::tuple<int64_t, int64_t, int64_t>{64, 32, 64}, {200, 40, 1032}, {512, 128, 2048}}) {
    const int64_t N = nq + 2 * nk, rows = 300;
    Problem p = random_problem(rows, N, K, static_cast<uint32_t>(N + K));
    const int64_t widths[3] = {nq, nk, nk}, firsts[3] = {0, nq, nq + nk};
    const int64_t strides[3] = {nq + 8, nk, nk + 2};  // padded, dense, padded rows
    std::vector<DeviceBuffer> outs;
    for (int i = 0; i < 3; ++i) outs.emplace_back(static_cast<size_t>(rows * strides[i]) * 4);
    for (int64_t M : {1, 2, 7, 33, 64, 65, 128, 130, 257, 300}) {
      const int64_t first = M % 5;
      // Separately: part i = x @ W[firsts[i] .. + widths[i])^T, y dense [M, widths[i]].
      std::vector<std::vector<float>> separate;
      for (int i = 0; i < 3; ++i) {
        GemmArgs a = p.args(first, M, 0, K, false);
        a.w = p.dw.get<uint16_t>() + firsts[i] * K;
        a.N = widths[i];
        a.y_stride = widths[i];
        test::poison(p.dy);
        cuda::gemm_bf16(a, nullptr);
        test::sync();
        separate.push_back(to_host<float>(p.dy, static_cast<size_t>(M * widths[i])));
      }
      for (GemmTile tile : cuda::kGemmTiles) {
        GemmArgs a = p.args(first, M, 0, K, false);
        a.y = outs[0].get<float>();
        a.y_stride = strides[0];
        for (int i = 1; i < 3; ++i) {
          a.parts[a.n_parts++] = cuda::GemmOutputPart{firsts[i], outs[i].get<float>(), strides[i]};
        }
        for (DeviceBuffer& o : outs) test::poison(o);
        cuda::gemm_bf16(a, nullptr, tile);
        test::sync();
        for (int i = 0; i < 3; ++i) {
          const std::vector<float> got =
              to_host<float>(outs[i], static_cast<size_t>(M * strides[i]));
          for (int64_t m = 0; m < M; ++m) {
            ASSERT_TRUE(test::same_bits(got.data() + m * strides[i],
                                        separate[i].data() + m * widths[i],
                                        static_cast<size_t>(widths[i])))
                << "N=" << N << " K=" << K << " M=" << M << " part " << i << " row " << m
                << " tile " << cuda::gemm_tile_name(tile);
          }
        }
      }
    }
  }
}

// Gate and up weights [F, K] and x [rows, K]: the gated GEMM against its unfused composition.
struct GatedProblem {
  int64_t rows, F, K;
  std::vector<uint16_t> x, gate, up;
  DeviceBuffer dx, dgate, dup, dy, dg, du;
  GatedProblem(int64_t rows_, int64_t F_, int64_t K_, uint32_t seed)
      : rows(rows_),
        F(F_),
        K(K_),
        x(test::random_bf16(static_cast<size_t>(rows * K), seed, -2.0f, 2.0f)),
        gate(test::random_bf16(static_cast<size_t>(F * K), seed + 1, -0.1f, 0.1f)),
        up(test::random_bf16(static_cast<size_t>(F * K), seed + 2, -0.1f, 0.1f)),
        dx(to_device(x)),
        dgate(to_device(gate)),
        dup(to_device(up)),
        dy(static_cast<size_t>(rows * F) * 4),
        dg(static_cast<size_t>(rows * F) * 4),
        du(static_cast<size_t>(rows * F) * 4) {}
  GemmArgs args(int64_t first, int64_t M, const uint16_t* w, float* y) const {
    GemmArgs a;
    a.x = dx.get<uint16_t>() + first * K;
    a.x_stride = K;
    a.w = w;
    a.w_stride = K;
    a.y = y;
    a.y_stride = F;
    a.M = M;
    a.N = F;
    a.K = K;
    return a;
  }
  // y = silu(x Wg^T) * (x Wu^T) in one GEMM.
  std::vector<float> fused(int64_t first, int64_t M, GemmTile tile = GemmTile::automatic) {
    GemmArgs a = args(first, M, dgate.get<uint16_t>(), dy.get<float>());
    a.w_up = dup.get<uint16_t>();
    test::poison(dy);
    cuda::gemm_bf16(a, nullptr, tile);
    test::sync();
    return to_host<float>(dy, static_cast<size_t>(M * F));
  }
  // The same as bf16 [M, Fp = round_up(F, 8)] (y_bf16), poisoned first.
  std::vector<uint16_t> fused_bf16(int64_t first, int64_t M, GemmTile tile) {
    const int64_t Fp = (F + 7) / 8 * 8;
    DeviceBuffer out(static_cast<size_t>(M * Fp) * 2);
    test::poison(out);
    GemmArgs a = args(first, M, dgate.get<uint16_t>(), nullptr);
    a.w_up = dup.get<uint16_t>();
    a.y_bf16 = out.get<uint16_t>();
    a.y_stride = Fp;
    cuda::gemm_bf16(a, nullptr, tile);
    test::sync();
    return to_host<uint16_t>(out, static_cast<size_t>(M * Fp));
  }
  // The unfused ops: g = x Wg^T, u = x Wu^T (split_gate: g's K in 1 + M % 3 parts, the negative
  // control), then silu_mul.
  std::vector<float> unfused(int64_t first, int64_t M, bool split_gate = false) {
    test::poison(dg);
    test::poison(du);
    if (split_gate) {
      const int64_t parts = 1 + M % 3, part = (K / parts + 15) / 16 * 16;
      for (int64_t k0 = 0; k0 < K; k0 += part) {
        GemmArgs a = args(first, M, dgate.get<uint16_t>() + k0, dg.get<float>());
        a.x += k0;
        a.K = std::min(part, K - k0);
        a.accumulate = k0 > 0;
        cuda::gemm_bf16(a, nullptr);
      }
    } else {
      cuda::gemm_bf16(args(first, M, dgate.get<uint16_t>(), dg.get<float>()), nullptr);
    }
    cuda::gemm_bf16(args(first, M, dup.get<uint16_t>(), du.get<float>()), nullptr);
    cuda::silu_mul(dg.get<float>(), F, du.get<float>(), F, dg.get<float>(), F, M, F, nullptr);
    test::sync();
    return to_host<float>(dg, static_cast<size_t>(M * F));
  }
};

TEST(CudaGemm, GatedGivesTheBitsOfTwoGemmsAndSiluMul) {
  BX_REQUIRE_HOPPER();
  for (auto [F, K] : {std::pair<int64_t, int64_t>{200, 1032}, {1000, 512}, {12, 64}}) {
    GatedProblem p(300, F, K, static_cast<uint32_t>(F + 7 * K));
    for (int64_t M : {1, 3, 16, 33, 64, 65, 127, 128, 129, 256, 300}) {
      const int64_t first = (M * 3) % 7 % (301 - M);
      const std::vector<float> expected = p.unfused(first, M);
      for (GemmTile tile : cuda::kGemmTiles) {
        ASSERT_TRUE(
            test::same_bits(expected.data(), p.fused(first, M, tile).data(), expected.size()))
            << "F=" << F << " K=" << K << " M=" << M << " tile " << cuda::gemm_tile_name(tile);
      }
      ASSERT_TRUE(test::same_bits(expected.data(), p.fused(first, M).data(), expected.size()))
          << "automatic tile, M=" << M;
    }
  }
}

// bf16 outputs (the down projection's input): the bits to_bf16_padded gives the f32 outputs,
// zero padding included, on every tile (F = 172 and 12 need padding to 176 and 16).
TEST(CudaGemm, GatedBf16OutputIsTheConvertedF32Output) {
  BX_REQUIRE_HOPPER();
  for (auto [F, K] : {std::pair<int64_t, int64_t>{172, 520}, {12, 64}, {1000, 264}}) {
    GatedProblem p(200, F, K, static_cast<uint32_t>(5 * F + K));
    const int64_t Fp = (F + 7) / 8 * 8;
    for (int64_t M : {1, 5, 64, 65, 130, 200}) {
      const int64_t first = (200 - M) / 2;
      p.fused(first, M);  // f32 outputs in p.dy
      DeviceBuffer converted(static_cast<size_t>(M * Fp) * 2);
      test::poison(converted);
      cuda::to_bf16_padded(p.dy.get<float>(), F, converted.get<uint16_t>(), Fp, M, F, Fp, nullptr);
      test::sync();
      const std::vector<uint16_t> expected =
          to_host<uint16_t>(converted, static_cast<size_t>(M * Fp));
      for (GemmTile tile : cuda::kGemmTiles) {
        const std::vector<uint16_t> got = p.fused_bf16(first, M, tile);
        ASSERT_EQ(std::memcmp(got.data(), expected.data(), got.size() * 2), 0)
            << "F=" << F << " M=" << M << " tile " << cuda::gemm_tile_name(tile);
      }
    }
  }
}

// T3 for the gated epilogue directly: row i alone == row i in a batch, every M to 70 and more.
TEST(CudaGemm, GatedRowAloneEqualsRowInBatch) {
  BX_REQUIRE_HOPPER();
  const int64_t rows = 600, F = 344, K = 264;
  GatedProblem p(rows, F, K, 90);
  std::vector<float> alone(static_cast<size_t>(rows * F));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> y = p.fused(r, 1);
    std::copy(y.begin(), y.end(), alone.begin() + r * F);
  }
  std::vector<int64_t> batch_sizes;
  for (int64_t M = 1; M <= 70; ++M) batch_sizes.push_back(M);
  for (int64_t M : {127, 128, 129, 255, 256, 257, 511, 512, 580}) batch_sizes.push_back(M);
  for (int64_t M : batch_sizes) {
    const int64_t first = M % 17;
    const std::vector<float> y = p.fused(first, M);
    for (int64_t i = 0; i < M; ++i) {
      ASSERT_TRUE(rows_equal(y, i, alone, first + i, F)) << "M=" << M << " row " << i;
    }
  }
}

// Negative control: the same comparison finds a gate whose K split follows M.
TEST(CudaGemm, GatedAgainstSplitKGateDiffers) {
  BX_REQUIRE_HOPPER();
  GatedProblem p(64, 256, 4096, 91);
  int differing = 0;
  for (int64_t M : {1, 2, 4, 5, 64}) {
    const std::vector<float> fused = p.fused(0, M);
    if (!test::same_bits(fused.data(), p.unfused(0, M, true).data(), fused.size())) ++differing;
  }
  std::printf("gated vs split-K gate: %d of 5 batch sizes differ\n", differing);
  EXPECT_GE(differing, 3);  // every M with M % 3 != 0
}

// T2: silu(g) * u against float64 on the same bf16 inputs. Each chain carries f32 accumulation
// error (about 1e-7 relative to sum |x w| over K = 4096); silu and the product add a few f32
// ulps. So the relative norm error stays far below bf16's 2^-9 = 2e-3, which is what the next
// GEMM's input rounding costs anyway.
TEST(CudaGemm, GatedAccurateAgainstFloat64) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 17, F = 300, K = 4096;
  GatedProblem p(M, F, K, 92);
  const std::vector<float> y = p.fused(0, M);
  double num = 0, den = 0, worst = 0;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < F; ++n) {
      double g = 0, u = 0, scale = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double xv = bf16_to_f32(p.x[m * K + k]);
        const double gw = bf16_to_f32(p.gate[n * K + k]), uw = bf16_to_f32(p.up[n * K + k]);
        g += xv * gw;
        u += xv * uw;
        scale += std::fabs(xv * gw) + std::fabs(xv * uw);
      }
      const double ref = g / (1.0 + std::exp(-g)) * u;
      const double v = y[m * F + n];
      ASSERT_TRUE(std::isfinite(v));
      num += (v - ref) * (v - ref);
      den += ref * ref;
      // Elementwise: the chains' error is bounded by K * 2^-24 * sum |x w| (f32 accumulation);
      // silu'(g) <= 1.1, so |d(silu(g) u)| <= 1.1 |u| dg + |silu(g)| du, with room for rounding.
      const double chain_err = static_cast<double>(K) * 0x1p-24 * scale;
      const double bound = (1.1 * std::fabs(u) + std::fabs(g) + chain_err) * chain_err +
                           8 * 0x1p-24 * std::fabs(ref) + 1e-30;
      worst = std::max(worst, std::fabs(v - ref) / bound);
    }
  }
  const double rel = std::sqrt(num / den);
  std::printf(
      "gated epilogue: relative norm error %.3g vs float64; worst element at %.3g of its "
      "bound\n",
      rel, worst);
  EXPECT_LT(rel, 1e-5);
  EXPECT_LE(worst, 1.0);
}

TEST(CudaGemm, RejectsBadPartsAndGatedArgs) {
  BX_REQUIRE_HOPPER();
  Problem p = random_problem(4, 64, 64, 93);
  DeviceBuffer other(4 * 64 * 4);
  GemmArgs a = p.args(0, 4, 0, 64, false);
  a.parts[a.n_parts++] = cuda::GemmOutputPart{20, other.get<float>(), 44};  // not a multiple of 8
  EXPECT_THROW(cuda::gemm_bf16(a, nullptr), Error);
  a.parts[0].first_col = 64;  // not below N
  EXPECT_THROW(cuda::gemm_bf16(a, nullptr), Error);
  a.parts[0] = cuda::GemmOutputPart{32, nullptr, 32};  // no y
  EXPECT_THROW(cuda::gemm_bf16(a, nullptr), Error);
  a.parts[0] = cuda::GemmOutputPart{32, other.get<float>(), 32};
  EXPECT_THROW(cuda::gemm_bf16_reference(a, nullptr), Error);
  EXPECT_THROW(cuda::gemm_bf16_cublas(a, nullptr), Error);
  GemmArgs g = p.args(0, 4, 0, 64, true);
  g.w_up = p.dw.get<uint16_t>();
  EXPECT_THROW(cuda::gemm_bf16(g, nullptr), Error);  // gated with accumulate
  g.accumulate = false;
  EXPECT_THROW(cuda::gemm_bf16_reference(g, nullptr), Error);
  g.w_up = p.dw.get<uint16_t>() + 4;  // 8-byte aligned only
  EXPECT_THROW(cuda::gemm_bf16(g, nullptr), Error);
  GemmArgs b = p.args(0, 4, 0, 64, false);
  b.y_bf16 = reinterpret_cast<uint16_t*>(other.get<float>());
  EXPECT_THROW(cuda::gemm_bf16(b, nullptr), Error);  // bf16 outputs without w_up
  b.w_up = p.dw.get<uint16_t>();
  b.y_stride = 60;  // not a multiple of 8
  EXPECT_THROW(cuda::gemm_bf16(b, nullptr), Error);
}

TEST(CudaGemm, RejectsWhatTmaCannotLoad) {
  BX_REQUIRE_HOPPER();
  Problem p = random_problem(4, 8, 24, 60);
  GemmArgs a = p.args(0, 4, 0, 20, false);  // K % 8 != 0
  EXPECT_THROW(cuda::gemm_bf16(a, nullptr), Error);
  a = p.args(0, 4, 0, 24, false);
  a.x_stride = 28;  // row pitch not a multiple of 16 bytes
  EXPECT_THROW(cuda::gemm_bf16(a, nullptr), Error);
  a = p.args(0, 4, 0, 16, false);
  a.w = a.w + 4;  // 8-byte aligned only
  EXPECT_THROW(cuda::gemm_bf16(a, nullptr), Error);
}

TEST(CudaGemm, ZeroKWritesZeros) {
  BX_REQUIRE_HOPPER();
  Problem p = random_problem(3, 40, 8, 61);
  test::poison(p.dy);
  cuda::gemm_bf16(p.args(0, 3, 0, 0, false), nullptr);
  test::sync();
  for (float v : to_host<float>(p.dy, 3 * 40)) ASSERT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace bx
