// Block-quantized weight formats (ggml's Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, the K-quants Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K and the non-linear IQ4_NL, IQ4_XS, exactly as they lie in a GGUF file): the
// registry the loader (model/gguf_dequant.cpp, model/loader.cpp) and the kernels
// (kernels/matmul.cpp, kernels/cpu/, backend/) all read, and the scalar reference of their
// dequantization. The byte layouts are in kernels/quant_blocks.h.
//
// A row of K weights (K a multiple of the block size E) is K / E blocks; block b holds elements
// [E b, E b + E). Below, q is an unsigned bit field and e the element index in the block.
//   Q8_0 (E 32):  x[e] = d * q8[e]                                           (q8 signed)
//   Q4_0 (E 32):  x[e] = d * (q4[e] - 8)          q4[e] = qs[e % 16] >> (4 * (e / 16)) & 15
//   Q4_1 (E 32):  x[e] = d * q4[e] + m
//   Q5_0 (E 32):  x[e] = d * (q5[e] - 16)         q5[e] = q4[e] | (bit e of qh, as u32 LE) << 4
//   Q5_1 (E 32):  x[e] = d * q5[e] + m
//   Q2_K (E 256): s = scales[e / 16]:  x[e] = (d * (s & 15)) * q2[e] - dmin * (s >> 4)
//                 q2[e] = qs[32 (e / 128) + e % 32] >> (2 * (e / 32 % 4)) & 3
//   Q3_K (E 256): x[e] = (d * (s6[e / 16] - 32)) * (q2[e] - 4 * (1 - hbit[e]))
//                 q2 as Q2_K's (from qs), hbit[e] = hmask[e % 32] >> (e / 32) & 1, and the 6-bit
//                 s6[i] = (scales[i % 8] >> (4 * (i / 8)) & 15) | (scales[8 + i % 4] >> (2 * (i /
//                 4)) & 3) << 4
//   Q4_K (E 256): j = e / 32:  x[e] = (d * sc[j]) * q4k[e] - dmin * mn[j]
//                 q4k[e] = qs[32 (e / 64) + e % 32] >> (4 * (j % 2)) & 15, and the 6-bit
//                 sc[j] = j < 4 ? scales[j] & 63 : (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4
//                 mn[j] = j < 4 ? scales[j + 4] & 63 : (scales[j + 4] >> 4) | (scales[j] >> 6) << 4
//   Q5_K (E 256): as Q4_K with q5k[e] = q4k[e] | (qh[e % 32] >> j & 1) << 4
//   Q6_K (E 256): x[e] = (d * scales[e / 16]) * (q6[e] - 32)                   (scales signed)
//                 q6[e] = (ql[64 (e / 128) + e % 64] >> (4 * (e % 128 / 64)) & 15)
//                       | (qh[32 (e / 128) + e % 32] >> (2 * (e % 128 / 32)) & 3) << 4
//   IQ4_NL (E 32):  x[e] = d * kIq4Values[q4[e]]                  (q4 as Q4_0's, the table signed)
//   IQ4_XS (E 256): j = e / 32:  x[e] = (d * (s6[j] - 32)) * kIq4Values[q4x[e]]
//                 q4x[e] = qs[16 j + e % 16] >> (4 * (e % 32 / 16)) & 15, and the 6-bit
//                 s6[j] = (scales_l[j / 2] >> (4 * (j % 2)) & 15) | (scales_h >> (2 j) & 3) << 4
// in f32, each operation rounded in the order written (products before the add or subtract; no
// fma): d, dmin and m widened exactly from f16, the integers converted exactly. These are the
// steps of ggml's dequantize_row_* and of the gguf package's numpy code, and the values
// gguf::dequantize_to_f32 gives at load time (it calls dequantize_row), so a kernel that
// dequantizes on the fly with these steps sees the same f32 weights. (Bit for bit, except that a
// NaN scale gives a NaN whose payload is not specified: with two NaN operands the result depends
// on the operand order a compiler picks. Real files have none.) In the canonical lane layout
// (kernels/lanes.h) the elements of a row are taken in order, 16 per step.
//
// Adding a format: its sizes in quant_blocks.h, its element math in quant.cpp's
// dequantize_block, an entry in kBlockFormats below, and kernel steps in kernels/cpu/.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "kernels/quant_blocks.h"

namespace bx::quant {

struct BlockFormat {
  DType dtype;
  BlockFormatId id;        // the kernels' format id
  std::string_view name;   // as ggml and GGUF name it
  int64_t block_elements;  // weights per block
  int64_t block_bytes;     // bytes per block
};

inline constexpr BlockFormat kBlockFormats[] = {
    {DType::q8_0, kQ8_0, "Q8_0", kBlockElements[kQ8_0], kBlockBytes[kQ8_0]},
    {DType::q4_0, kQ4_0, "Q4_0", kBlockElements[kQ4_0], kBlockBytes[kQ4_0]},
    {DType::q4_1, kQ4_1, "Q4_1", kBlockElements[kQ4_1], kBlockBytes[kQ4_1]},
    {DType::q5_0, kQ5_0, "Q5_0", kBlockElements[kQ5_0], kBlockBytes[kQ5_0]},
    {DType::q5_1, kQ5_1, "Q5_1", kBlockElements[kQ5_1], kBlockBytes[kQ5_1]},
    {DType::q2_k, kQ2_K, "Q2_K", kBlockElements[kQ2_K], kBlockBytes[kQ2_K]},
    {DType::q3_k, kQ3_K, "Q3_K", kBlockElements[kQ3_K], kBlockBytes[kQ3_K]},
    {DType::q4_k, kQ4_K, "Q4_K", kBlockElements[kQ4_K], kBlockBytes[kQ4_K]},
    {DType::q5_k, kQ5_K, "Q5_K", kBlockElements[kQ5_K], kBlockBytes[kQ5_K]},
    {DType::q6_k, kQ6_K, "Q6_K", kBlockElements[kQ6_K], kBlockBytes[kQ6_K]},
    {DType::iq4_nl, kIQ4_NL, "IQ4_NL", kBlockElements[kIQ4_NL], kBlockBytes[kIQ4_NL]},
    {DType::iq4_xs, kIQ4_XS, "IQ4_XS", kBlockElements[kIQ4_XS], kBlockBytes[kIQ4_XS]},
};

// The format of dtype t, or nullptr if t is not a block format.
constexpr const BlockFormat* find_block_format(DType t) {
  for (const BlockFormat& f : kBlockFormats) {
    if (f.dtype == t) return &f;
  }
  return nullptr;
}

// True for the formats above.
bool is_block_format(DType t);
// The format of t; throws bx::Error for a type that is not a block format.
const BlockFormat& block_format(DType t);
// Bytes of one block (34, 18, ...); throws bx::Error for a type that is not a block format.
int64_t block_bytes(DType t);
// Elements of one block (32 or 256); throws bx::Error for a type that is not a block format.
int64_t block_elements(DType t);
// "Q8_0, Q4_0, ...": the block formats' names, for error messages.
std::string block_format_names();
// Bytes of `elements` weights (a multiple of the block size) in format t; throws bx::Error
// otherwise.
int64_t bytes_for(DType t, int64_t elements);

// Scalar reference: `blocks` (k / block-size blocks of format t) -> out[0 .. k) f32.
void dequantize_row(DType t, const void* blocks, int64_t k, float* out);

}  // namespace bx::quant
