// Tests of the int8-activation matmul for block-quantized weights (kernel version cpu-k2:
// kernels/matmul.h QuantDot::int8_activations, the arithmetic in kernels/cpu/int8_dot_isa.h).
//
//   T1 exact        every path (scalar, AVX2; AVX-512 CPUs run the AVX2 kernel), every thread
//                   count and M gives the bits of this file's own transcription of the contract
//                   (contract_matmul: int64 integer sums, std::fma in block order), for Q8_0,
//                   Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K, with N not a multiple of the 8-row
//                   tile, strided operands, zero and non-finite activation blocks.
//   T2 accurate     against the f32 matmul of the load-time dequantized weights: relative error
//                   (norm of the difference over the norm of the result) below 2e-2.
//   T3 invariant    row i in a batch of M == row i alone (memcmp) for many M and thread counts;
//                   negative controls: the same sums in reverse block order, and split_k_by_m,
//                   do differ.
//   Unchanged       with the default QuantDot (cpu-k1) the bits are still the dequantized f32
//                   matmul's; formats without an int8 kernel (Q2_K, ...) keep cpu-k1's bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu_backend.h"
#include "core/half.h"
#include "kernels/matmul.h"
#include "kernels/q8_0_tiles.h"
#include "kernels/quant.h"
#include "support/kernel_test_data.h"

