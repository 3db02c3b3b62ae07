// Q8_0 weights in tiles of 8 rows, the layout the int8-dot kernel (kernel version cpu-k2,
// kernels/cpu/int8_dot_isa.h) reads as one sequential stream. Same bytes, same values, same
// bits: only where each byte lives changes.
//
// A GGUF Q8_0 matrix [N, K] (N a multiple of 8) is N rows of K / 32 blocks of 34 bytes (an f16
// scale d, then 32 int8 quants). Tiled, rows 8t .. 8t + 7 form tile t, which occupies the bytes
// those 8 rows occupied (8 * row_bytes from the start of tile t). Within a tile, block b is 272
// bytes at b * 272:
//   [0, 16)                 the 8 rows' scales d, row r's at 2r
//   [16 + 32r, 48 + 32r)    row r's 32 quants
// Because a tile of 8 rows keeps the size of 8 rows, the columns [k0, k1) of a tiled matrix
// (k0 a multiple of 32) start k0 / 32 * 272 bytes after its start, with tile t still
// 8 * row_bytes(K) after tile 0, as a slice of the row layout starts k0 / 32 * 34 bytes in.
#pragma once

#include <cstdint>

namespace bx::quant {

inline constexpr int64_t kQ8TileRows = 8;
inline constexpr int64_t kQ8TileBlockBytes = kQ8TileRows * (2 + 32);  // 272

// Bytes from one tile to the next for rows of `stride` elements (a multiple of 32).
constexpr int64_t q8_0_tile_stride(int64_t stride) {
  return kQ8TileRows * (stride / 32) * 34;
}

// rows: N GGUF Q8_0 rows of K elements, densely; tiles: the same N rows tiled (N % 8 == 0,
// K % 32 == 0). The buffers must not overlap.
void q8_0_to_tiles(const uint8_t* rows, int64_t N, int64_t K, uint8_t* tiles);

// Row n of a tiled matrix whose rows have `stride` elements, its first K / 32 blocks, back in
// the GGUF block layout (34 bytes a block) at `out`.
void q8_0_tiled_row(const uint8_t* tiles, int64_t stride, int64_t n, int64_t K, uint8_t* out);

}  // namespace bx::quant
