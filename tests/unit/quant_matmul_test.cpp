// Tests of block-quantized weights in the matmul (kernels/quant.h, kernels/matmul.h).
//
//   Dequantization  quant::dequantize_row, every ISA's dequant_rows_* and the load-time
//                   gguf::dequantize_to_f32 give the bits of the `gguf` package's numpy
//                   dequantize (tests/ref/gguf_dequantize.py, pinned in tests/requirements.txt)
//                   on random blocks whose scales include +-0, subnormals, the largest f16,
//                   +-inf and NaNs (a NaN must give a NaN; which one is not specified).
//   T1 exact        matmul with weights in every block format (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
//                   Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS) == the f32 matmul of the
//                   load-time dequantized copy, bit for bit, for every M (fused and panel paths),
//                   N, K, thread count and ISA; and == matmul_reference.
//   T3 invariant    row i of a batch == row i alone (memcmp); the split_k_by_m negative control
//                   (which also takes quantized weights) must fail that.
//   Errors          K or a row stride that is not a multiple of the block size (32, or 256 for
//                   the K-quants) is a bx::Error.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/matmul_isa.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "model/gguf.h"
#include "support/kernel_test_data.h"
#include "support/python_runner.h"

namespace bx {
namespace {

using test::pool;
using test::same_bits;
using test::supported_isas;

constexpr DType kFormats[] = {DType::q8_0, DType::q4_0, DType::q4_1,   DType::q5_0,
                              DType::q5_1, DType::q2_k, DType::q3_k,   DType::q4_k,
                              DType::q5_k, DType::q6_k, DType::iq4_nl, DType::iq4_xs};

gguf::GgmlType ggml_type(DType t) {
  switch (t) {
    case DType::q8_0:
      return gguf::GgmlType::Q8_0;
    case DType::q4_0:
      return gguf::GgmlType::Q4_0;
    case DType::q4_1:
      return gguf::GgmlType::Q4_1;
    case DType::q5_0:
      return gguf::GgmlType::Q5_0;
    case DType::q5_1:
      return gguf::GgmlType::Q5_1;
    case DType::q2_k:
      return gguf::GgmlType::Q2_K;
    case DType::q3_k:
      return gguf::GgmlType::Q3_K;
    case DType::q4_k:
      return gguf::GgmlType::Q4_K;
    case DType::q5_k:
      return gguf::GgmlType::Q5_K;
    case DType::q6_k:
      return gguf::GgmlType::Q6_K;
    case DType::iq4_nl:
      return gguf::GgmlType::IQ4_NL;
    case DType::iq4_xs:
      return gguf::GgmlType::IQ4_XS;
    default:
      break;
  }
  throw Error("not a block format");
}

// Byte offsets of the f16 scales in a block (ggml's block structs): d first, then the min
// (Q4_1, Q5_1) or dmin (Q2_K, Q4_K, Q5_K) where the format has one.
std::vector<size_t> scale_offsets(DType t) {
  switch (t) {
    case DType::q4_1:
    case DType::q5_1:
    case DType::q4_k:
    case DType::q5_k:
      return {0, 2};
    case DType::q2_k:
      return {80, 82};
    case DType::q3_k:
      return {108};
    case DType::q6_k:
      return {208};
    default:
      return {0};
  }
}

int64_t block_elements(DType t) {
  return quant::block_elements(t);
}

void put_u16(std::vector<uint8_t>& blocks, size_t at, uint16_t v) {
  std::memcpy(blocks.data() + at, &v, sizeof v);
}

// n_blocks random blocks of format t (random bytes: every bit field, 6-bit scale and sign
// occurs). With `edge`, the f16 scales cycle through the special values (signed zeros,
// subnormals, the largest finite, infinities, quiet and signalling NaNs) and random bit
// patterns; otherwise they are moderate (d in [2^-10, 2^-4), the min or dmin negative and
// smaller), as in a real model, so matmul sums stay finite.
std::vector<uint8_t> random_blocks(DType t, int64_t n_blocks, uint32_t seed, bool edge) {
  static constexpr uint16_t kEdge[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400,
                                       0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7d01,
                                       0xfe37, 0x3c00, 0xbc00, 0x3555, 0x0200, 0x1c00};
  std::mt19937 rng(seed);
  const auto bytes = static_cast<size_t>(quant::block_bytes(t));
  std::vector<uint8_t> blocks(static_cast<size_t>(n_blocks) * bytes);
  for (uint8_t& b : blocks) b = static_cast<uint8_t>(rng());
  const std::vector<size_t> offsets = scale_offsets(t);
  for (int64_t b = 0; b < n_blocks; ++b) {
    for (size_t s = 0; s < offsets.size(); ++s) {
      uint16_t h;
      if (edge) {
        const auto pick = static_cast<uint32_t>(rng() % (std::size(kEdge) + 4));
        h = pick < std::size(kEdge) ? kEdge[pick] : static_cast<uint16_t>(rng());
      } else {
        const auto exponent = static_cast<uint32_t>(5 + rng() % 6);  // 2^(e - 15): [2^-10, 2^-4)
        h = static_cast<uint16_t>((exponent << 10) | (rng() & 0x3ff));
        if (s == 1) h = static_cast<uint16_t>((h - (3u << 10)) | 0x8000u);  // m < 0, smaller
      }
      put_u16(blocks, static_cast<size_t>(b) * bytes + offsets[s], h);
    }
  }
  return blocks;
}

// The load-time path: gguf::dequantize_to_f32 of an [N, K] tensor.
std::vector<float> load_time_dequant(DType t, const std::vector<uint8_t>& blocks, int64_t N,
                                     int64_t K) {
  gguf::TensorInfo info;
  info.name = "w";
  info.dims = {K, N};
  info.type = ggml_type(t);
  info.n_elements = N * K;
  info.n_bytes = blocks.size();
  std::vector<float> out(static_cast<size_t>(N * K));
  gguf::dequantize_to_f32(info, std::as_bytes(std::span(blocks)), out.data());
  return out;
}

// Bit patterns, so -0 differs from +0 and every other value compares exactly; every NaN maps to
// one pattern, because which NaN an operation on two NaNs returns depends on the operand order a
// compiler picks for a commutative add or multiply (quant.h leaves the NaN unspecified).
std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) out[i] = 0x7fc00000u;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dequantization against the gguf package.

TEST(QuantDequant, MatchesGgufPackageOnEdgeBlocks) {
  const std::string python = test::python_interpreter();
  if (python.empty()) GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing (run scripts/setup.sh)";
  const std::string dir =
      std::filesystem::temp_directory_path().string() + "/bx_quant_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  for (DType t : kFormats) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    constexpr int64_t kRows = 8, kK = 32 * 64;  // 512 blocks of 32, 64 of 256
    const std::vector<uint8_t> blocks =
        random_blocks(t, kRows * kK / block_elements(t), 11, /*edge=*/true);
    const std::string in = dir + "/blocks.bin", out = dir + "/values.bin";
    std::ofstream(in, std::ios::binary)
        .write(reinterpret_cast<const char*>(blocks.data()),
               static_cast<std::streamsize>(blocks.size()));
    ASSERT_EQ(test::run_python(python, "tests/ref/gguf_dequantize.py",
                               {std::string(dtype_name(t)), in, out}),
              0)
        << "tests/ref/gguf_dequantize.py failed (is the gguf package installed?)";
    std::vector<float> ref(static_cast<size_t>(kRows * kK));
    std::ifstream f(out, std::ios::binary);
    f.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * 4));
    ASSERT_EQ(f.gcount(), static_cast<std::streamsize>(ref.size() * 4));
    const std::vector<uint32_t> want = bits_of(ref);

    EXPECT_EQ(bits_of(load_time_dequant(t, blocks, kRows, kK)), want) << "gguf::dequantize_to_f32";
    std::vector<float> got(ref.size());
    quant::dequantize_row(t, blocks.data(), kRows * kK, got.data());
    EXPECT_EQ(bits_of(got), want) << "quant::dequantize_row";

    const int64_t row_bytes = quant::bytes_for(t, kK);
    const int format = quant::block_format(t).id;
    for (Isa isa : supported_isas()) {
      std::fill(got.begin(), got.end(), 0.0f);
      switch (isa) {
        case Isa::scalar:
          cpu::dequant_rows_scalar(blocks.data(), row_bytes, format, kRows, kK, got.data());
          break;
        case Isa::avx2:
          cpu::dequant_rows_avx2(blocks.data(), row_bytes, format, kRows, kK, got.data());
          break;
        case Isa::avx512:
          cpu::dequant_rows_avx512(blocks.data(), row_bytes, format, kRows, kK, got.data());
          break;
      }
      const std::vector<uint32_t> have = bits_of(got);
      for (size_t i = 0; i < have.size(); ++i) {
        if (have[i] != want[i]) {
          ADD_FAILURE() << "dequant_rows on " << isa_name(isa) << ": element " << i << " is 0x"
                        << std::hex << have[i] << ", expected 0x" << want[i] << std::dec;
          break;
        }
      }
    }
    // The edge scales really occur (a NaN and an infinity among the reference values).
    bool nan = false, inf = false;
    for (float v : ref) nan |= std::isnan(v), inf |= std::isinf(v);
    EXPECT_TRUE(nan && inf);
  }
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Matmul.