namespace bx {
namespace {

using test::pool;
using test::same_bits;
using test::supported_isas;

constexpr DType kInt8Formats[] = {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0,
                                  DType::q5_1, DType::q4_k, DType::q6_k};

// Random blocks of format t: random bytes, with each f16 scale replaced by a moderate value
// (d in [2^-10, 2^-4), the min or dmin smaller), as in a real model.
std::vector<uint8_t> random_blocks(DType t, int64_t n_blocks, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto bytes = static_cast<size_t>(quant::block_bytes(t));
  std::vector<uint8_t> blocks(static_cast<size_t>(n_blocks) * bytes);
  for (uint8_t& b : blocks) b = static_cast<uint8_t>(rng());
  std::vector<size_t> offsets = {0};
  if (t == DType::q4_1 || t == DType::q5_1 || t == DType::q4_k) offsets = {0, 2};
  if (t == DType::q6_k) offsets = {208};
  for (int64_t b = 0; b < n_blocks; ++b) {
    for (size_t s = 0; s < offsets.size(); ++s) {
      const auto exponent = static_cast<uint32_t>(5 + rng() % 6);
      auto h = static_cast<uint16_t>((exponent << 10) | (rng() & 0x3ff));
      if (s == 1) h = static_cast<uint16_t>(h - (3u << 10));
      std::memcpy(blocks.data() + static_cast<size_t>(b) * bytes + offsets[s], &h, 2);
    }
  }
  return blocks;
}

MatmulArgs args_for(const float* x, const void* w, DType dtype, float* y, int64_t M, int64_t N,
                    int64_t K, QuantDot dot = QuantDot::int8_activations) {
  MatmulArgs a;
  a.x = x;
  a.w = w;
  a.w_dtype = dtype;
  a.y = y;
  a.M = M;
  a.N = N;
  a.K = K;
  a.quant_dot = dot;
  return a;
}

// ---------------------------------------------------------------------------------------------
// The contract, transcribed from kernels/cpu/int8_dot_isa.h independently of the kernels.

float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// One weight block: codes c[e] (zero point removed), sub-block scales (one per `sub` elements)
// and Q4_K's mins; A = d, B = the min (Q4_1/Q5_1) or dmin (Q4_K).
struct WeightBlock {
  std::vector<int> c;
  int sub = 32;
  std::vector<int> scale, min;
  float A = 0, B = 0;
};

WeightBlock decode(DType t, const uint8_t* b) {
  WeightBlock w;
  const auto nib = [](const uint8_t* qs, int e) { return (qs[e % 16] >> (4 * (e / 16))) & 15; };
  switch (t) {
    case DType::q8_0:
      w.A = f16(b);
      for (int e = 0; e < 32; ++e) w.c.push_back(static_cast<int8_t>(b[2 + e]));
      break;
    case DType::q4_0:
    case DType::q4_1: {
      const bool min = t == DType::q4_1;
      w.A = f16(b);
      if (min) w.B = f16(b + 2);
      for (int e = 0; e < 32; ++e) w.c.push_back(nib(b + (min ? 4 : 2), e) - (min ? 0 : 8));
      break;
    }
    case DType::q5_0:
    case DType::q5_1: {
      const bool min = t == DType::q5_1;
      w.A = f16(b);
      if (min) w.B = f16(b + 2);
      const uint8_t* qh = b + (min ? 4 : 2);
      uint32_t h;
      std::memcpy(&h, qh, 4);
      for (int e = 0; e < 32; ++e) {
        w.c.push_back((nib(qh + 4, e) | static_cast<int>((h >> e) & 1) << 4) - (min ? 0 : 16));
      }
      break;
    }
    case DType::q4_k: {
      w.A = f16(b);
      w.B = f16(b + 2);
      const uint8_t* s = b + 4;
      for (int j = 0; j < 8; ++j) {
        w.scale.push_back(j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4);
        w.min.push_back(j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4);
      }
      for (int e = 0; e < 256; ++e)
        w.c.push_back((b[16 + 32 * (e / 64) + e % 32] >> (4 * (e / 32 % 2))) & 15);
      break;
    }
    case DType::q6_k: {
      w.A = f16(b + 208);
      w.sub = 16;
      for (int i = 0; i < 16; ++i) w.scale.push_back(static_cast<int8_t>(b[192 + i]));
      for (int e = 0; e < 256; ++e) {
        const int low = (b[64 * (e / 128) + e % 64] >> (4 * (e % 128 / 64))) & 15;
        const int high = (b[128 + 32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
        w.c.push_back((low | high << 4) - 32);
      }
      break;
    }
    default:
      ADD_FAILURE() << "no int8 contract for " << dtype_name(t);
  }
  return w;
}

// y[m, n] by the contract; reverse_blocks = the negative control (blocks summed last to first).
std::vector<float> contract_matmul(DType t, const std::vector<uint8_t>& blocks, const float* x,
                                   int64_t x_stride, int64_t M, int64_t N, int64_t K,
                                   bool reverse_blocks = false) {
  const int64_t E = quant::block_elements(t);
  const int64_t bytes = quant::block_bytes(t);
  std::vector<float> y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m) {
    // step 1
    std::vector<int> q(static_cast<size_t>(K));
    std::vector<float> dx(static_cast<size_t>(K / E));
    for (int64_t b = 0; b < K / E; ++b) {
      double amax = 0;
      bool finite = true;
      for (int64_t e = 0; e < E; ++e) {
        const float v = x[m * x_stride + b * E + e];
        finite = finite && std::isfinite(v);
        amax = std::max(amax, std::fabs(static_cast<double>(v)));
      }
      const auto a = static_cast<float>(amax);
      dx[b] = !finite ? NAN : a == 0 ? 0.0f : a / 127.0f;
      for (int64_t e = 0; e < E; ++e) {
        const float v = x[m * x_stride + b * E + e];
        q[b * E + e] = (!finite || a == 0) ? 0 : static_cast<int>(std::nearbyint(v * (127.0f / a)));
      }
    }
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.0f;
      for (int64_t i = 0; i < K / E; ++i) {
        const int64_t b = reverse_blocks ? K / E - 1 - i : i;
        const WeightBlock w = decode(t, blocks.data() + (n * (K / E) + b) * bytes);
        int64_t S = 0, Z = 0, X = 0;
        for (int64_t e = 0; e < E; ++e) {
          const int64_t s = w.scale.empty() ? 1 : w.scale[static_cast<size_t>(e / w.sub)];
          S += s * w.c[static_cast<size_t>(e)] * q[b * E + e];
          if (!w.min.empty()) Z += w.min[static_cast<size_t>(e / 32)] * q[b * E + e];
          X += q[b * E + e];
        }
        acc = std::fma(w.A * dx[b], static_cast<float>(S), acc);
        if (t == DType::q4_1 || t == DType::q5_1) {
          acc = std::fma(w.B * dx[b], static_cast<float>(X), acc);
        }
        if (t == DType::q4_k) acc = std::fma(-(w.B * dx[b]), static_cast<float>(Z), acc);
      }
      y[m * N + n] = acc;
    }
  }
  return y;
}

std::vector<float> load_time_dequant(DType t, const std::vector<uint8_t>& blocks, int64_t N,
                                     int64_t K) {
  std::vector<float> out(static_cast<size_t>(N * K));
  quant::dequantize_row(t, blocks.data(), N * K, out.data());
  return out;
}

int64_t blocks_for(DType t, int64_t N, int64_t K) {
  return N * K / quant::block_elements(t);
}

// ---------------------------------------------------------------------------------------------

// T1: every path, thread count and M gives the contract's bits.
TEST(Int8Dot, EveryPathThreadCountAndMGivesTheContractsBits) {
  for (DType t : kInt8Formats) {
    const int64_t E = quant::block_elements(t);
    for (const auto& [N, blocks_per_row] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 1}, {7, 2}, {8, 3}, {21, 5}, {50, E == 32 ? 18 : 6}}) {
      const int64_t K = blocks_per_row * E;
      SCOPED_TRACE(std::string(dtype_name(t)) + " N=" + std::to_string(N) +
                   " K=" + std::to_string(K));
      const std::vector<uint8_t> w = random_blocks(t, blocks_for(t, N, K), 7);
      std::vector<float> x = test::random_floats(static_cast<size_t>(19 * K), 3, -2.0f, 2.0f);
      for (int64_t e = 0; e < std::min<int64_t>(K, 32); ++e) x[static_cast<size_t>(K + e)] = 0.0f;
      const std::vector<float> want = contract_matmul(t, w, x.data(), K, 19, N, K);
      for (int64_t M : {1, 2, 3, 8, 17, 19}) {
        std::vector<float> ref(static_cast<size_t>(M * N));
        matmul_reference(args_for(x.data(), w.data(), t, ref.data(), M, N, K));
        ASSERT_TRUE(same_bits(ref.data(), want.data(), M * N)) << "matmul_reference M=" << M;
        for (Isa isa : supported_isas()) {
          for (int threads : {1, 2, 3}) {
            std::vector<float> got(static_cast<size_t>(M * N), -1.0f);
            matmul(args_for(x.data(), w.data(), t, got.data(), M, N, K), pool(threads), isa);
            ASSERT_TRUE(same_bits(got.data(), want.data(), M * N))
                << "M=" << M << " " << isa_name(isa) << " threads=" << threads;
          }
        }
      }
    }
  }
}

