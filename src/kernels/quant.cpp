// The block-format registry's lookups and the scalar dequantization of every block format (the
// element math of quant.h): the one copy the loader and the scalar kernels use.
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

// The 4-bit value of element e of a 32-element block (Q4_0 / Q4_1 / Q5_0 / Q5_1 qs).
int nibble32(const uint8_t* qs, int e) {
  return (qs[e % 16] >> (4 * (e / 16))) & 15;
}

// Bit e of the u32 little-endian qh of Q5_0 / Q5_1, as the fifth bit (16 or 0).
int high_bit32(const uint8_t* qh, int e) {
  return ((qh[e / 8] >> (e % 8)) & 1) << 4;
}

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
void scale_min_k4(const uint8_t* scales, int j, int* sc, int* mn) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *mn = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
    *mn = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Q2_K / Q3_K: the 2-bit value of element e from qs[64].
int crumb256(const uint8_t* qs, int e) {
  return (qs[32 * (e / 128) + e % 32] >> (2 * (e / 32 % 4))) & 3;
}

void dequantize_q2_k(const uint8_t* b, float* out) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = f16_to_f32(load_u16(b + 80));
  const float dmin = f16_to_f32(load_u16(b + 82));
  for (int e = 0; e < 256; ++e) {
    const int s = scales[e / 16];
    const float dl = d * static_cast<float>(s & 15);
    const float ml = dmin * static_cast<float>(s >> 4);
    out[e] = dl * static_cast<float>(crumb256(qs, e)) - ml;
  }
}

void dequantize_q3_k(const uint8_t* b, float* out) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* scales = b + 96;
  const float d = f16_to_f32(load_u16(b + 108));
  for (int e = 0; e < 256; ++e) {
    const int i = e / 16;
    const int s6 =
        ((scales[i % 8] >> (4 * (i / 8))) & 15) | (((scales[8 + i % 4] >> (2 * (i / 4))) & 3) << 4);
    const float dl = d * static_cast<float>(s6 - 32);
    const int hbit = (hmask[e % 32] >> (e / 32)) & 1;
    out[e] = dl * static_cast<float>(crumb256(qs, e) - (hbit ? 0 : 4));
  }
}

// Q4_K (qh == nullptr) and Q5_K.
void dequantize_q45_k(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* out) {
  const float d = f16_to_f32(load_u16(b));
  const float dmin = f16_to_f32(load_u16(b + 2));
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    scale_min_k4(b + 4, j, &sc, &mn);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) {
      int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
      if (qh != nullptr) q |= ((qh[l] >> j) & 1) << 4;
      out[32 * j + l] = d1 * static_cast<float>(q) - m1;
    }
  }
}

void dequantize_q6_k(const uint8_t* b, float* out) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_to_f32(load_u16(b + 208));
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = e % 128;
    const int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 15;
    const int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
    const float dl = d * static_cast<float>(scales[e / 16]);
    out[e] = dl * static_cast<float>((lo | (hi << 4)) - 32);
  }
}

void dequantize_iq4_xs(const uint8_t* b, float* out) {
  const float d = f16_to_f32(load_u16(b));
  const int scales_h = load_u16(b + 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 8; ++j) {
    const int s6 = ((scales_l[j / 2] >> (4 * (j % 2))) & 15) | (((scales_h >> (2 * j)) & 3) << 4);
    const float dl = d * static_cast<float>(s6 - 32);
    for (int l = 0; l < 32; ++l) {
      const int q = (qs[16 * j + l % 16] >> (4 * (l / 16))) & 15;
      out[32 * j + l] = dl * static_cast<float>(kIq4Values[q]);
    }
  }
}

}  // namespace

void dequantize_block(int format, const uint8_t* b, float* out) {
  switch (format) {
    case kQ8_0: {
      const float d = f16_to_f32(load_u16(b));
      for (int e = 0; e < 32; ++e) out[e] = d * static_cast<float>(static_cast<int8_t>(b[2 + e]));
      return;
    }
    case kQ4_0: {
      const float d = f16_to_f32(load_u16(b));
      for (int e = 0; e < 32; ++e) out[e] = d * static_cast<float>(nibble32(b + 2, e) - 8);
      return;
    }
    case kQ4_1: {
      const float d = f16_to_f32(load_u16(b)), m = f16_to_f32(load_u16(b + 2));
      for (int e = 0; e < 32; ++e) {
        const float p =
            d * static_cast<float>(nibble32(b + 4, e));  // rounded product, then the add
        out[e] = p + m;
      }
      return;
    }
    case kQ5_0: {
      const float d = f16_to_f32(load_u16(b));
      for (int e = 0; e < 32; ++e) {
        out[e] = d * static_cast<float>((nibble32(b + 6, e) | high_bit32(b + 2, e)) - 16);
      }
      return;
    }
    case kQ5_1: {
      const float d = f16_to_f32(load_u16(b)), m = f16_to_f32(load_u16(b + 2));
      for (int e = 0; e < 32; ++e) {
        const float p = d * static_cast<float>(nibble32(b + 8, e) | high_bit32(b + 4, e));
        out[e] = p + m;
      }
      return;
    }
    case kQ2_K:
      dequantize_q2_k(b, out);
      return;
    case kQ3_K:
      dequantize_q3_k(b, out);
      return;
    case kQ4_K:
      dequantize_q45_k(b, nullptr, b + 16, out);
      return;
    case kQ5_K:
      dequantize_q45_k(b, b + 16, b + 48, out);
      return;
    case kQ6_K:
      dequantize_q6_k(b, out);
      return;
    case kIQ4_NL: {
      const float d = f16_to_f32(load_u16(b));
      for (int e = 0; e < 32; ++e) out[e] = d * static_cast<float>(kIq4Values[nibble32(b + 2, e)]);
      return;
    }
    default:  // kIQ4_XS
      dequantize_iq4_xs(b, out);
      return;
  }
}

bool is_block_format(DType t) {
  return find_block_format(t) != nullptr;
}

std::string block_format_names() {
  std::string names;
  for (const BlockFormat& f : kBlockFormats)
    names += (names.empty() ? "" : ", ") + std::string(f.name);
  return names;
}

const BlockFormat& block_format(DType t) {
  if (const BlockFormat* f = find_block_format(t)) return *f;
  throw Error("dtype " + std::string(dtype_name(t)) + " is not a block format: expected " +
              block_format_names());
}

int64_t block_bytes(DType t) {
  return block_format(t).block_bytes;
}

int64_t block_elements(DType t) {
  return block_format(t).block_elements;
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