struct QuantCase {
  int64_t N, K;
};

MatmulArgs args_for(const float* x, const void* w, DType dtype, float* y, int64_t M, int64_t N,
                    int64_t K) {
  MatmulArgs a;
  a.x = x;
  a.w = w;
  a.w_dtype = dtype;
  a.y = y;
  a.M = M;
  a.N = N;
  a.K = K;
  return a;
}

// T1: every M, thread count and ISA gives the bits of the f32 matmul of the load-time copy.
// K counts blocks here: 1 to 48 blocks of 32 weights, 1 to 6 super-blocks of 256.
TEST(QuantMatmul, BitIdenticalToDequantizedF32Matmul) {
  const std::vector<QuantCase> cases32 = {{1, 1}, {5, 2}, {48, 3}, {49, 5}, {100, 18}, {7, 48}};
  const std::vector<QuantCase> cases256 = {{1, 1}, {5, 2}, {48, 3}, {49, 4}, {100, 2}, {7, 6}};
  const int64_t Ms[] = {1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 64, 70};
  for (DType t : kFormats) {
    for (const QuantCase& blocks_case : block_elements(t) == 32 ? cases32 : cases256) {
      const QuantCase c{blocks_case.N, blocks_case.K * block_elements(t)};
      SCOPED_TRACE(std::string(dtype_name(t)) + " N=" + std::to_string(c.N) +
                   " K=" + std::to_string(c.K));
      const std::vector<uint8_t> blocks = random_blocks(t, c.N * c.K / block_elements(t), 7, false);
      const std::vector<float> wf = load_time_dequant(t, blocks, c.N, c.K);
      const std::vector<float> x = test::random_floats(static_cast<size_t>(70 * c.K), 3);
      for (int64_t M : Ms) {
        std::vector<float> want(static_cast<size_t>(M * c.N));
        matmul(args_for(x.data(), wf.data(), DType::f32, want.data(), M, c.N, c.K), pool(1),
               Isa::scalar);
        std::vector<float> ref(want.size());
        matmul_reference(args_for(x.data(), blocks.data(), t, ref.data(), M, c.N, c.K));
        ASSERT_TRUE(same_bits(ref.data(), want.data(), M * c.N)) << "reference M=" << M;
        for (Isa isa : supported_isas()) {
          for (int threads : {1, 2, 3}) {
            std::vector<float> got(want.size(), -1.0f);
            matmul(args_for(x.data(), blocks.data(), t, got.data(), M, c.N, c.K), pool(threads),
                   isa);
            ASSERT_TRUE(same_bits(got.data(), want.data(), M * c.N))
                << "M=" << M << " " << isa_name(isa) << " threads=" << threads;
          }
        }
      }
    }
  }
}

