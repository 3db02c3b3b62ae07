// Block-quantized weight formats (ggml's Q8_0, Q4_0, Q4_1, exactly as they lie in a GGUF file):
// the registry the loader (model/gguf_dequant.cpp, model/loader.cpp) and the kernels
// (kernels/matmul.cpp, kernels/cpu/, backend/) all read, and the scalar reference of their
// dequantization. The sizes themselves are in kernels/quant_blocks.h.
//
// A row of K weights (K a multiple of the block size, 32) is K / 32 blocks; block b holds
// elements [32b, 32b+32):
//   Q8_0 (34 bytes): f16 d, int8 q[32]                x[j] = d * q[j]
//   Q4_0 (18 bytes): f16 d, uint8 qs[16]              x[j] = d * ((qs[j] & 15) - 8),
//                                                     x[j+16] = d * ((qs[j] >> 4) - 8)
//   Q4_1 (20 bytes): f16 d, f16 m, uint8 qs[16]       x[j] = d * (qs[j] & 15) + m,
//                                                     x[j+16] = d * (qs[j] >> 4) + m
// in f32: d and m widened exactly from f16, the integer converted exactly, the product rounded,
// then (Q4_1) the sum rounded; no fma. These are the values gguf::dequantize_to_f32 gives at load
// time (it calls dequantize_row), so a kernel that dequantizes on the fly with these steps sees
// the same f32 weights. (Bit for bit, except that a NaN scale gives a NaN whose payload is not
// specified: with two NaN operands the result depends on the operand order a compiler picks.
// Real files have none.) In the canonical lane layout (kernels/lanes.h) block b is steps t = 2b
// and 2b + 1: for Q4_0 / Q4_1 step 2b is the 16 low nibbles and step 2b + 1 the 16 high nibbles.
//
// Adding a format: its sizes in quant_blocks.h, its element math in quant.cpp's
// dequantize_block, an entry in kBlockFormats below, and kernel steps in kernels/cpu/.
#pragma once

#include <cstdint>
#include <span>
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
    {DType::q8_0, kQ8_0, "Q8_0", kBlockElements, kBlockBytes[kQ8_0]},
    {DType::q4_0, kQ4_0, "Q4_0", kBlockElements, kBlockBytes[kQ4_0]},
    {DType::q4_1, kQ4_1, "Q4_1", kBlockElements, kBlockBytes[kQ4_1]},
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
// Bytes of one block (34, 18, 20); throws bx::Error for a type that is not a block format.
int64_t block_bytes(DType t);
// Bytes of `elements` weights (a multiple of the block size) in format t; throws bx::Error
// otherwise.
int64_t bytes_for(DType t, int64_t elements);

// Scalar reference: `blocks` (k / block-size blocks of format t) -> out[0 .. k) f32.
void dequantize_row(DType t, const void* blocks, int64_t k, float* out);

}  // namespace bx::quant
