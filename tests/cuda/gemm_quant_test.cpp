// Tests of kernels/cuda/gemm_quant.h: the GEMM over weights held in their GGUF blocks.
//
//   T1 exact      for Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K blocks of random bytes (ordinary and
//                 extreme f16 scales: +-65504, the smallest subnormal and normal, zero), the fused
//                 kernel gives the bits of the dense invariant GEMM (gemm.h) on the weights
//                 dequantized on the host by kernels/quant.h and rounded to bf16, for M in {1, 2,
//                 7, 64, 129, 1000}, with ragged N and (for the 32-element formats) K % 256 != 0
//                 and K % 64 == 32; the same with accumulate.
//                 The decode launch (M <= 16, N wide enough for four-warp blocks) the same, plain
//                 and gated.
//   T3 invariant  rows alone == the same rows inside the batch of 1000, bit for bit.
//   controls      a split of K (two chains added) differs, and so does a reference whose weights
//                 were rounded to bf16 by truncation: the comparisons see both kinds of error.
//   epilogues     the gated (SwiGLU) epilogue, f32 and bf16 outputs, == gemm_bf16's gated
//                 epilogue on the dequantized gate and up weights for every M; output parts ==
//                 the whole GEMM's columns.
//   embed         embed_quant_rows gives the rows of the dequantized table rounded to bf16.
//   bad input     an unsupported format or a K that is not whole blocks is a bx::Error.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemm_quant.h"
#include "kernels/quant.h"
#include "support/cuda_test_data.h"

namespace bx {
namespace {

using cuda::DeviceBuffer;
using test::to_device;
using test::to_host;

struct FormatCase {
  DType dtype;
  int64_t K;
};
// K: 608 = 19 blocks of 32 (a partial last stage of 96, K % 64 == 32); 768 = 3 super-blocks.
const FormatCase kCases[] = {{DType::q8_0, 608}, {DType::q4_0, 608}, {DType::q4_1, 608},
                             {DType::q4_k, 768}, {DType::q5_k, 768}, {DType::q6_k, 768}};

// Byte offsets of a block's f16 scale fields (d, and dmin or m where the format has one).
std::vector<int> f16_fields(DType t) {
  switch (t) {
    case DType::q8_0:
    case DType::q4_0:
      return {0};
    case DType::q4_1:
    case DType::q4_k:
    case DType::q5_k:
      return {0, 2};
    case DType::q6_k:
      return {208};
    default:
      return {};
  }
}

// rows x (K / E) blocks of random bytes; f16 fields random normals of magnitude 2^-10 .. 2^-3,
// or with `extreme`, drawn from the ends of the f16 range.
std::vector<uint8_t> random_blocks(DType t, int64_t rows, int64_t K, uint32_t seed, bool extreme) {
  const quant::BlockFormat& f = quant::block_format(t);
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * quant::bytes_for(t, K)));
  std::mt19937 rng(seed);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  const uint16_t extremes[] = {0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x0400, 0x0000, 0x3C00};
  for (size_t block = 0; block < bytes.size() / static_cast<size_t>(f.block_bytes); ++block) {
    for (int field : f16_fields(t)) {
      uint16_t h;
      if (extreme) {
        h = extremes[rng() % 7];
      } else {
        const uint32_t exponent = 5 + rng() % 8;  // 2^-10 .. 2^-3
        h = static_cast<uint16_t>(((rng() & 1) << 15) | (exponent << 10) | (rng() & 0x3FF));
      }
      std::memcpy(&bytes[block * f.block_bytes + field], &h, 2);
    }
  }
  return bytes;
}

// bf16(dequant(W)) [rows, K] on the host (kernels/quant.h), rounded to nearest even, or by
// truncation (the negative control).
std::vector<uint16_t> dequantized_bf16(DType t, const std::vector<uint8_t>& blocks, int64_t rows,
                                       int64_t K, bool truncate = false) {
  const int64_t row_bytes = quant::bytes_for(t, K);
  std::vector<float> row(static_cast<size_t>(K));
  std::vector<uint16_t> out(static_cast<size_t>(rows * K));
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(t, blocks.data() + r * row_bytes, K, row.data());
    for (int64_t k = 0; k < K; ++k) {
      out[r * K + k] = truncate ? static_cast<uint16_t>(std::bit_cast<uint32_t>(row[k]) >> 16)
                                : f32_to_bf16(row[k]);
    }
  }
  return out;
}

struct QuantProblem {
  DType dtype;
  int64_t rows_x, N, K;
  std::vector<uint8_t> blocks;
  DeviceBuffer dx, dw, dwb, dy;

