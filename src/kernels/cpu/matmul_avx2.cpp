// AVX2 path of the matmul and dot (compiled with -mavx2 -mfma -mf16c).
//
// The canonical 16 lanes (kernels/lanes.h) of one output live in two ymm registers: lanes 0-7
// and lanes 8-15. Step t is one vfmadd231ps per half; the padded last step reads zero-filled
// copies of the tail, so its padding terms are the real fma(0, 0, acc); the tree starts with
// h = 8 as lo + hi and goes on in xmm (fold below). Tiles of MR x NR outputs share the loads
// and never change the order inside an output.
//
// Block-quantized weights (kernels/quant.h): Q8_0 / Q4_0 / Q4_1 blocks of a weight row are
// dequantized in registers with the steps of quant.h (vcvtph2ps, vpmov*x, vcvtdq2ps, vmulps,
// then vaddps for Q4_1) into four ymm: lanes 0-7 and 8-15 of step 2b, then of step 2b + 1. The
// other formats (Q5_0, Q5_1, the K-quants, IQ4_NL, IQ4_XS) are dequantized a block at a time into
// an L1 buffer by dequant_avx2.cpp and their E / 16 steps read from it. Large M goes through a
// dequantized panel and the f32 kernel (kernels/matmul.cpp).
//
// Only <immintrin.h> and plain headers are included, and everything but the entry points has
// internal linkage (see matmul_isa.h).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/matmul_isa.h"

namespace bx::cpu {
namespace {

constexpr int kLanes = 16;

// (lo + hi) is h = 8; then h = 4, 2, 1 as in lanes::tree_reduce.
float fold(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

// 8 weights as f32; bf16 is widened exactly (bits << 16).
__m256 load8(const float* p) {
  return _mm256_loadu_ps(p);
}
__m256 load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// Copies src[0 .. valid) into dst[0 .. 16), zero past valid.
template <typename T>
void copy_tail(const T* src, int64_t valid, T* dst) {
  for (int64_t j = 0; j < kLanes; ++j) dst[j] = j < valid ? src[j] : T{0};
}

// One step of an MR x NR tile: acc[r][c][h] = fma(x_r[8h ..], w_c[8h ..], acc[r][c][h]).
template <int MR, int NR, typename W>
inline __attribute__((always_inline)) void step(__m256 (&acc)[MR][NR][2],
                                                const float* const (&x)[MR],
                                                const W* const (&w)[NR]) {
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    __m256 wv[NR];
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) wv[c] = load8(w[c] + 8 * h);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 xv = _mm256_loadu_ps(x[r] + 8 * h);
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) acc[r][c][h] = _mm256_fmadd_ps(xv, wv[c], acc[r][c][h]);
    }
  }
}

// y[MR, NR] tile over the whole of K from row-major x [.., K] and W [.., K].
template <int MR, int NR, typename W>
void direct_tile(const float* x, int64_t xs, const W* w, int64_t ws, float* y, int64_t ys,
                 int64_t K) {
  __m256 acc[MR][NR][2];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) acc[r][c][0] = acc[r][c][1] = _mm256_setzero_ps();
  }
  const int64_t full = K / kLanes;
  for (int64_t t = 0; t < full; ++t) {
    const int64_t k = t * kLanes;
    const float* xp[MR];
    const W* wp[NR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) xp[r] = x + r * xs + k;
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) wp[c] = w + c * ws + k;
    step<MR, NR, W>(acc, xp, wp);
  }
  if (K % kLanes != 0) {  // the padded last step
    const int64_t k = full * kLanes;
    alignas(32) float xt[MR][kLanes];
    alignas(32) W wt[NR][kLanes];
    const float* xp[MR];
    const W* wp[NR];
    for (int r = 0; r < MR; ++r) {
      copy_tail(x + r * xs + k, K - k, xt[r]);
      xp[r] = xt[r];
    }
    for (int c = 0; c < NR; ++c) {
      copy_tail(w + c * ws + k, K - k, wt[c]);
      wp[c] = wt[c];
    }
    step<MR, NR, W>(acc, xp, wp);
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) y[r * ys + c] = fold(acc[r][c][0], acc[r][c][1]);
  }
}

constexpr int kMR = 3;
constexpr int kNR = 2;
constexpr int kGemvNR = 4;  // M = 1 or 2: more weight rows in flight

