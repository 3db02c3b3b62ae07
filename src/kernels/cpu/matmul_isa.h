// Entry points of the per-ISA matmul / dot translation units (matmul_{scalar,avx2,avx512}.cpp).
//
// A plain header on purpose: only <cstddef>/<cstdint>, one POD struct and plain functions on raw
// pointers. The AVX2 and AVX-512 files include nothing else but <immintrin.h>, and keep all
// their helpers at internal linkage, so no code compiled with -mavx512f can be picked by the
// linker for a function the scalar path also uses. Dispatch lives in kernels/matmul.cpp.
//
// Every function here computes the canonical dot of kernels/lanes.h for each output, so all
// three paths give the same bits.
#pragma once

#include "kernels/quant_blocks.h"

#include <cstddef>
#include <cstdint>

namespace bx::cpu {

// One thread's share of a matmul: y[m, n] for m in [0, M), n in [n_begin, n_end).
//   y[m, n] = canonical dot over K of x[m, :] and W[n, :]
struct MatmulTask {
  const float* x;  // [M, K], row stride x_stride
  int64_t x_stride;
  const void* w;  // [N, K], row stride w_stride; f32, or bf16 bits when w_bf16 != 0
  int64_t w_stride;
  int w_bf16;
  float* y;  // [M, N], row stride y_stride
  int64_t y_stride;
  int64_t M, K;
  int64_t n_begin, n_end;
  float* scratch;  // kMatmulScratchFloats floats, 64-byte aligned, owned by this thread
};

// Work space every path may use (packed weight panel plus spilled lane accumulators).
inline constexpr int64_t kMatmulScratchFloats = int64_t{1} << 18;  // 1 MiB

void matmul_scalar(const MatmulTask* task);
void matmul_avx2(const MatmulTask* task);
void matmul_avx512(const MatmulTask* task);

// Canonical dot of a[0..n) and b[0..n); n = 0 gives +0.0f.
float dot_scalar(const float* a, const float* b, int64_t n);
float dot_avx2(const float* a, const float* b, int64_t n);
float dot_avx512(const float* a, const float* b, int64_t n);

// ---------------------------------------------------------------------------------------------
// Block-quantized weights: rows of blocks of 32 or 256 weights (kernels/quant.h, quant_blocks.h).
// Each path dequantizes a block with the element math of quant.h (exact f16 widening, exact
// integer conversion, each product, sum and difference rounded in the order quant.h writes; no
// fma) and feeds the values to the canonical dot in element order, so every output has the bits
// of dequantize-at-load + the f32 matmul.

// The format ids of kernels/quant_blocks.h.
using quant::kIQ4_NL;
using quant::kIQ4_XS;
using quant::kQ2_K;
using quant::kQ3_K;
using quant::kQ4_0;
using quant::kQ4_1;
using quant::kQ4_K;
using quant::kQ5_0;
using quant::kQ5_1;
using quant::kQ5_K;
using quant::kQ6_K;
using quant::kQ8_0;
using QuantFormat = quant::BlockFormatId;

// True for the formats the AVX paths dequantize in registers block by block (Q8_0, Q4_0, Q4_1);
// the others go through dequant_block_avx2 into a buffer of one block.
constexpr bool has_register_kernel(int format) {
  return format == kQ8_0 || format == kQ4_0 || format == kQ4_1;
}

// One block of `format` -> out[0 .. kBlockElements[format]) with AVX2 (dequant_avx2.cpp; the
// caller checks the CPU has AVX2). Formats with a register kernel take the scalar reference.
void dequant_block_avx2(int format, const uint8_t* block, float* out);

// One thread's share of a quantized matmul: y[m, n] for m in [0, M), n in [n_begin, n_end).
//   y[m, n] = canonical dot over K of x[m, :] and dequant(W[n, :]);  K a multiple of the block size
struct QuantMatmulTask {
  const float* x;  // [M, K], row stride x_stride (elements)
  int64_t x_stride;
  const uint8_t* w;  // [N, K / E] blocks of E elements, row n at w + n * w_row_bytes
  int64_t w_row_bytes;
  int format;  // QuantFormat
  float* y;    // [M, N], row stride y_stride
  int64_t y_stride;
  int64_t M, K;
  int64_t n_begin, n_end;
};

// Fused: dequantizes blocks in registers as it goes (the small-M / decode path).
void qmatmul_scalar(const QuantMatmulTask* task);
void qmatmul_avx2(const QuantMatmulTask* task);
void qmatmul_avx512(const QuantMatmulTask* task);

// out[r * K + k] = dequant(W[r, k]) for r in [0, rows): a panel for the f32 matmul (large M).
void dequant_rows_scalar(const uint8_t* w, int64_t w_row_bytes, int format, int64_t rows, int64_t K,
                         float* out);
void dequant_rows_avx2(const uint8_t* w, int64_t w_row_bytes, int format, int64_t rows, int64_t K,
                       float* out);
void dequant_rows_avx512(const uint8_t* w, int64_t w_row_bytes, int format, int64_t rows, int64_t K,
                         float* out);

}  // namespace bx::cpu
