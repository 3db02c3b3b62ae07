// Entry points of the int8-activation dot kernels for block-quantized weights (kernel version
// cpu-k2; kernels/matmul.h, QuantDot::int8_activations), one file per ISA
// (int8_dot_{scalar,avx2}.cpp). A plain header, as matmul_isa.h is.
//
// The arithmetic (the whole contract; every path computes exactly this, so all give the same
// bits). A weight format of block size E (32, or 256 for the K-quants) groups K into blocks b.
//
// 1. Activations, per row and block (quantize_rows_int8, one scalar implementation for every
//    path): amax = max |x[e]| over the block's E elements;
//      amax == 0:        dx = 0, q[e] = 0
//      amax finite > 0:  dx = amax / 127, q[e] = nearbyint(x[e] * (127 / amax)) in [-127, 127]
//                        (f32 divisions and product, round half to even)
//      otherwise (inf or NaN in the block): dx = NaN, q[e] = 0.
//    sum32[g] = sum of q over each group g of 32 elements.
// 2. Weights: the integer codes c[e] of kernels/quant.h with the zero point removed, and the
//    block's f16 scales widened exactly:
//      Q8_0: c = q8           Q4_0: c = q4 - 8    Q5_0: c = q5 - 16   (A = d)
//      Q4_1: c = q4           Q5_1: c = q5        (A = d, and the min m)
//      Q4_K: c = q4k, sub-block scales sc[j] and mins mn[j] of 32 elements  (A = d, dmin)
//      Q6_K: c = q6 - 32, signed sub-block scales s[i] of 16 elements       (A = d)
// 3. Exact integer sums per block (int32; no order matters):
//      Q8_0 .. Q5_1:  S = sum_e c[e] q[e]
//      Q4_K:          S = sum_j sc[j] sum_{e in j} c[e] q[e],  Z = sum_j mn[j] sum32[j]
//      Q6_K:          S = sum_i s[i] sum_{e in i} c[e] q[e]
// 4. Float, blocks in order b = 0, 1, ... from acc = +0 (fma = one rounding, products of two
//    f32 rounded first):
//      every format:  acc = fma(A * dx_b, float(S_b), acc)
//      Q4_1, Q5_1:    then acc = fma(m * dx_b, float(sum32_b), acc)
//      Q4_K:          then acc = fma(-(dmin * dx_b), float(Z_b), acc)
//    y[m, n] = acc. The order is a function of K alone: the same for every M, thread count and
//    ISA. float(int) rounds half to even (exact below 2^24).
#pragma once

#include "kernels/quant_blocks.h"

#include <cstddef>
#include <cstdint>

namespace bx::cpu {

// The formats this arithmetic covers; the others keep the dequantize-then-f32 kernels.
constexpr bool has_int8_dot(int format) {
  return format == quant::kQ8_0 || format == quant::kQ4_0 || format == quant::kQ4_1 ||
         format == quant::kQ5_0 || format == quant::kQ5_1 || format == quant::kQ4_K ||
         format == quant::kQ6_K;
}

// Q4_K's 6-bit scale sc and min mn of sub-block j (0..7) from its 12 packed bytes
// (kernels/quant.h). Internal linkage: each ISA file compiles its own copy (no -mavx2 code reaches
// the scalar path).
static inline void q4k_scale_min(const uint8_t* scales, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = scales[j] & 63;
    mn = scales[j + 4] & 63;
  } else {
    sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
    mn = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// M rows of K activations quantized by step 1 with blocks of `block` elements.
struct Int8Rows {
  const int8_t* q;       // [M, K]
  const float* scale;    // [M, K / block]: dx
  const int32_t* sum32;  // [M, K / 32]
  int64_t K;
  int64_t block;
};

// Step 1 for rows x[m * x_stride ..][0 .. K), m in [0, M): q [M, K], scale [M, K / block],
// sum32 [M, K / 32]. K is a multiple of `block` (a multiple of 32).
void quantize_rows_int8(const float* x, int64_t x_stride, int64_t M, int64_t K, int64_t block,
                        int8_t* q, float* scale, int32_t* sum32);

// One thread's share: y[m, n] for m in [0, x.M), n in [n_begin, n_end).
struct Int8DotTask {
  Int8Rows x;
  int64_t M;
  const uint8_t* w;  // [N, K / E] blocks, row n at w + n * w_row_bytes
  int64_t w_row_bytes;
  int format;  // has_int8_dot(format)
  // Q8_0 only: w holds tiles of 8 rows (kernels/q8_0_tiles.h; w_row_bytes still the bytes of
  // one row, n_begin and n_end multiples of 8), not rows.
  bool q8_0_tiles;
  float* y;    // [M, N], row stride y_stride
  int64_t y_stride;
  int64_t n_begin, n_end;
};

void int8_dot_scalar(const Int8DotTask* task);
// AVX2 (+FMA, F16C). CPUs with AVX-512 run it too: the arithmetic is the same on every path.
void int8_dot_avx2(const Int8DotTask* task);

}  // namespace bx::cpu
