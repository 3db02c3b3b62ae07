// AVX2 dequantization of one block of the formats without a register kernel of their own (Q5_0,
// Q5_1, the K-quants Q2_K .. Q6_K, IQ4_NL and IQ4_XS) into f32, for the fused and panel paths of
// matmul_avx2.cpp and matmul_avx512.cpp (compiled with -mavx2 -mfma -mf16c).
//
// Each group of 8 elements is one ymm: the bytes holding their bit fields widened to 32-bit
// lanes (vpmovzxbd), shifted and masked into the integer q of kernels/quant.h, converted exactly
// (vcvtdq2ps; for IQ4_NL / IQ4_XS looked up in the f32 table of kIq4Values), then multiplied by the
// group's scale and, for the formats with a min, added to or subtracted from; the scale and min
// products are scalar f32 multiplies. Every step is the one rounded IEEE operation quant.h writes,
// so the values are the scalar reference's bits. A group of 8 never straddles two scales (the
// K-quants' scales cover 16 or 32 elements).
//
// Only <immintrin.h> and plain headers are included, and everything but the entry point has
// internal linkage (see matmul_isa.h).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/matmul_isa.h"

namespace bx::cpu {
namespace {

float f16_at(const uint8_t* p) {
  uint16_t bits;
  __builtin_memcpy(&bits, p, sizeof bits);
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)));
}

// Bytes p[0 .. 8) widened to 8 unsigned 32-bit lanes.
__m256i bytes8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// (v >> shift) & mask in every lane.
__m256i field(__m256i v, int shift, int mask) {
  return _mm256_and_si256(_mm256_srl_epi32(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi32(mask));
}

// out[0 .. 8) = scale * float(q)
void store_scaled(float* out, __m256i q, float scale) {
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(q)));
}

// out[0 .. 8) = scale * float(q) - min   (the product rounded, then the subtraction)
void store_scaled_minus(float* out, __m256i q, float scale, float min) {
  const __m256 p = _mm256_mul_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(q));
  _mm256_storeu_ps(out, _mm256_sub_ps(p, _mm256_set1_ps(min)));
}

// Q5_0 (has_min false) and Q5_1: q5[e] = nibble | (bit e of qh) << 4.
void q5(const uint8_t* b, bool has_min, float* out) {
  const float d = f16_at(b);
  const float m = has_min ? f16_at(b + 2) : 0.0f;
  const uint8_t* qh = b + (has_min ? 4 : 2);
  const uint8_t* qs = qh + 4;
  int32_t bits;
  __builtin_memcpy(&bits, qh, sizeof bits);
  const __m256i h = _mm256_set1_epi32(bits);
  for (int g = 0; g < 4; ++g) {  // elements [8g, 8g + 8)
    const __m256i lanes =
        _mm256_add_epi32(_mm256_set1_epi32(8 * g), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i high = _mm256_and_si256(_mm256_srlv_epi32(h, lanes), _mm256_set1_epi32(1));
    const __m256i q = _mm256_or_si256(field(bytes8(qs + 8 * (g % 2)), 4 * (g / 2), 15),
                                      _mm256_slli_epi32(high, 4));
    if (has_min) {
      const __m256 p = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(q));
      _mm256_storeu_ps(out + 8 * g, _mm256_add_ps(p, _mm256_set1_ps(m)));
    } else {
      store_scaled(out + 8 * g, _mm256_sub_epi32(q, _mm256_set1_epi32(16)), d);
    }
  }
}

// Q2_K: element e = 128 h + 32 s + l; q = qs[32 h + l] >> 2 s & 3; scale byte e / 16.
void q2_k(const uint8_t* b, float* out) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = f16_at(b + 80), dmin = f16_at(b + 82);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int g = 0; g < 4; ++g) {
        const int e = 128 * h + 32 * s + 8 * g;
        const int sc = scales[e / 16];
        const float dl = d * static_cast<float>(sc & 15);
        const float ml = dmin * static_cast<float>(sc >> 4);
        store_scaled_minus(out + e, field(bytes8(qs + 32 * h + 8 * g), 2 * s, 3), dl, ml);
      }
    }
  }
}

// Q3_K: as Q2_K's q, minus 4 where the hmask bit e / 32 of byte e % 32 is clear; 6-bit scales.
void q3_k(const uint8_t* b, float* out) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* scales = b + 96;
  const float d = f16_at(b + 108);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int g = 0; g < 4; ++g) {
        const int e = 128 * h + 32 * s + 8 * g;
        const int i = e / 16;
        const int s6 = ((scales[i % 8] >> (4 * (i / 8))) & 15) |
                       (((scales[8 + i % 4] >> (2 * (i / 4))) & 3) << 4);
        const float dl = d * static_cast<float>(s6 - 32);
        const __m256i low = field(bytes8(qs + 32 * h + 8 * g), 2 * s, 3);
        const __m256i clear =
            _mm256_xor_si256(field(bytes8(hmask + 8 * g), e / 32, 1), _mm256_set1_epi32(1));
        store_scaled(out + e, _mm256_sub_epi32(low, _mm256_slli_epi32(clear, 2)), dl);
      }
    }
  }
}

