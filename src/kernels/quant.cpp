// Scalar dequantization of Q8_0 / Q4_0 / Q4_1 blocks (the element math of quant.h).
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

bool is_block_format(DType t) {
  return t == DType::q8_0 || t == DType::q4_0 || t == DType::q4_1;
}

int64_t block_bytes(DType t) {
  switch (t) {
    case DType::q8_0:
      return 34;
    case DType::q4_0:
      return 18;
    case DType::q4_1:
      return 20;
    default:
      break;
  }
  throw Error("dtype " + std::string(dtype_name(t)) +
              " is not a block format: expected Q8_0, Q4_0 or Q4_1");
}

int64_t bytes_for(DType t, int64_t elements) {
  BX_CHECK(elements >= 0 && elements % kBlockElements == 0,
           std::to_string(elements) + " " + std::string(dtype_name(t)) +
               " weights: expected a non-negative multiple of the block size 32");
  return elements / kBlockElements * block_bytes(t);
}

void dequantize_row(DType t, const void* blocks, int64_t k, float* out) {
  const int64_t bytes = block_bytes(t);
  const auto* src = static_cast<const uint8_t*>(blocks);
  for (int64_t b = 0; b < k / kBlockElements; ++b, src += bytes, out += kBlockElements) {
    const float d = f16_to_f32(load_u16(src));
    if (t == DType::q8_0) {
      for (int j = 0; j < 32; ++j) out[j] = d * static_cast<float>(static_cast<int8_t>(src[2 + j]));
    } else if (t == DType::q4_0) {
      for (int j = 0; j < 16; ++j) {
        out[j] = d * static_cast<float>(static_cast<int>(src[2 + j] & 15u) - 8);
        out[j + 16] = d * static_cast<float>(static_cast<int>(src[2 + j] >> 4) - 8);
      }
    } else {
      const float m = f16_to_f32(load_u16(src + 2));
      for (int j = 0; j < 16; ++j) {
        const float lo = d * static_cast<float>(src[4 + j] & 15u);
        const float hi = d * static_cast<float>(src[4 + j] >> 4);
        out[j] = lo + m;
        out[j + 16] = hi + m;
      }
    }
  }
}

}  // namespace bx::quant
