// Block-quantized weight formats (ggml's Q8_0, Q4_0, Q4_1, exactly as they lie in a GGUF file)
// and the scalar reference of their dequantization.
//
// A row of K weights (K a multiple of 32) is K / 32 blocks; block b holds elements [32b, 32b+32):
//   Q8_0 (34 bytes): f16 d, int8 q[32]                x[j] = d * q[j]
//   Q4_0 (18 bytes): f16 d, uint8 qs[16]              x[j] = d * ((qs[j] & 15) - 8),
//                                                     x[j+16] = d * ((qs[j] >> 4) - 8)
//   Q4_1 (20 bytes): f16 d, f16 m, uint8 qs[16]       x[j] = d * (qs[j] & 15) + m,
//                                                     x[j+16] = d * (qs[j] >> 4) + m
// in f32: d and m widened exactly from f16, the integer converted exactly, the product rounded,
// then (Q4_1) the sum rounded; no fma. These are the values gguf::dequantize_to_f32 gives at load
// time, so a kernel that dequantizes on the fly with these steps sees the same f32 weights.
// (Bit for bit, except that a NaN scale gives a NaN whose payload is not specified: with two NaN
// operands the result depends on the operand order a compiler picks. Real files have none.)
// In the canonical lane layout (kernels/lanes.h) block b is steps t = 2b and 2b + 1: for Q4_0 /
// Q4_1 step 2b is the 16 low nibbles and step 2b + 1 the 16 high nibbles.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace bx::quant {

inline constexpr int64_t kBlockElements = 32;

// True for Q8_0, Q4_0 and Q4_1.
bool is_block_format(DType t);
// Bytes of one block (34, 18, 20); throws bx::Error for a type that is not a block format.
int64_t block_bytes(DType t);
// Bytes of `elements` weights (a multiple of 32) in format t; throws bx::Error otherwise.
int64_t bytes_for(DType t, int64_t elements);

// Scalar reference: `blocks` (k / 32 blocks of format t) -> out[0 .. k) f32.
void dequantize_row(DType t, const void* blocks, int64_t k, float* out);

}  // namespace bx::quant