// Strided x, y and W (W's row stride two blocks longer than K): only K elements per row count.
TEST(QuantMatmul, StridedOperands) {
  for (DType t : kFormats) {
    const int64_t E = block_elements(t);
    const int64_t M = 20, N = 50, K = 3 * E, ws = K + 2 * E, xs = K + 5, ys = N + 3;
    const std::vector<uint8_t> blocks = random_blocks(t, N * ws / E, 5, false);
    const std::vector<float> wf = load_time_dequant(t, blocks, N, ws);
    const std::vector<float> x = test::random_floats(static_cast<size_t>(M * xs), 9);
    for (int64_t m : {int64_t{1}, M}) {
      MatmulArgs a = args_for(x.data(), wf.data(), DType::f32, nullptr, m, N, K);
      a.x_stride = xs;
      a.w_stride = ws;
      a.y_stride = ys;
      std::vector<float> want(static_cast<size_t>(m * ys), 0.0f), got(want.size(), 0.0f);
      a.y = want.data();
      matmul_reference(a);
      a.w = blocks.data();
      a.w_dtype = t;
      a.y = got.data();
      for (Isa isa : supported_isas()) {
        matmul(a, pool(2), isa);
        EXPECT_TRUE(same_bits(got.data(), want.data(), m * ys))
            << dtype_name(t) << " M=" << m << " " << isa_name(isa);
      }
    }
  }
}

