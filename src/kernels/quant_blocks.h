// The block layouts of the quantized weight formats, as plain constants: the one place their
// sizes are written. No library headers, so the ISA translation units (kernels/cpu/*_avx*.cpp)
// may include it. kernels/quant.h is the registry built on it (names, dtypes, dequantization).
#pragma once

#include <cstdint>

namespace bx::quant {

// Block formats by id (the index into kBlockBytes; the kernels switch on it).
enum BlockFormatId : int { kQ8_0 = 0, kQ4_0 = 1, kQ4_1 = 2, kBlockFormatCount = 3 };

// Elements per block, the same for every format above: the kernels' canonical lane layout
// (kernels/lanes.h) takes block b as steps 2b and 2b + 1 of 16 lanes. A format with other blocks
// (the K-quants' 256) needs its own kernel steps, not just an entry here.
inline constexpr int64_t kBlockElements = 32;

// Bytes per block:  Q8_0: f16 d, int8 q[32];  Q4_0: f16 d, uint8 qs[16];  Q4_1: f16 d, f16 m,
// uint8 qs[16].
inline constexpr int64_t kBlockBytes[kBlockFormatCount] = {34, 18, 20};

// The scalar reference of one block of `format` (kernels/quant.h gives the element math):
// block -> out[0 .. kBlockElements) f32.
void dequantize_block(int format, const uint8_t* block, float* out);

}  // namespace bx::quant