// Q4_K (qh == nullptr) and Q5_K: sub-block j = e / 32 has 6-bit scale sc[j] and min mn[j].
void q45_k(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* out) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* scales = b + 4;
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    if (j < 4) {
      sc = scales[j] & 63;
      mn = scales[j + 4] & 63;
    } else {
      sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
      mn = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(mn);
    for (int g = 0; g < 4; ++g) {
      __m256i q = field(bytes8(qs + 32 * (j / 2) + 8 * g), 4 * (j % 2), 15);
      if (qh != nullptr)
        q = _mm256_or_si256(q, _mm256_slli_epi32(field(bytes8(qh + 8 * g), j, 1), 4));
      store_scaled_minus(out + 32 * j + 8 * g, q, d1, m1);
    }
  }
}

// Q6_K: element e = 128 h + 32 k + l: low 4 bits from ql[64 h + 32 (k % 2) + l] >> 4 (k / 2),
// high 2 bits from qh[32 h + l] >> 2 k; signed scale byte e / 16.
void q6_k(const uint8_t* b, float* out) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_at(b + 208);
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      for (int g = 0; g < 4; ++g) {
        const int e = 128 * h + 32 * k + 8 * g;
        const float dl = d * static_cast<float>(scales[e / 16]);
        const __m256i lo = field(bytes8(ql + 64 * h + 32 * (k % 2) + 8 * g), 4 * (k / 2), 15);
        const __m256i hi = field(bytes8(qh + 32 * h + 8 * g), 2 * k, 3);
        const __m256i q = _mm256_or_si256(lo, _mm256_slli_epi32(hi, 4));
        store_scaled(out + e, _mm256_sub_epi32(q, _mm256_set1_epi32(32)), dl);
      }
    }
  }
}

// kIq4Values as f32 (exact small integers), for the lookup below.
struct Iq4Table {
  float v[16];
  constexpr Iq4Table() : v() {
    for (int i = 0; i < 16; ++i) v[i] = quant::kIq4Values[i];
  }
};
alignas(32) constexpr Iq4Table kIq4Table{};

// kIq4Values[q] for 8 nibbles q: vpermps on each half of the table (it reads bits 2:0 of q),
// then the upper half's value where q >= 8.
__m256 iq4_values(__m256i q) {
  const __m256 lo = _mm256_permutevar8x32_ps(_mm256_load_ps(kIq4Table.v), q);
  const __m256 hi = _mm256_permutevar8x32_ps(_mm256_load_ps(kIq4Table.v + 8), q);
  const __m256i upper = _mm256_cmpgt_epi32(q, _mm256_set1_epi32(7));
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(upper));
}

// out[0 .. 8) = scale * value   (value an exact f32 from the table)
void store_scaled_values(float* out, __m256 value, float scale) {
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_set1_ps(scale), value));
}

// IQ4_NL: element e = 8 g + l is the nibble q4[e] of Q4_0's layout.
void iq4_nl(const uint8_t* b, float* out) {
  const float d = f16_at(b);
  for (int g = 0; g < 4; ++g) {
    store_scaled_values(out + 8 * g,
                        iq4_values(field(bytes8(b + 2 + 8 * (g % 2)), 4 * (g / 2), 15)), d);
  }
}

// IQ4_XS: sub-block j = e / 32 has the 6-bit scale s6[j]; its nibbles lie as an IQ4_NL block's
// in qs[16 j .. 16 j + 16).
void iq4_xs(const uint8_t* b, float* out) {
  const float d = f16_at(b);
  uint16_t scales_h;
  __builtin_memcpy(&scales_h, b + 2, sizeof scales_h);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 8; ++j) {
    const int s6 = ((scales_l[j / 2] >> (4 * (j % 2))) & 15) | (((scales_h >> (2 * j)) & 3) << 4);
    const float dl = d * static_cast<float>(s6 - 32);
    for (int g = 0; g < 4; ++g) {
      const __m256i q = field(bytes8(qs + 16 * j + 8 * (g % 2)), 4 * (g / 2), 15);
      store_scaled_values(out + 32 * j + 8 * g, iq4_values(q), dl);
    }
  }
}

}  // namespace

void dequant_block_avx2(int format, const uint8_t* block, float* out) {
  switch (format) {
    case kQ5_0:
      q5(block, false, out);
      break;
    case kQ5_1:
      q5(block, true, out);
      break;
    case kQ2_K:
      q2_k(block, out);
      break;
    case kQ3_K:
      q3_k(block, out);
      break;
    case kQ4_K:
      q45_k(block, nullptr, block + 16, out);
      break;
    case kQ5_K:
      q45_k(block, block + 16, block + 48, out);
      break;
    case kQ6_K:
      q6_k(block, out);
      break;
    case kIQ4_NL:
      iq4_nl(block, out);
      break;
    case kIQ4_XS:
      iq4_xs(block, out);
      break;
    default:  // the formats with register kernels of their own: the scalar reference
      quant::dequantize_block(format, block, out);
      break;
  }
}

}  // namespace bx::cpu