// T3: a row computed inside a batch equals the row computed alone; the negative control differs.
TEST(QuantMatmul, RowAloneEqualsRowInBatchAndControlFails) {
  const int64_t N = 96;
  for (DType t : kFormats) {
    const int64_t K = block_elements(t) == 32 ? 576 : 1536;
    const std::vector<uint8_t> blocks = random_blocks(t, N * K / block_elements(t), 13, false);
    const std::vector<float> x = test::random_floats(static_cast<size_t>(40 * K), 17);
    bool control_differs = false;
    for (Isa isa : supported_isas()) {
      for (int64_t M : {2, 3, 16, 40}) {
        std::vector<float> batch(static_cast<size_t>(M * N));
        matmul(args_for(x.data(), blocks.data(), t, batch.data(), M, N, K), pool(3), isa);
        for (int64_t i = 0; i < M; i += 7) {
          std::vector<float> alone(static_cast<size_t>(N));
          matmul(args_for(x.data() + i * K, blocks.data(), t, alone.data(), 1, N, K), pool(1), isa);
          ASSERT_TRUE(same_bits(alone.data(), batch.data() + i * N, N))
              << dtype_name(t) << " " << isa_name(isa) << " M=" << M << " row " << i;
        }
        MatmulArgs control = args_for(x.data(), blocks.data(), t, batch.data(), M, N, K);
        control.order = ReductionOrder::split_k_by_m;
        matmul(control, pool(2), isa);
        std::vector<float> alone(static_cast<size_t>(N));
        control = args_for(x.data(), blocks.data(), t, alone.data(), 1, N, K);
        control.order = ReductionOrder::split_k_by_m;
        matmul(control, pool(1), isa);
        control_differs |= !same_bits(alone.data(), batch.data(), N);
      }
    }
    EXPECT_TRUE(control_differs) << dtype_name(t) << ": the split-K control never differed";
  }
}

// CPU fast mode: split_k_by_m on quantized weights takes the canonical kernels part by part when
// each part starts on a block boundary (K = 18 blocks: parts of 9 and 6 blocks) and the scalar
// reference otherwise (K = 3 blocks: parts of 1.5 blocks); both must give the reference's bits.
TEST(QuantMatmul, SplitKFastPathEqualsReference) {
  const int64_t N = 60;
  for (DType t : kFormats) {
    const int64_t E = block_elements(t);
    for (int64_t K : {3 * E, 18 * E}) {
      const std::vector<uint8_t> blocks = random_blocks(t, N * K / E, 23, false);
      const std::vector<float> x = test::random_floats(static_cast<size_t>(17 * K), 29);
      for (int64_t M : {1, 2, 3, 16, 17}) {
        std::vector<float> want(static_cast<size_t>(M * N)), got(want.size());
        MatmulArgs a = args_for(x.data(), blocks.data(), t, want.data(), M, N, K);
        a.order = ReductionOrder::split_k_by_m;
        matmul_reference(a);
        a.y = got.data();
        for (Isa isa : supported_isas()) {
          matmul(a, pool(3), isa);
          EXPECT_TRUE(same_bits(got.data(), want.data(), M * N))
              << dtype_name(t) << " K=" << K << " M=" << M << " " << isa_name(isa);
        }
      }
    }
  }
}

TEST(QuantMatmul, RejectsKOrStrideNotAMultipleOf32) {
  const std::vector<uint8_t> blocks = random_blocks(DType::q4_1, 8, 1, false);
  std::vector<float> x(64, 1.0f), y(4);
  MatmulArgs a = args_for(x.data(), blocks.data(), DType::q4_1, y.data(), 1, 2, 48);
  EXPECT_THROW(matmul(a, pool(1)), Error);
  a.K = 32;
  a.w_stride = 48;
  EXPECT_THROW(matmul(a, pool(1)), Error);
  a.w_stride = 64;
  EXPECT_NO_THROW(matmul(a, pool(1)));
}

// K-quants: K and the row stride in whole super-blocks of 256; the message names the block size.
TEST(QuantMatmul, RejectsKOrStrideNotAMultipleOf256ForKQuants) {
  const std::vector<uint8_t> blocks = random_blocks(DType::q4_k, 4, 1, false);
  std::vector<float> x(512, 1.0f), y(4);
  MatmulArgs a = args_for(x.data(), blocks.data(), DType::q4_k, y.data(), 1, 2, 128);
  try {
    matmul(a, pool(1));
    ADD_FAILURE() << "K = 128 of Q4_K was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block size 256"), std::string::npos) << e.what();
  }
  a.K = 256;
  a.w_stride = 384;
  EXPECT_THROW(matmul(a, pool(1)), Error);
  a.w_stride = 512;
  EXPECT_NO_THROW(matmul(a, pool(1)));
}

}  // namespace
}  // namespace bx