// Strided x, y and W: only K elements per row count, and y's padding is untouched.
TEST(Int8Dot, StridedOperands) {
  for (DType t : kInt8Formats) {
    const int64_t E = quant::block_elements(t);
    const int64_t M = 9, N = 13, K = 2 * E, ws = K + E, xs = K + 5, ys = N + 3;
    const std::vector<uint8_t> w = random_blocks(t, blocks_for(t, N, ws), 5);
    std::vector<uint8_t> dense;  // the same rows without the stride's extra block
    const int64_t row_bytes = quant::bytes_for(t, K), stride_bytes = quant::bytes_for(t, ws);
    for (int64_t n = 0; n < N; ++n) {
      dense.insert(dense.end(), w.begin() + n * stride_bytes,
                   w.begin() + n * stride_bytes + row_bytes);
    }
    const std::vector<float> x = test::random_floats(static_cast<size_t>(M * xs), 9);
    const std::vector<float> want = contract_matmul(t, dense, x.data(), xs, M, N, K);
    for (Isa isa : supported_isas()) {
      MatmulArgs a = args_for(x.data(), w.data(), t, nullptr, M, N, K);
      a.x_stride = xs;
      a.w_stride = ws;
      a.y_stride = ys;
      std::vector<float> got(static_cast<size_t>(M * ys), 7.0f);
      a.y = got.data();
      matmul(a, pool(2), isa);
      for (int64_t m = 0; m < M; ++m) {
        ASSERT_TRUE(same_bits(got.data() + m * ys, want.data() + m * N, N))
            << dtype_name(t) << " row " << m << " " << isa_name(isa);
        for (int64_t n = N; n < ys; ++n) ASSERT_EQ(got[static_cast<size_t>(m * ys + n)], 7.0f);
      }
    }
  }
}

// A block holding an infinity or a NaN gives NaN outputs on every path (no crash, no garbage).
TEST(Int8Dot, NonFiniteActivationsGiveNaN) {
  for (DType t : kInt8Formats) {
    const int64_t K = 2 * quant::block_elements(t), N = 9;
    const std::vector<uint8_t> w = random_blocks(t, blocks_for(t, N, K), 2);
    std::vector<float> x = test::random_floats(static_cast<size_t>(2 * K), 4);
    x[3] = INFINITY;
    x[static_cast<size_t>(K + K - 1)] = NAN;
    for (Isa isa : supported_isas()) {
      std::vector<float> y(static_cast<size_t>(2 * N));
      matmul(args_for(x.data(), w.data(), t, y.data(), 2, N, K), pool(1), isa);
      for (float v : y) EXPECT_TRUE(std::isnan(v)) << dtype_name(t) << " " << isa_name(isa);
    }
  }
}

