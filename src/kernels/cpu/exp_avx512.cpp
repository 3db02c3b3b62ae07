// AVX-512 exp_f32 (16 lanes) and the log-softmax row loops (compiled with -mavx512f/bw/vl/dq).
//
// exp16 is exp_f32 of kernels/math.cpp lane by lane: the same IEEE operations in the same order
// (mul, add/sub rounding trick, two fma for r, Horner fma, r*r, fma, 1 + em1, two power-of-two
// products); the scalar early returns become masked moves applied at the end. The canonical sum
// of lanes.h maps onto one zmm: lane j is acc[j], the last partial step loads with a zeroing
// mask and adds +0.0f in the padding lanes (a real add, as in the scalar path), then fold().
//
// Only <immintrin.h> and plain headers are included; everything but the entry points has
// internal linkage (see matmul_isa.h).

#include "kernels/cpu/intrinsics.h"

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/exp_isa.h"

namespace bx::cpu {
namespace {

#define BX_INLINE inline __attribute__((always_inline))

BX_INLINE __m512 pow2(__m512i k) {  // 2^k for k in [-126, 127]
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23));
}

BX_INLINE __m512 exp16(__m512 x) {
  using namespace exp_const;
  const __m512 shift = _mm512_set1_ps(kRoundShift);
  const __m512 n =
      _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), shift), shift);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);  // fma(-n, kLn2Hi, x)
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kE8);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE7));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kE2));
  const __m512 em1 = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  const __m512 er = _mm512_add_ps(_mm512_set1_ps(1.0f), em1);
  const __m512i ni = _mm512_cvttps_epi32(n);  // n is an integer already
  // n1 = ni / 2 (rounded toward zero), n2 = ni - n1.
  const __m512i n1 = _mm512_srai_epi32(_mm512_add_epi32(ni, _mm512_srli_epi32(ni, 31)), 1);
  const __m512i n2 = _mm512_sub_epi32(ni, n1);
  __m512 y = _mm512_mul_ps(_mm512_mul_ps(er, pow2(n1)), pow2(n2));
  // The scalar early returns, as masked moves (the masks are disjoint).
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(kLo), _CMP_LT_OQ),
                         _mm512_setzero_ps());
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(kHi), _CMP_GT_OQ),
                         _mm512_set1_ps(__builtin_inff()));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_add_ps(x, x));
  return y;
}

BX_INLINE __mmask16 tail_mask(int64_t rem) {  // rem in (0, 16)
  return static_cast<__mmask16>((1u << static_cast<unsigned>(rem)) - 1u);
}

// acc[j] + acc[j + h] for h = 8, 4, 2, 1, in that order; returns acc[0].
BX_INLINE float fold(__m512 acc) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}


// The first NaN of x[0..n) (the caller knows there is one).
float first_nan(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] != x[i]) return x[i];
  }
  return x[0];
}

// Integer key ordering the non-NaN floats totally, -0 below +0 (an involution).
BX_INLINE __m512i key(__m512i b) {
  return _mm512_xor_si512(b, _mm512_srli_epi32(_mm512_srai_epi32(b, 31), 1));
}

}  // namespace

float row_max_avx512(const float* x, int64_t n) {
  const __m512i neg_inf = _mm512_castps_si512(_mm512_set1_ps(-__builtin_inff()));
  __m512i best = key(neg_inf);
  __mmask16 nan = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    nan = static_cast<__mmask16>(nan | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
    best = _mm512_max_epi32(best, key(_mm512_castps_si512(v)));
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_mask_loadu_ps(_mm512_castsi512_ps(neg_inf), m, x + i);
    nan = static_cast<__mmask16>(nan | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
    best = _mm512_max_epi32(best, key(_mm512_castps_si512(v)));
  }
  if (nan != 0) return first_nan(x, n);
  const int32_t k = _mm512_reduce_max_epi32(best);
  const __m128i b = _mm_cvtsi32_si128(k);
  return _mm_cvtss_f32(_mm_castsi128_ps(_mm_xor_si128(b, _mm_srli_epi32(_mm_srai_epi32(b, 31), 1))));
}

void exp_avx512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

float exp_sum_avx512(const float* x, int64_t n, float mx) {
  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc = _mm512_add_ps(acc, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmx)));
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmx));
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));  // padding lanes add +0.0f
  }
  return fold(acc);
}

void sub_sub_avx512(const float* x, int64_t n, float a, float b, float* out) {
  const __m512 va = _mm512_set1_ps(a);
  const __m512 vb = _mm512_set1_ps(b);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), va), vb));
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_sub_ps(_mm512_sub_ps(v, va), vb));
  }
}

}  // namespace bx::cpu
