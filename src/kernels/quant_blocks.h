// The block layouts of the quantized weight formats, as plain constants: the one place their
// sizes are written. No library headers, so the ISA translation units (kernels/cpu/*_avx*.cpp)
// may include it. kernels/quant.h is the registry built on it (names, dtypes, element math).
#pragma once

#include <cstdint>

namespace bx::quant {

// Block formats by id (the index into the tables below; the kernels switch on it).
enum BlockFormatId : int {
  kQ8_0 = 0,
  kQ4_0 = 1,
  kQ4_1 = 2,
  kQ5_0 = 3,
  kQ5_1 = 4,
  kQ2_K = 5,
  kQ3_K = 6,
  kQ4_K = 7,
  kQ5_K = 8,
  kQ6_K = 9,
  kIQ4_NL = 10,
  kIQ4_XS = 11,
  kBlockFormatCount = 12
};

// Elements per block: 32 for the simple formats and IQ4_NL, 256 (one super-block) for the
// K-quants and IQ4_XS. In the
// canonical lane layout (kernels/lanes.h) the block b of a format with E elements per block is
// the steps [b E / 16, (b + 1) E / 16) in element order.
inline constexpr int64_t kBlockElements[kBlockFormatCount] = {32,  32,  32,  32,  32, 256,
                                                              256, 256, 256, 256, 32, 256};
// The largest of kBlockElements: a buffer of this many floats holds any block.
inline constexpr int64_t kMaxBlockElements = 256;
// Every block size is a multiple of this (a row of K weights needs K to be one at least).
inline constexpr int64_t kMinBlockElements = 32;

// Bytes per block (ggml's block structs, in the order the fields lie in memory):
//   Q8_0  34: f16 d, int8 q[32]
//   Q4_0  18: f16 d, uint8 qs[16]
//   Q4_1  20: f16 d, f16 m, uint8 qs[16]
//   Q5_0  22: f16 d, uint8 qh[4], uint8 qs[16]
//   Q5_1  24: f16 d, f16 m, uint8 qh[4], uint8 qs[16]
//   Q2_K  84: uint8 scales[16], uint8 qs[64], f16 d, f16 dmin
//   Q3_K 110: uint8 hmask[32], uint8 qs[64], uint8 scales[12], f16 d
//   Q4_K 144: f16 d, f16 dmin, uint8 scales[12], uint8 qs[128]
//   Q5_K 176: f16 d, f16 dmin, uint8 scales[12], uint8 qh[32], uint8 qs[128]
//   Q6_K 210: uint8 ql[128], uint8 qh[64], int8 scales[16], f16 d
//   IQ4_NL 18: f16 d, uint8 qs[16]
//   IQ4_XS 136: f16 d, u16 scales_h, uint8 scales_l[4], uint8 qs[128]
inline constexpr int64_t kBlockBytes[kBlockFormatCount] = {34,  18,  20,  22,  24, 84,
                                                           110, 144, 176, 210, 18, 136};

// The 16 values an IQ4_NL / IQ4_XS nibble stands for (ggml's kvalues_iq4nl).
inline constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// The scalar reference of one block of `format` (kernels/quant.h gives the element math):
// block -> out[0 .. kBlockElements[format]) f32.
void dequantize_block(int format, const uint8_t* block, float* out);

}  // namespace bx::quant