// T2: close to the dequantized f32 matmul (which cpu-k1 reproduces bit for bit), but not it.
TEST(Int8Dot, CloseToTheDequantizedF32Matmul) {
  for (DType t : kInt8Formats) {
    const int64_t E = quant::block_elements(t);
    const int64_t M = 4, N = 64, K = (E == 32 ? 18 : 6) * E;
    const std::vector<uint8_t> w = random_blocks(t, blocks_for(t, N, K), 31);
    const std::vector<float> wf = load_time_dequant(t, w, N, K);
    const std::vector<float> x = test::random_floats(static_cast<size_t>(M * K), 37);
    std::vector<float> exact(static_cast<size_t>(M * N)), k1(exact.size()), k2(exact.size());
    matmul(args_for(x.data(), wf.data(), DType::f32, exact.data(), M, N, K), pool(1), Isa::scalar);
    matmul(args_for(x.data(), w.data(), t, k1.data(), M, N, K, QuantDot::dequantized_f32), pool(2));
    matmul(args_for(x.data(), w.data(), t, k2.data(), M, N, K), pool(2));
    EXPECT_TRUE(same_bits(k1.data(), exact.data(), M * N)) << dtype_name(t) << ": cpu-k1 changed";
    double diff = 0, norm = 0;
    for (size_t i = 0; i < exact.size(); ++i) {
      diff += (double{k2[i]} - exact[i]) * (double{k2[i]} - exact[i]);
      norm += double{exact[i]} * exact[i];
    }
    const double rel = std::sqrt(diff / norm);
    EXPECT_LT(rel, 2e-2) << dtype_name(t);
    EXPECT_GT(rel, 0.0) << dtype_name(t) << ": int8 activations should change the bits";
  }
}

// Formats without an int8 kernel keep cpu-k1's bits under int8_activations.
TEST(Int8Dot, OtherFormatsKeepTheF32Arithmetic) {
  for (DType t : {DType::q2_k, DType::q3_k, DType::q5_k, DType::iq4_nl, DType::iq4_xs}) {
    const int64_t E = quant::block_elements(t), N = 10, K = 2 * E, M = 3;
    std::vector<uint8_t> w(static_cast<size_t>(quant::bytes_for(t, N * K)));
    std::mt19937 rng(5);
    for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
    // keep the f16 scales finite: every byte pattern below 0x7c00 is finite
    for (size_t i = 1; i < w.size(); i += 2) w[i] &= 0x3b;
    const std::vector<float> x = test::random_floats(static_cast<size_t>(M * K), 6);
    std::vector<float> k1(static_cast<size_t>(M * N)), k2(k1.size());
    matmul(args_for(x.data(), w.data(), t, k1.data(), M, N, K, QuantDot::dequantized_f32), pool(1));
    matmul(args_for(x.data(), w.data(), t, k2.data(), M, N, K), pool(1));
    EXPECT_TRUE(same_bits(k1.data(), k2.data(), M * N)) << dtype_name(t);
  }
}

// T3: row i alone == row i in a batch; the negative controls differ.
TEST(Int8Dot, RowAloneEqualsRowInBatchAndControlsFail) {
  const int64_t N = 96;
  for (DType t : kInt8Formats) {
    const int64_t K = quant::block_elements(t) == 32 ? 576 : 1536;
    const std::vector<uint8_t> w = random_blocks(t, blocks_for(t, N, K), 13);
    const std::vector<float> x = test::random_floats(static_cast<size_t>(40 * K), 17);
    bool split_differs = false;
    for (Isa isa : supported_isas()) {
      for (int64_t M : {2, 3, 16, 40}) {
        std::vector<float> batch(static_cast<size_t>(M * N));
        matmul(args_for(x.data(), w.data(), t, batch.data(), M, N, K), pool(3), isa);
        for (int64_t i = 0; i < M; i += 7) {
          std::vector<float> alone(static_cast<size_t>(N));
          matmul(args_for(x.data() + i * K, w.data(), t, alone.data(), 1, N, K), pool(1), isa);
          ASSERT_TRUE(same_bits(alone.data(), batch.data() + i * N, N))
              << dtype_name(t) << " " << isa_name(isa) << " M=" << M << " row " << i;
        }
        MatmulArgs control = args_for(x.data(), w.data(), t, batch.data(), M, N, K);
        control.order = ReductionOrder::split_k_by_m;
        matmul(control, pool(2), isa);
        std::vector<float> alone(static_cast<size_t>(N));
        control = args_for(x.data(), w.data(), t, alone.data(), 1, N, K);
        control.order = ReductionOrder::split_k_by_m;
        matmul(control, pool(1), isa);
        split_differs |= !same_bits(alone.data(), batch.data(), N);
      }
    }
    EXPECT_TRUE(split_differs) << dtype_name(t) << ": the split-K control never differed";
    // The same integer sums added in reverse block order: other bits, so the exactness test
    // above can see an order change.
    const std::vector<float> forward = contract_matmul(t, w, x.data(), K, 2, N, K);
    const std::vector<float> reversed = contract_matmul(t, w, x.data(), K, 2, N, K, true);
    EXPECT_FALSE(same_bits(forward.data(), reversed.data(), 2 * N)) << dtype_name(t);
  }
}

