#include "kernels/q8_0_tiles.h"

#include <cstring>

namespace bx::quant {

void q8_0_to_tiles(const uint8_t* rows, int64_t N, int64_t K, uint8_t* tiles) {
  const int64_t blocks = K / 32, row_bytes = blocks * 34;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = n % kQ8TileRows;
    uint8_t* tile = tiles + (n / kQ8TileRows) * q8_0_tile_stride(K);
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* block = rows + n * row_bytes + b * 34;
      uint8_t* at = tile + b * kQ8TileBlockBytes;
      std::memcpy(at + 2 * r, block, 2);
      std::memcpy(at + 16 + 32 * r, block + 2, 32);
    }
  }
}

void q8_0_tiled_row(const uint8_t* tiles, int64_t stride, int64_t n, int64_t K, uint8_t* out) {
  const int64_t r = n % kQ8TileRows;
  const uint8_t* tile = tiles + (n / kQ8TileRows) * q8_0_tile_stride(stride);
  for (int64_t b = 0; b < K / 32; ++b) {
    const uint8_t* at = tile + b * kQ8TileBlockBytes;
    std::memcpy(out + b * 34, at + 2 * r, 2);
    std::memcpy(out + b * 34 + 2, at + 16 + 32 * r, 32);
  }
}

}  // namespace bx::quant