  QuantProblem(DType t, int64_t rows_x_, int64_t N_, int64_t K_, uint32_t seed, bool extreme)
      : dtype(t), rows_x(rows_x_), N(N_), K(K_), blocks(random_blocks(t, N_, K_, seed, extreme)) {
    dx = to_device(test::random_bf16(static_cast<size_t>(rows_x * K), seed + 1));
    std::vector<uint8_t> padded = blocks;
    padded.resize(blocks.size() + 16, 0);  // the kernel's 16 readable bytes past the last row
    dw = to_device(padded);
    dwb = to_device(dequantized_bf16(t, blocks, N, K));
    dy = DeviceBuffer(static_cast<size_t>(rows_x * N) * sizeof(float));
  }

  cuda::QuantGemmArgs quant_args(int64_t first, int64_t M) const {
    cuda::QuantGemmArgs a;
    a.x = dx.get<uint16_t>() + first * K;
    a.x_stride = K;
    a.w = dw.get<uint8_t>();
    a.w_row_bytes = quant::bytes_for(dtype, K);
    a.format = quant::block_format(dtype).id;
    a.y = dy.get<float>();
    a.y_stride = N;
    a.M = M;
    a.N = N;
    a.K = K;
    return a;
  }

  // y = x[first .. first + M) @ dequant(W)^T through the fused kernel.
  std::vector<float> fused(int64_t first, int64_t M,
                           cuda::QuantGemmSchedule schedule = cuda::QuantGemmSchedule::automatic) {
    test::poison(dy);
    cuda::gemm_quant(quant_args(first, M), nullptr, schedule);
    test::sync();
    return to_host<float>(dy, static_cast<size_t>(M * N));
  }

  // The same through gemm_bf16 on `wb` (default: the bf16 weights rounded to nearest even).
  std::vector<float> dense(int64_t first, int64_t M, const DeviceBuffer* wb = nullptr) {
    test::poison(dy);
    cuda::GemmArgs a;
    a.x = dx.get<uint16_t>() + first * K;
    a.x_stride = K;
    a.w = (wb != nullptr ? *wb : dwb).get<uint16_t>();
    a.w_stride = K;
    a.y = dy.get<float>();
    a.y_stride = N;
    a.M = M;
    a.N = N;
    a.K = K;
    cuda::gemm_bf16(a, nullptr);
    test::sync();
    return to_host<float>(dy, static_cast<size_t>(M * N));
  }
};

size_t count_differences(const std::vector<float>& a, const std::vector<float>& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

// "" when a and b hold the same bits, else the first differing element (index, both values).
std::string first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      return "first difference at element " + std::to_string(i) + ": " + std::to_string(a[i]) +
             " vs " + std::to_string(b[i]);
    }
  }
  return "";
}

const int64_t kMs[] = {1, 2, 7, 64, 129, 1000};

// automatic and every schedule that takes M rows.
std::vector<cuda::QuantGemmSchedule> schedules_for(int64_t M) {
  std::vector<cuda::QuantGemmSchedule> out = {cuda::QuantGemmSchedule::automatic};
  for (const cuda::QuantGemmSchedule s : cuda::kQuantGemmSchedules) {
    if (M <= 16 || s == cuda::QuantGemmSchedule::tiled) out.push_back(s);
  }
  return out;
}

TEST(GemmQuant, FusedEqualsDenseOnDequantizedWeightsForEveryM) {
  BX_REQUIRE_HOPPER();
  for (const FormatCase& c : kCases) {
    for (bool extreme : {false, true}) {
      const std::string what = std::string(dtype_name(c.dtype)) + (extreme ? " extreme" : "");
      QuantProblem p(c.dtype, 1000, 200, c.K, 11, extreme);
      for (int64_t M : kMs) {
        const std::vector<float> dense = p.dense(0, M);
        for (const cuda::QuantGemmSchedule schedule : schedules_for(M)) {
          const std::vector<float> fused = p.fused(0, M, schedule);
          EXPECT_EQ(count_differences(fused, dense), 0u)
              << what << " M = " << M << " " << cuda::quant_gemm_schedule_name(schedule) << ", "
              << first_difference(fused, dense);
        }
      }
    }
  }
}