// Q8_0 in tiles of 8 rows (kernels/q8_0_tiles.h): every path, thread count and M gives the
// contract's bits, as the rows layout does, and K slices (split_k_by_m) the rows layout's; a
// tiling with two rows swapped gives other bits, so the comparison can see a layout mistake.
TEST(Int8Dot, Q8_0TilesGiveTheRowLayoutsBits) {
  const DType t = DType::q8_0;
  for (const auto& [N, blocks_per_row] :
       std::vector<std::pair<int64_t, int64_t>>{{8, 1}, {48, 3}, {56, 18}, {96, 7}}) {
    const int64_t K = 32 * blocks_per_row, row_bytes = quant::bytes_for(t, K);
    SCOPED_TRACE("N=" + std::to_string(N) + " K=" + std::to_string(K));
    const std::vector<uint8_t> w = random_blocks(t, blocks_for(t, N, K), 23);
    std::vector<uint8_t> tiles(w.size());
    quant::q8_0_to_tiles(w.data(), N, K, tiles.data());
    std::vector<uint8_t> row(static_cast<size_t>(row_bytes));
    for (int64_t n = 0; n < N; ++n) {
      quant::q8_0_tiled_row(tiles.data(), K, n, K, row.data());
      ASSERT_EQ(std::memcmp(row.data(), w.data() + n * row_bytes, row.size()), 0) << "row " << n;
    }
    const std::vector<float> x = test::random_floats(static_cast<size_t>(19 * K), 29, -2.0f, 2.0f);
    const std::vector<float> want = contract_matmul(t, w, x.data(), K, 19, N, K);
    const auto tiled_args = [&](float* y, int64_t M) {
      MatmulArgs a = args_for(x.data(), tiles.data(), t, y, M, N, K);
      a.w_layout = WeightLayout::q8_0_tiles;
      return a;
    };
    for (int64_t M : {1, 2, 17, 19}) {
      std::vector<float> ref(static_cast<size_t>(M * N));
      matmul_reference(tiled_args(ref.data(), M));
      ASSERT_TRUE(same_bits(ref.data(), want.data(), M * N)) << "matmul_reference M=" << M;
      for (Isa isa : supported_isas()) {
        for (int threads : {1, 2, 3}) {
          std::vector<float> got(static_cast<size_t>(M * N), -1.0f);
          matmul(tiled_args(got.data(), M), pool(threads), isa);
          ASSERT_TRUE(same_bits(got.data(), want.data(), M * N))
              << "M=" << M << " " << isa_name(isa) << " threads=" << threads;
        }
        std::vector<float> split_rows(static_cast<size_t>(M * N)), split_tiles(split_rows.size());
        MatmulArgs rows_control = args_for(x.data(), w.data(), t, split_rows.data(), M, N, K);
        MatmulArgs tiles_control = tiled_args(split_tiles.data(), M);
        rows_control.order = tiles_control.order = ReductionOrder::split_k_by_m;
        matmul(rows_control, pool(2), isa);
        matmul(tiles_control, pool(2), isa);
        ASSERT_TRUE(same_bits(split_rows.data(), split_tiles.data(), M * N))
            << "split_k_by_m M=" << M << " " << isa_name(isa);
      }
    }
    std::vector<uint8_t> swapped = w;
    std::swap_ranges(swapped.begin(), swapped.begin() + row_bytes, swapped.begin() + row_bytes);
    quant::q8_0_to_tiles(swapped.data(), N, K, tiles.data());
    std::vector<float> got(static_cast<size_t>(2 * N));
    matmul(tiled_args(got.data(), 2), pool(1));
    EXPECT_FALSE(same_bits(got.data(), want.data(), 2 * N)) << "two rows swapped";
  }
}