template <int MR, int NR, typename W>
void direct_rows(const MatmulTask& task, const W* w, int64_t m0) {
  int64_t n = task.n_begin;
  const float* x = task.x + m0 * task.x_stride;
  float* y = task.y + m0 * task.y_stride;
  for (; n + NR <= task.n_end; n += NR) {
    direct_tile<MR, NR>(x, task.x_stride, w + n * task.w_stride, task.w_stride, y + n,
                        task.y_stride, task.K);
  }
  for (; n < task.n_end; ++n) {
    direct_tile<MR, 1>(x, task.x_stride, w + n * task.w_stride, task.w_stride, y + n, task.y_stride,
                       task.K);
  }
}

// Loops over x rows in blocks, so a block's rows stay in cache while W streams past them.
template <typename W>
void direct(const MatmulTask& task, const W* w) {
  int64_t m = 0;
  for (; m + kMR <= task.M; m += kMR) direct_rows<kMR, kNR>(task, w, m);
  switch (task.M - m) {
    case 2:
      direct_rows<2, kGemvNR>(task, w, m);
      break;
    case 1:
      direct_rows<1, kGemvNR>(task, w, m);
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Block-quantized weights.

constexpr int kBlock = static_cast<int>(quant::kBlockElements[kQ8_0]);  // of the register kernels

template <int F>
constexpr int64_t kBlockBytes = quant::kBlockBytes[F];

__m256i load8_bytes_u8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// The 32 weights of one block: w[0], w[1] = step 2b (elements 0-7, 8-15), w[2], w[3] = step 2b+1.
template <int F>
inline __attribute__((always_inline)) void dequant_block(const uint8_t* b, __m256 (&w)[4]) {
  int32_t bits;
  __builtin_memcpy(&bits, b, sizeof bits);
  const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(bits));  // [d, m, 0, 0]
  const __m256 d = _mm256_broadcastss_ps(dm);
  if constexpr (F == kQ8_0) {
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const __m256i q =
          _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * i)));
      w[i] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(q));
    }
  } else {
    const uint8_t* qs = b + (F == kQ4_0 ? 2 : 4);
    const __m256i q[2] = {load8_bytes_u8(qs), load8_bytes_u8(qs + 8)};
    const __m256i low = _mm256_set1_epi32(15);
    __m256i v[4] = {_mm256_and_si256(q[0], low), _mm256_and_si256(q[1], low),
                    _mm256_srli_epi32(q[0], 4), _mm256_srli_epi32(q[1], 4)};
    const __m256 m = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      if constexpr (F == kQ4_0) {
        w[i] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(v[i], _mm256_set1_epi32(8))));
      } else {
        w[i] = _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(v[i])), m);
      }
    }
  }
}

// y[MR, NR] tile over the whole of K from row-major x [.., K] and NR rows of blocks.
template <int MR, int NR, int F>
void fused_tile(const float* x, int64_t xs, const uint8_t* w, int64_t wrb, float* y, int64_t ys,
                int64_t K) {
  __m256 acc[MR][NR][2];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) acc[r][c][0] = acc[r][c][1] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < K / kBlock; ++b) {
    __m256 wv[NR][4];
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) dequant_block<F>(w + c * wrb + b * kBlockBytes<F>, wv[c]);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {  // step 2b + i / 2, half i % 2
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m256 xv = _mm256_loadu_ps(x + r * xs + b * kBlock + 8 * i);
#pragma GCC unroll 16
        for (int c = 0; c < NR; ++c) {
          acc[r][c][i % 2] = _mm256_fmadd_ps(xv, wv[c][i], acc[r][c][i % 2]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) y[r * ys + c] = fold(acc[r][c][0], acc[r][c][1]);
  }
}

template <int MR, int NR, int F>
void fused_rows(const QuantMatmulTask& task, int64_t m0) {
  int64_t n = task.n_begin;
  const float* x = task.x + m0 * task.x_stride;
  float* y = task.y + m0 * task.y_stride;
  const int64_t wrb = task.w_row_bytes;
  for (; n + NR <= task.n_end; n += NR) {
    fused_tile<MR, NR, F>(x, task.x_stride, task.w + n * wrb, wrb, y + n, task.y_stride, task.K);
  }
  for (; n < task.n_end; ++n) {
    fused_tile<MR, 1, F>(x, task.x_stride, task.w + n * wrb, wrb, y + n, task.y_stride, task.K);
  }
}

template <int F>
void fused(const QuantMatmulTask& task) {
  int64_t m = 0;  // 16 ymm: the tiles keep acc + 4 dequantized ymm per weight row in registers
  for (; m + 2 <= task.M; m += 2) fused_rows<2, 1, F>(task, m);
  if (m < task.M) fused_rows<1, 2, F>(task, m);
}

template <int F>
void dequant_rows(const uint8_t* w, int64_t wrb, int64_t rows, int64_t K, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < K / kBlock; ++b) {
      __m256 wv[4];
      dequant_block<F>(w + r * wrb + b * kBlockBytes<F>, wv);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) _mm256_storeu_ps(out + r * K + b * kBlock + 8 * i, wv[i]);
    }
  }
}