// The decode shapes' launch: at M <= 16 and N wide enough for four-warp blocks (N >= 16 per
// multiprocessor), the weight-stream kernel with its branch-free steady stages and its generic
// last stages (K = 1280: five super-blocks; K = 1248: four full stages of 32-element blocks, a
// partial one and slices past K), ragged N, plain and gated: the bits of gemm_bf16 on the
// dequantized weights.
TEST(GemmQuant, WideDecodeShapesEqualDense) {
  BX_REQUIRE_HOPPER();
  const int64_t N = std::max<int64_t>(2196, int64_t{cuda::sm_count()} * 16 + 4);
  for (const FormatCase& c : kCases) {
    const int64_t K = quant::block_elements(c.dtype) == 256 ? 1280 : 1248;
    QuantProblem gate(c.dtype, 16, N, K, 71, false);
    const std::vector<uint8_t> up_blocks = random_blocks(c.dtype, N, K, 72, false);
    std::vector<uint8_t> padded = up_blocks;
    padded.resize(up_blocks.size() + 16, 0);
    const DeviceBuffer up = to_device(padded);
    const DeviceBuffer up_bf16 = to_device(dequantized_bf16(c.dtype, up_blocks, N, K));
    for (int64_t M : {int64_t{1}, int64_t{3}, int64_t{16}}) {
      const std::vector<float> dense = gate.dense(0, M);
      std::vector<std::vector<float>> fused_gated;  // by schedule
      for (const cuda::QuantGemmSchedule schedule : schedules_for(M)) {
        const std::string what = std::string(dtype_name(c.dtype)) + " M = " + std::to_string(M) +
                                 " " + cuda::quant_gemm_schedule_name(schedule);
        const std::vector<float> fused = gate.fused(0, M, schedule);
        EXPECT_EQ(count_differences(fused, dense), 0u)
            << what << ", " << first_difference(fused, dense);
        // Gated: W the gate rows, w_up the up rows.
        test::poison(gate.dy);
        cuda::QuantGemmArgs q = gate.quant_args(0, M);
        q.w_up = up.get<uint8_t>();
        cuda::gemm_quant(q, nullptr, schedule);
        test::sync();
        fused_gated.push_back(to_host<float>(gate.dy, static_cast<size_t>(M * N)));
      }
      test::poison(gate.dy);
      cuda::GemmArgs d;
      d.x = gate.dx.get<uint16_t>();
      d.x_stride = K;
      d.w = gate.dwb.get<uint16_t>();
      d.w_up = up_bf16.get<uint16_t>();
      d.w_stride = K;
      d.y = gate.dy.get<float>();
      d.y_stride = N;
      d.M = M;
      d.N = N;
      d.K = K;
      cuda::gemm_bf16(d, nullptr);
      test::sync();
      const std::vector<float> dense_gated = to_host<float>(gate.dy, static_cast<size_t>(M * N));
      for (size_t i = 0; i < fused_gated.size(); ++i) {
        EXPECT_EQ(count_differences(fused_gated[i], dense_gated), 0u)
            << dtype_name(c.dtype) << " gated, M = " << M << " "
            << cuda::quant_gemm_schedule_name(schedules_for(M)[i]) << ", "
            << first_difference(fused_gated[i], dense_gated);
      }
    }
  }
}

TEST(GemmQuant, AccumulateAddsTheChainOnce) {
  BX_REQUIRE_HOPPER();
  for (const FormatCase& c : kCases) {
    QuantProblem p(c.dtype, 64, 72, c.K, 5, false);
    const std::vector<float> base = test::random_f32(static_cast<size_t>(7 * 72), 9);
    const std::vector<float> chain = p.dense(0, 7);
    p.dy.upload(base.data(), base.size() * sizeof(float));
    cuda::QuantGemmArgs a = p.quant_args(0, 7);
    a.accumulate = true;
    cuda::gemm_quant(a, nullptr);
    test::sync();
    const std::vector<float> got = to_host<float>(p.dy, base.size());
    std::vector<float> expected(base.size());
    for (size_t i = 0; i < base.size(); ++i) expected[i] = base[i] + chain[i];
    EXPECT_EQ(count_differences(got, expected), 0u) << dtype_name(c.dtype);
  }
}

TEST(GemmQuant, RowsAloneEqualRowsInTheBatch) {
  BX_REQUIRE_HOPPER();
  for (const FormatCase& c : kCases) {
    QuantProblem p(c.dtype, 1000, 136, c.K, 21, false);
    const std::vector<float> batch = p.fused(0, 1000);
    for (int64_t row : {0, 1, 17, 500, 998, 999}) {
      const std::vector<float> alone = p.fused(row, 1);
      EXPECT_EQ(std::memcmp(alone.data(), batch.data() + row * p.N, p.N * sizeof(float)), 0)
          << dtype_name(c.dtype) << " row " << row;
    }
  }
}

