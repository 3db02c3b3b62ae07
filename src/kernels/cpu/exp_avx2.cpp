// AVX2 exp_f32 (8 lanes) and the log-softmax row loops (compiled with -mavx2 -mfma -mf16c).
//
// exp8 is exp_f32 of kernels/math.cpp lane by lane: the same IEEE operations in the same order
// (mul, add/sub rounding trick, two fma for r, Horner fma, r*r, fma, 1 + em1, two power-of-two
// products); the scalar early returns become blends applied at the end. The canonical sum of
// lanes.h maps onto two ymm: lanes 0-7 and 8-15, so the h = 8 step of the tree is lo + hi; the
// last partial step loads with a mask (zeros beyond n) and adds +0.0f in the padding lanes (a
// real add, as in the scalar path).
//
// Only <immintrin.h> and plain headers are included; everything but the entry points has
// internal linkage (see matmul_isa.h).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/exp_isa.h"

namespace bx::cpu {
namespace {

#define BX_INLINE inline __attribute__((always_inline))

BX_INLINE __m256 pow2(__m256i k) {  // 2^k for k in [-126, 127]
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

BX_INLINE __m256 exp8(__m256 x) {
  using namespace exp_const;
  const __m256 shift = _mm256_set1_ps(kRoundShift);
  const __m256 n =
      _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), shift), shift);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);  // fma(-n, kLn2Hi, x)
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kE8);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE7));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kE2));
  const __m256 em1 = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
  const __m256 er = _mm256_add_ps(_mm256_set1_ps(1.0f), em1);
  const __m256i ni = _mm256_cvttps_epi32(n);  // n is an integer already
  // n1 = ni / 2 (rounded toward zero), n2 = ni - n1.
  const __m256i n1 = _mm256_srai_epi32(_mm256_add_epi32(ni, _mm256_srli_epi32(ni, 31)), 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(er, pow2(n1)), pow2(n2));
  // The scalar early returns, as blends (the masks are disjoint).
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(),
                       _mm256_cmp_ps(x, _mm256_set1_ps(kLo), _CMP_LT_OQ));
  y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()),
                       _mm256_cmp_ps(x, _mm256_set1_ps(kHi), _CMP_GT_OQ));
  y = _mm256_blendv_ps(y, _mm256_add_ps(x, x), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  return y;
}

// All-ones in lanes [0, rem) of lanes base .. base + 7, zero elsewhere.
BX_INLINE __m256i lane_mask(int64_t rem, int base) {
  const __m256i idx = _mm256_setr_epi32(base, base + 1, base + 2, base + 3, base + 4, base + 5,
                                        base + 6, base + 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)), idx);
}

// acc[j] + acc[j + h] for h = 8, 4, 2, 1, in that order; returns acc[0].
BX_INLINE float fold(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
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
BX_INLINE __m256i key(__m256i b) {
  return _mm256_xor_si256(b, _mm256_srli_epi32(_mm256_srai_epi32(b, 31), 1));
}

}  // namespace

float row_max_avx2(const float* x, int64_t n) {
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  __m256i best = key(_mm256_castps_si256(neg_inf));
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    best = _mm256_max_epi32(best, key(_mm256_castps_si256(v)));
  }
  if (i < n) {
    const __m256i m = lane_mask(n - i, 0);
    const __m256 v = _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    best = _mm256_max_epi32(best, key(_mm256_castps_si256(v)));
  }
  if (_mm256_movemask_ps(nan) != 0) return first_nan(x, n);
  __m128i b = _mm_max_epi32(_mm256_castsi256_si128(best), _mm256_extracti128_si256(best, 1));
  b = _mm_max_epi32(b, _mm_shuffle_epi32(b, 0x4e));
  b = _mm_max_epi32(b, _mm_shuffle_epi32(b, 0xb1));
  b = _mm_xor_si128(b, _mm_srli_epi32(_mm_srai_epi32(b, 31), 1));
  return _mm_cvtss_f32(_mm_castsi128_ps(b));
}

void exp_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = lane_mask(n - i, 0);
    _mm256_maskstore_ps(y + i, m, exp8(_mm256_maskload_ps(x + i, m)));
  }
}

float exp_sum_avx2(const float* x, int64_t n, float mx) {
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 lo = _mm256_setzero_ps();  // lanes 0-7
  __m256 hi = _mm256_setzero_ps();  // lanes 8-15
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    lo = _mm256_add_ps(lo, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx)));
    hi = _mm256_add_ps(hi, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmx)));
  }
  if (i < n) {
    const int64_t rem = n - i;  // in (0, 16)
    const __m256i m0 = lane_mask(rem, 0);
    const __m256i m1 = lane_mask(rem, 8);
    const __m256 e0 = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m0), vmx));
    const __m256 e1 = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i + 8, m1), vmx));
    // Padding lanes add +0.0f.
    lo = _mm256_add_ps(lo, _mm256_and_ps(e0, _mm256_castsi256_ps(m0)));
    hi = _mm256_add_ps(hi, _mm256_and_ps(e1, _mm256_castsi256_ps(m1)));
  }
  return fold(lo, hi);
}

void sub_sub_avx2(const float* x, int64_t n, float a, float b, float* out) {
  const __m256 va = _mm256_set1_ps(a);
  const __m256 vb = _mm256_set1_ps(b);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), va), vb));
  }
  if (i < n) {
    const __m256i m = lane_mask(n - i, 0);
    const __m256 v = _mm256_maskload_ps(x + i, m);
    _mm256_maskstore_ps(out + i, m, _mm256_sub_ps(_mm256_sub_ps(v, va), vb));
  }
}

}  // namespace bx::cpu