TEST(Int8Dot, Q8_0TilesTakeQ8_0WithTheInt8ArithmeticAndWholeTiles) {
  const std::vector<uint8_t> w = random_blocks(DType::q8_0, 12 * 2, 31);
  const std::vector<float> x = test::random_floats(64, 37);
  std::vector<float> y(12);
  MatmulArgs a = args_for(x.data(), w.data(), DType::q8_0, y.data(), 1, 12, 64);
  a.w_layout = WeightLayout::q8_0_tiles;
  try {
    matmul(a, pool(1));
    FAIL() << "N = 12 was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("N a multiple of 8, got Q8_0 weights, N = 12"),
              std::string::npos)
        << e.what();
  }
  a.N = 8;
  a.quant_dot = QuantDot::dequantized_f32;
  EXPECT_THROW(matmul(a, pool(1)), Error);
  a.quant_dot = QuantDot::int8_activations;
  a.w_dtype = DType::q4_0;
  EXPECT_THROW(matmul(a, pool(1)), Error);
}

// The CPU backend tiles a cpu-k2 Q8_0 weight in place (prefer_gemm_layout); its gemm and embed
// then give the bits of an untiled copy. cpu-k1, other formats and partial tiles keep rows.
TEST(Int8Dot, BackendTilesQ8_0WeightsWithTheSameBits) {
  const int64_t V = 40, D = 96;
  const std::vector<uint8_t> w = random_blocks(DType::q8_0, V * D / 32, 41);
  CpuBackend tiled(2, QuantDot::int8_activations), plain(2, QuantDot::int8_activations);
  const Tensor wt = tiled.upload_blocks(w.data(), V, D, DType::q8_0);
  const Tensor wp = plain.upload_blocks(w.data(), V, D, DType::q8_0);
  ASSERT_TRUE(tiled.prefer_gemm_layout(wt));
  EXPECT_NE(std::memcmp(wt.data, w.data(), w.size()), 0) << "the bytes moved";
  const std::vector<float> x = test::random_floats(static_cast<size_t>(5 * D), 43);
  std::vector<float> y_tiled(static_cast<size_t>(5 * V)), y_plain(y_tiled.size());
  std::vector<float> e_tiled(static_cast<size_t>(3 * D)), e_plain(e_tiled.size());
  const std::vector<int32_t> tokens = {0, 17, 39};
  const std::vector<int32_t> positions = {0, 1, 2};
  for (auto [be, weight, y, e] : {std::tuple{&tiled, wt, &y_tiled, &e_tiled},
                                  std::tuple{&plain, wp, &y_plain, &e_plain}}) {
    const Tensor xt = be->upload_matrix(x.data(), 5, D, DType::f32);
    const Tensor yt = be->alloc(DType::f32, 5, V);
    be->gemm(GemmOp::projection(xt, weight, yt));
    be->copy_to_host(yt, y->data());
    ForwardBatch batch;
    batch.tokens = tokens;
    batch.positions = positions;
    be->begin_batch(batch);
    const Tensor et = be->alloc(DType::f32, 3, D);
    be->embed(weight, et);
    be->copy_to_host(et, e->data());
  }
  EXPECT_TRUE(same_bits(y_tiled.data(), y_plain.data(), 5 * V));
  EXPECT_TRUE(same_bits(e_tiled.data(), e_plain.data(), 3 * D));
  CpuBackend k1(1);
  EXPECT_FALSE(k1.prefer_gemm_layout(k1.upload_blocks(w.data(), V, D, DType::q8_0)));
  EXPECT_FALSE(plain.prefer_gemm_layout(plain.upload_blocks(w.data(), V - 4, D, DType::q8_0)));
  const std::vector<uint8_t> q4 = random_blocks(DType::q4_0, V * D / 32, 47);
  EXPECT_FALSE(plain.prefer_gemm_layout(plain.upload_blocks(q4.data(), V, D, DType::q4_0)));
}

TEST(Int8Dot, KernelVersionNamesTheArithmetic) {
  EXPECT_EQ(CpuBackend(1).kernel_version(), "cpu-k1");
  EXPECT_EQ(CpuBackend(1, QuantDot::int8_activations).kernel_version(), "cpu-k2");
}

}  // namespace
}  // namespace bx