TEST(GemmQuant, NegativeControlsDiffer) {
  BX_REQUIRE_HOPPER();
  for (const FormatCase& c : kCases) {
    QuantProblem p(c.dtype, 64, 200, c.K, 31, false);
    const std::vector<float> whole = p.fused(0, 64);
    // K in two chains, the second added to the first: another summation order.
    const int64_t E = quant::block_elements(c.dtype);
    const int64_t first_part = c.K / 2 / E * E;
    test::poison(p.dy);
    cuda::QuantGemmArgs a = p.quant_args(0, 64);
    a.K = first_part;
    cuda::gemm_quant(a, nullptr);
    a = p.quant_args(0, 64);
    a.x += first_part;
    a.w += quant::bytes_for(c.dtype, first_part);
    a.K = c.K - first_part;
    a.x_stride = c.K;
    a.accumulate = true;
    cuda::gemm_quant(a, nullptr);
    test::sync();
    const std::vector<float> split = to_host<float>(p.dy, whole.size());
    EXPECT_GT(count_differences(whole, split), 0u) << dtype_name(c.dtype) << ": split K";
    // Weights truncated to bf16 instead of rounded.
    const DeviceBuffer truncated =
        to_device(dequantized_bf16(c.dtype, p.blocks, p.N, p.K, /*truncate=*/true));
    EXPECT_GT(count_differences(whole, p.dense(0, 64, &truncated)), 0u)
        << dtype_name(c.dtype) << ": truncated weights";
  }
}

// The gated (SwiGLU) epilogue: the bits of gemm_bf16's gated epilogue on the dequantized gate and
// up weights, into f32 and into bf16 rows with their +0 padding, for every M.
TEST(GemmQuant, GatedEqualsDenseGatedForEveryM) {
  BX_REQUIRE_HOPPER();
  for (const FormatCase& c : kCases) {
    const int64_t N = 196, Np = 200;  // N % 8 != 0: padding columns in the bf16 outputs
    QuantProblem gate(c.dtype, 1000, N, c.K, 51, false);
    const std::vector<uint8_t> up_blocks = random_blocks(c.dtype, N, c.K, 52, false);
    std::vector<uint8_t> padded = up_blocks;
    padded.resize(up_blocks.size() + 16, 0);
    const DeviceBuffer up = to_device(padded);
    const DeviceBuffer up_bf16 = to_device(dequantized_bf16(c.dtype, up_blocks, N, c.K));
    DeviceBuffer yb(static_cast<size_t>(1000 * Np) * 2);
    for (int64_t M : kMs) {
      for (const cuda::QuantGemmSchedule schedule : schedules_for(M))
        for (bool to_bf16 : {false, true}) {
          // Fused over blocks.
          test::poison(gate.dy);
          test::poison(yb);
          cuda::QuantGemmArgs q = gate.quant_args(0, M);
          q.w_up = up.get<uint8_t>();
          if (to_bf16) {
            q.y = nullptr;
            q.y_bf16 = yb.get<uint16_t>();
            q.y_stride = Np;
          }
          cuda::gemm_quant(q, nullptr, schedule);
          test::sync();
          const std::vector<float> fused_f32 = to_host<float>(gate.dy, static_cast<size_t>(M * N));
          const std::vector<uint16_t> fused_bf16 =
              to_host<uint16_t>(yb, static_cast<size_t>(M * Np));
          // Dense on the dequantized weights.
          test::poison(gate.dy);
          test::poison(yb);
          cuda::GemmArgs d;
          d.x = gate.dx.get<uint16_t>();
          d.x_stride = c.K;
          d.w = gate.dwb.get<uint16_t>();
          d.w_up = up_bf16.get<uint16_t>();
          d.w_stride = c.K;
          d.y = gate.dy.get<float>();
          d.y_stride = N;
          if (to_bf16) {
            d.y = nullptr;
            d.y_bf16 = yb.get<uint16_t>();
            d.y_stride = Np;
          }
          d.M = M;
          d.N = N;
          d.K = c.K;
          cuda::gemm_bf16(d, nullptr);
          test::sync();
          if (to_bf16) {
            const std::vector<uint16_t> dense = to_host<uint16_t>(yb, static_cast<size_t>(M * Np));
            EXPECT_EQ(dense, fused_bf16) << dtype_name(c.dtype) << " bf16 outputs, M = " << M << " "
                                         << cuda::quant_gemm_schedule_name(schedule);
          } else {
            const std::vector<float> dense = to_host<float>(gate.dy, static_cast<size_t>(M * N));
            EXPECT_EQ(count_differences(fused_f32, dense), 0u)
                << dtype_name(c.dtype) << " M = " << M << " "
                << cuda::quant_gemm_schedule_name(schedule);
          }
        }
    }
  }
}

