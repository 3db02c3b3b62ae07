// The block-format registry's lookups and the scalar dequantization of Q8_0 / Q4_0 / Q4_1 blocks
// (the element math of quant.h): the one copy the loader and the scalar kernels use.
#include "kernels/quant.h"

#include <cstring>
#include <string>

#include "core/error.h"
#include "core/half.h"

namespace bx::quant {
namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

void dequantize_block(int format, const uint8_t* b, float* out) {
  const float d = f16_to_f32(load_u16(b));
  if (format == kQ8_0) {
    for (int j = 0; j < 32; ++j) out[j] = d * static_cast<float>(static_cast<int8_t>(b[2 + j]));
  } else if (format == kQ4_0) {
    for (int j = 0; j < 16; ++j) {
      out[j] = d * static_cast<float>(static_cast<int>(b[2 + j] & 15u) - 8);
      out[j + 16] = d * static_cast<float>(static_cast<int>(b[2 + j] >> 4) - 8);
    }
  } else {  // Q4_1
    const float m = f16_to_f32(load_u16(b + 2));
    for (int j = 0; j < 16; ++j) {
      const float lo = d * static_cast<float>(b[4 + j] & 15u);  // rounded product, then the add
      const float hi = d * static_cast<float>(b[4 + j] >> 4);
      out[j] = lo + m;
      out[j + 16] = hi + m;
    }
  }
}

bool is_block_format(DType t) {
  return find_block_format(t) != nullptr;
}

const BlockFormat& block_format(DType t) {
  if (const BlockFormat* f = find_block_format(t)) return *f;
  std::string names;
  for (const BlockFormat& f : kBlockFormats)
    names += (names.empty() ? "" : ", ") + std::string(f.name);
  throw Error("dtype " + std::string(dtype_name(t)) + " is not a block format: expected " + names);
}

int64_t block_bytes(DType t) {
  return block_format(t).block_bytes;
}

int64_t bytes_for(DType t, int64_t elements) {
  const BlockFormat& f = block_format(t);
  BX_CHECK(elements >= 0 && elements % f.block_elements == 0,
           std::to_string(elements) + " " + std::string(dtype_name(t)) +
               " weights: expected a non-negative multiple of the block size " +
               std::to_string(f.block_elements));
  return elements / f.block_elements * f.block_bytes;
}

void dequantize_row(DType t, const void* blocks, int64_t k, float* out) {
  const BlockFormat& f = block_format(t);
  const auto* src = static_cast<const uint8_t*>(blocks);
  for (int64_t b = 0; b < k / f.block_elements; ++b) {
    dequantize_block(f.id, src + b * f.block_bytes, out + b * f.block_elements);
  }
}

}  // namespace bx::quant