// Formats without a register kernel (Q5_0, Q5_1, the K-quants, IQ4_NL, IQ4_XS): block b of each of
// the NR weight rows is dequantized into an L1 buffer by dequant_block_avx2, then its E / 16 steps
// run from there with step() as in direct_tile.
template <int MR, int NR>
void buffered_tile(const float* x, int64_t xs, const uint8_t* w, int64_t wrb, int format, float* y,
                   int64_t ys, int64_t K) {
  const int64_t elements = quant::kBlockElements[format];
  const int64_t bytes = quant::kBlockBytes[format];
  alignas(32) float wb[NR][quant::kMaxBlockElements];
  __m256 acc[MR][NR][2];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) acc[r][c][0] = acc[r][c][1] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < K / elements; ++b) {
    for (int c = 0; c < NR; ++c) dequant_block_avx2(format, w + c * wrb + b * bytes, wb[c]);
    for (int64_t s = 0; s < elements; s += kLanes) {
      const float* xp[MR];
      const float* wp[NR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) xp[r] = x + r * xs + b * elements + s;
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) wp[c] = wb[c] + s;
      step<MR, NR, float>(acc, xp, wp);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) y[r * ys + c] = fold(acc[r][c][0], acc[r][c][1]);
  }
}

template <int MR, int NR>
void buffered_rows(const QuantMatmulTask& task, int64_t m0) {
  int64_t n = task.n_begin;
  const float* x = task.x + m0 * task.x_stride;
  float* y = task.y + m0 * task.y_stride;
  const int64_t wrb = task.w_row_bytes;
  for (; n + NR <= task.n_end; n += NR) {
    buffered_tile<MR, NR>(x, task.x_stride, task.w + n * wrb, wrb, task.format, y + n,
                          task.y_stride, task.K);
  }
  for (; n < task.n_end; ++n) {
    buffered_tile<MR, 1>(x, task.x_stride, task.w + n * wrb, wrb, task.format, y + n, task.y_stride,
                         task.K);
  }
}

void buffered(const QuantMatmulTask& task) {
  int64_t m = 0;
  for (; m + kMR <= task.M; m += kMR) buffered_rows<kMR, kNR>(task, m);
  switch (task.M - m) {
    case 2:
      buffered_rows<2, kNR>(task, m);
      break;
    case 1:
      buffered_rows<1, kGemvNR>(task, m);
      break;
    default:
      break;
  }
}

}  // namespace

void qmatmul_avx2(const QuantMatmulTask* task) {
  switch (task->format) {
    case kQ8_0:
      fused<kQ8_0>(*task);
      break;
    case kQ4_0:
      fused<kQ4_0>(*task);
      break;
    case kQ4_1:
      fused<kQ4_1>(*task);
      break;
    default:
      buffered(*task);
      break;
  }
}

void dequant_rows_avx2(const uint8_t* w, int64_t w_row_bytes, int format, int64_t rows, int64_t K,
                       float* out) {
  switch (format) {
    case kQ8_0:
      dequant_rows<kQ8_0>(w, w_row_bytes, rows, K, out);
      break;
    case kQ4_0:
      dequant_rows<kQ4_0>(w, w_row_bytes, rows, K, out);
      break;
    case kQ4_1:
      dequant_rows<kQ4_1>(w, w_row_bytes, rows, K, out);
      break;
    default: {
      const int64_t elements = quant::kBlockElements[format];
      const int64_t bytes = quant::kBlockBytes[format];
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < K / elements; ++b) {
          dequant_block_avx2(format, w + r * w_row_bytes + b * bytes, out + r * K + b * elements);
        }
      }
      break;
    }
  }
}

void matmul_avx2(const MatmulTask* task) {
  if (task->w_bf16) {
    direct(*task, static_cast<const uint16_t*>(task->w));
  } else {
    direct(*task, static_cast<const float*>(task->w));
  }
}

float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 lo = _mm256_setzero_ps();
  __m256 hi = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), lo);
    hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), hi);
  }
  if (i < n) {
    alignas(32) float at[kLanes];
    alignas(32) float bt[kLanes];
    copy_tail(a + i, n - i, at);
    copy_tail(b + i, n - i, bt);
    lo = _mm256_fmadd_ps(_mm256_load_ps(at), _mm256_load_ps(bt), lo);
    hi = _mm256_fmadd_ps(_mm256_load_ps(at + 8), _mm256_load_ps(bt + 8), hi);
  }
  return fold(lo, hi);
}

}  // namespace bx::cpu