// Output parts (q | k | v from one W of their rows back to back): each part's columns hold the
// bits of the whole GEMM's columns.
TEST(GemmQuant, OutputPartsEqualTheWholeGemm) {
  BX_REQUIRE_HOPPER();
  for (const FormatCase& c : kCases) {
    QuantProblem p(c.dtype, 130, 200, c.K, 61, false);
    for (int64_t M : {int64_t{1}, int64_t{7}, int64_t{130}}) {
      const std::vector<float> whole = p.fused(0, M);
      DeviceBuffer k_out(static_cast<size_t>(M * 32) * 4), v_out(static_cast<size_t>(M * 40) * 4);
      test::poison(p.dy);
      test::poison(k_out);
      test::poison(v_out);
      cuda::QuantGemmArgs a = p.quant_args(0, M);
      a.y_stride = 128;  // q: columns [0, 128)
      a.parts[0] = cuda::GemmOutputPart{128, k_out.get<float>(), 32};
      a.parts[1] = cuda::GemmOutputPart{160, v_out.get<float>(), 40};
      a.n_parts = 2;
      cuda::gemm_quant(a, nullptr);
      test::sync();
      const std::vector<float> q = to_host<float>(p.dy, static_cast<size_t>(M * 128));
      const std::vector<float> k = to_host<float>(k_out, static_cast<size_t>(M * 32));
      const std::vector<float> v = to_host<float>(v_out, static_cast<size_t>(M * 40));
      size_t differ = 0;
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < 200; ++n) {
          const float got = n < 128   ? q[m * 128 + n]
                            : n < 160 ? k[m * 32 + n - 128]
                                      : v[m * 40 + n - 160];
          differ += std::memcmp(&got, &whole[m * 200 + n], 4) != 0;
        }
      }
      EXPECT_EQ(differ, 0u) << dtype_name(c.dtype) << " M = " << M;
    }
  }
}

TEST(GemmQuant, EmbedGivesTheDequantizedBf16Rows) {
  BX_REQUIRE_HOPPER();
  for (const FormatCase& c : kCases) {
    for (bool extreme : {false, true}) {
      const int64_t V = 40, D = c.K;
      const std::vector<uint8_t> blocks = random_blocks(c.dtype, V, D, 41, extreme);
      const std::vector<uint16_t> expected_bf16 = dequantized_bf16(c.dtype, blocks, V, D);
      const std::vector<int32_t> ids = {3, 0, 39, 3, 17};
      const int64_t T = static_cast<int64_t>(ids.size());
      const DeviceBuffer table = to_device(blocks), dids = to_device(ids);
      DeviceBuffer out(static_cast<size_t>(T * D) * sizeof(float));
      test::poison(out);
      cuda::embed_quant_rows(table.get<uint8_t>(), quant::block_format(c.dtype).id,
                             quant::bytes_for(c.dtype, D), dids.get<int32_t>(), out.get<float>(), D,
                             T, D, nullptr);
      test::sync();
      const std::vector<float> got = to_host<float>(out, static_cast<size_t>(T * D));
      std::vector<float> expected(got.size());
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t d = 0; d < D; ++d)
          expected[t * D + d] = bf16_to_f32(expected_bf16[ids[t] * D + d]);
      }
      EXPECT_EQ(count_differences(got, expected), 0u)
          << dtype_name(c.dtype) << (extreme ? " extreme" : "");
    }
  }
}

TEST(GemmQuant, BadInputIsAClearError) {
  cuda::QuantGemmArgs a;
  a.M = 1;
  a.N = 8;
  a.K = 64;
  a.x_stride = 64;
  a.y_stride = 8;
  a.format = quant::kIQ4_XS;
  a.w_row_bytes = 1024;
  try {
    cuda::gemm_quant(a, nullptr);
    FAIL() << "an unsupported format was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no fused kernel"), std::string::npos) << e.what();
  }
  a.format = quant::kQ4_K;
  try {
    cuda::gemm_quant(a, nullptr);
    FAIL() << "K = 64 was accepted for Q4_K";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of the block size 256"), std::string::npos)
        << e.what();
  }
  a.K = 256;
  a.M = 17;
  try {
    cuda::gemm_quant(a, nullptr, cuda::QuantGemmSchedule::stream);
    FAIL() << "the stream schedule was accepted for M = 17";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("takes M <= 16, got M = 17"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(cuda::gemm_quant_supports(quant::kQ2_K));
  EXPECT_TRUE(cuda::gemm_quant_supports(quant::kQ4_K));
}

}  // namespace
}  // namespace bx
