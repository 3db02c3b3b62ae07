// AVX-512 path of the matmul and dot (compiled with -mavx512f/bw/vl/dq -mavx2 -mfma).
//
// The canonical lane layout (kernels/lanes.h) maps onto one zmm per output: lane j of the zmm is
// acc[j], step t is one vfmadd231ps of x[16t .. 16t+16) and w[16t .. 16t+16), the last partial
// step uses masked (zeroing) loads so its padding terms are the real fma(0, 0, acc), and the
// tree h = 8, 4, 2, 1 is fold() below. Register tiles only choose which outputs run side by
// side; each output still sees the steps t = 0, 1, 2, ... in order, so its bits never depend on
// M, on the tile or on the thread that computed it.
//
// Two drivers:
//   direct  (M < 16)   MR x NR tiles straight from row-major x and W over the whole of K;
//                      bf16 weights are widened in registers (bits << 16). M = 1 is the decode
//                      GEMV: 8 rows of W stream from memory side by side.
//   blocked (M >= 16)  4 x 6 tiles (24 zmm accumulators). For each 6-row tile of W and each
//                      K block of 1024, the weights are packed (widened) once into an L1 buffer
//                      and reused by every 4-row tile of an L2-resident block of x; the 16 lane
//                      accumulators of each output are spilled to scratch between K blocks
//                      (exact f32 stores and loads), so each lane still sees its steps
//                      t = 0, 1, 2, ... in order.
//
// Block-quantized weights (kernels/quant.h; Q8_0 / Q4_0 / Q4_1 here, the other formats through
// an L1 buffer filled by dequant_avx2.cpp a block at a time, then the same steps):
//   fused   (M < 16)   MR x NR tiles like `direct`; each block of a weight row is dequantized
//                      in registers into two zmm, which are steps 2b and 2b + 1 of every output
//                      of the tile. Q8_0: vcvtph2ps for d, vpmovsxbd, vcvtdq2ps, vmulps. Q4_0 /
//                      Q4_1: the 16 values a nibble can stand for (d*(j-8), or d*j then + m: the
//                      steps of quant.h) are computed once per block and looked up by vpermps.
//   panel   (M >= 16)  kernels/matmul.cpp dequantizes a panel of rows with dequant_rows_avx512
//                      and runs the f32 kernel above on it.
//
// Only <immintrin.h> and plain headers are included, and everything but the entry points has
// internal linkage (see matmul_isa.h).

#include "kernels/cpu/intrinsics.h"

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/matmul_isa.h"

namespace bx::cpu {
namespace {

constexpr int kLanes = 16;

#define BX_INLINE inline __attribute__((always_inline))

// acc[j] + acc[j + h] for h = 8, 4, 2, 1, in that order; returns acc[0].
BX_INLINE float fold(__m512 acc) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

// out[i] = fold(acc[i]) for 8 outputs at once: the same additions, with the lanes of several
// outputs packed side by side so each add does the work of two to eight folds.
BX_INLINE void fold8(const __m512* acc, float* out) {
  // h = 8: [a 0-7 | b 0-7] + [a 8-15 | b 8-15]
  __m512 t[4];
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {
    const __m512 a = acc[2 * p];
    const __m512 b = acc[2 * p + 1];
    t[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  // h = 4: [a 0-3 | b 0-3 | c 0-3 | d 0-3] + [a 4-7 | b 4-7 | c 4-7 | d 4-7]
  __m512 u[2];
#pragma GCC unroll 2
  for (int q = 0; q < 2; ++q) {
    u[q] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * q], t[2 * q + 1], 0x88),
                         _mm512_shuffle_f32x4(t[2 * q], t[2 * q + 1], 0xDD));
  }
  // h = 2, within each 128-bit block k: [o_k 0,1 | o_k+4 0,1] + [o_k 2,3 | o_k+4 2,3]
  const __m512 v =
      _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x44), _mm512_shuffle_ps(u[0], u[1], 0xEE));
  // h = 1: block k = [o_k, o_k+4, o_k, o_k+4]
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(v, v, 0x88), _mm512_shuffle_ps(v, v, 0xDD));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  _mm512_mask_storeu_ps(out, 0xFF, _mm512_permutexvar_ps(order, r));
}

// Folds the MR x NR accumulators acc[r * NR + c] and writes y[r * ys + c].
template <int MR, int NR>
BX_INLINE void fold_tile(const __m512 (&acc)[MR * NR], float* y, int64_t ys) {
  constexpr int kCount = MR * NR;
  float out[kCount];
#pragma GCC unroll 4
  for (int i = 0; i + 8 <= kCount; i += 8) fold8(acc + i, out + i);
#pragma GCC unroll 8
  for (int i = kCount / 8 * 8; i < kCount; ++i) out[i] = fold(acc[i]);
#pragma GCC unroll 32
  for (int i = 0; i < kCount; ++i) y[(i / NR) * ys + i % NR] = out[i];
}

__mmask16 tail_mask(int64_t valid) {
  return static_cast<__mmask16>((1u << static_cast<unsigned>(valid)) - 1u);
}

// 16 weights as f32; bf16 is widened exactly (bits << 16).
BX_INLINE __m512 load_w(const float* p) {
  return _mm512_loadu_ps(p);
}
BX_INLINE __m512 load_w(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
BX_INLINE __m512 load_w_masked(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
BX_INLINE __m512 load_w_masked(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// ---------------------------------------------------------------------------------------------
// Direct driver: y[MR, NR] tile over the whole of K from row-major x [.., K] and W [.., K].

// Rows of x per direct tile, and columns of W per tile for that row count.
constexpr int kDirectMR = 4;
constexpr int kDirectNR = 4;
constexpr int kGemvNR = 8;  // M = 1 .. 3: more weight rows in flight

template <int MR, int NR, typename W>
void direct_tile(const float* x, int64_t xs, const W* w, int64_t ws, float* y, int64_t ys,
                 int64_t K) {
  __m512 acc[MR * NR];
#pragma GCC unroll 32
  for (int i = 0; i < MR * NR; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t full = K / kLanes;
  for (int64_t t = 0; t < full; ++t) {
    const int64_t k = t * kLanes;
    __m512 wv[NR];
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) wv[c] = load_w(w + c * ws + k);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + r * xs + k);
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) acc[r * NR + c] = _mm512_fmadd_ps(xv, wv[c], acc[r * NR + c]);
    }
  }
  if (K % kLanes != 0) {  // the padded last step: fma(0, 0, acc) in lanes past K
    const int64_t k = full * kLanes;
    const __mmask16 m = tail_mask(K - k);
    __m512 wv[NR];
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) wv[c] = load_w_masked(w + c * ws + k, m);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + r * xs + k);
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) acc[r * NR + c] = _mm512_fmadd_ps(xv, wv[c], acc[r * NR + c]);
    }
  }
  fold_tile<MR, NR>(acc, y, ys);
}

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

template <typename W>
void direct(const MatmulTask& task, const W* w) {
  int64_t m = 0;
  for (; m + kDirectMR <= task.M; m += kDirectMR) direct_rows<kDirectMR, kDirectNR>(task, w, m);
  switch (task.M - m) {
    case 3:
      direct_rows<3, kGemvNR>(task, w, m);
      break;
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
// Blocked driver.

constexpr int kMR = 4;            // rows of x per tile
constexpr int kNR = 6;            // columns of W per tile: 24 zmm accumulators
constexpr int64_t kKcSteps = 64;  // K block: 64 steps of 16 = 1024 elements
constexpr int64_t kMc = 64;       // M block: x block [64, 1024] f32 = 256 KiB
constexpr int64_t kNc = 48;       // N block (whole tiles; matmul.cpp hands out 48 columns)
constexpr int64_t kPackFloats = kNR * kKcSteps * kLanes;
constexpr int64_t kAccFloats = kMc * kNc * kLanes;
static_assert(kPackFloats + kAccFloats <= kMatmulScratchFloats, "scratch too small");
static_assert(kNc % kNR == 0, "N block must hold whole tiles");

struct PackedTile {
  const float* x;  // first element of this K block in row 0 of the tile
  int64_t xs;
  const float* wp;  // packed weights of this K block, [step][NR][16]
  int64_t full;     // whole steps in this block
  int64_t tail;     // valid elements of one more (padded) step, 0 if none
  float* acc;       // spilled accumulators: (r, c) at acc + r * acc_rs + c * 16
  int64_t acc_rs;
  bool first;  // no earlier K block: start from +0.0f
  bool last;   // no later K block: fold into y
  float* y;
  int64_t ys;
};

// One MR x NR tile over one K block.
template <int MR, int NR>
void packed_tile(const PackedTile& a) {
  __m512 acc[MR * NR];
  if (a.first) {
#pragma GCC unroll 32
    for (int i = 0; i < MR * NR; ++i) acc[i] = _mm512_setzero_ps();
  } else {
#pragma GCC unroll 32
    for (int i = 0; i < MR * NR; ++i) {
      acc[i] = _mm512_load_ps(a.acc + (i / NR) * a.acc_rs + (i % NR) * kLanes);
    }
  }
  const float* wp = a.wp;
  for (int64_t t = 0; t < a.full; ++t) {
    const int64_t k = t * kLanes;
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_loadu_ps(a.x + r * a.xs + k);
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) {
        acc[r * NR + c] = _mm512_fmadd_ps(xv, _mm512_load_ps(wp + c * kLanes), acc[r * NR + c]);
      }
    }
    wp += NR * kLanes;
  }
  if (a.tail != 0) {  // the padded last step; the packed weights are already zero past K
    const int64_t k = a.full * kLanes;
    const __mmask16 m = tail_mask(a.tail);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, a.x + r * a.xs + k);
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) {
        acc[r * NR + c] = _mm512_fmadd_ps(xv, _mm512_load_ps(wp + c * kLanes), acc[r * NR + c]);
      }
    }
  }
  if (a.last) {
    fold_tile<MR, NR>(acc, a.y, a.ys);
  } else {
#pragma GCC unroll 32
    for (int i = 0; i < MR * NR; ++i) {
      _mm512_store_ps(a.acc + (i / NR) * a.acc_rs + (i % NR) * kLanes, acc[i]);
    }
  }
}

using PackedFn = void (*)(const PackedTile&);

#define BX_PACKED_ROW(MR)                                                           \
  {                                                                                 \
    packed_tile<MR, 1>, packed_tile<MR, 2>, packed_tile<MR, 3>, packed_tile<MR, 4>, \
        packed_tile<MR, 5>, packed_tile<MR, 6>                                      \
  }
constexpr PackedFn kPackedTiles[kMR][kNR] = {BX_PACKED_ROW(1), BX_PACKED_ROW(2), BX_PACKED_ROW(3),
                                             BX_PACKED_ROW(4)};
#undef BX_PACKED_ROW

// Packs NR rows of W (from `w`, row stride ws) for the ns steps from s0 as f32 [step][NR][16],
// zero past K: the order in which packed_tile reads them.
template <int NR, typename W>
void pack_steps(const W* w, int64_t ws, int64_t K, int64_t s0, int64_t ns, float* dst) {
  const int64_t full = K / kLanes - s0 < ns ? K / kLanes - s0 : ns;  // steps without padding
  const W* row = w + s0 * kLanes;
  for (int64_t s = 0; s < full; ++s) {
#pragma GCC unroll 6
    for (int c = 0; c < NR; ++c) _mm512_store_ps(dst + c * kLanes, load_w(row + c * ws));
    row += kLanes;
    dst += NR * kLanes;
  }
  if (full < ns) {  // the padded last step
    const __mmask16 m = tail_mask(K - (s0 + full) * kLanes);
    for (int c = 0; c < NR; ++c) _mm512_store_ps(dst + c * kLanes, load_w_masked(row + c * ws, m));
  }
}

// Packs the nr rows of W at `rows` for the ns steps from s0 into dst.
template <typename W>
void pack(const W* rows, int64_t ws, int64_t K, int64_t nr, int64_t s0, int64_t ns, float* dst) {
  switch (nr) {
    case 1:
      pack_steps<1>(rows, ws, K, s0, ns, dst);
      break;
    case 2:
      pack_steps<2>(rows, ws, K, s0, ns, dst);
      break;
    case 3:
      pack_steps<3>(rows, ws, K, s0, ns, dst);
      break;
    case 4:
      pack_steps<4>(rows, ws, K, s0, ns, dst);
      break;
    case 5:
      pack_steps<5>(rows, ws, K, s0, ns, dst);
      break;
    default:
      pack_steps<kNR>(rows, ws, K, s0, ns, dst);
      break;
  }
}

// Loop order (GotoBLAS-like, with the K loop kept in order for every output):
//   N blocks of kNc columns > M blocks of kMc rows > K blocks > column tiles > row tiles.
// The x block [mc, kc] stays in L2 while the column tiles of the N block pass over it; each
// column tile's weights for the K block are packed into L1 once and reused by every row tile;
// the lane accumulators of the [mc, nc] outputs wait in scratch between K blocks.
template <typename W>
void blocked(const MatmulTask& task, const W* w) {
  float* wpack = task.scratch;
  float* accbuf = task.scratch + kPackFloats;
  const int64_t K = task.K;
  const int64_t steps = (K + kLanes - 1) / kLanes;
  const int64_t full_steps = K / kLanes;
  const int64_t ws = task.w_stride;

  PackedTile a{};
  a.xs = task.x_stride;
  a.acc_rs = kNc * kLanes;
  a.ys = task.y_stride;
  for (int64_t nb = task.n_begin; nb < task.n_end; nb += kNc) {
    const int64_t nc = task.n_end - nb < kNc ? task.n_end - nb : kNc;
    for (int64_t mb = 0; mb < task.M; mb += kMc) {
      const int64_t mc = task.M - mb < kMc ? task.M - mb : kMc;
      for (int64_t s0 = 0; s0 < steps; s0 += kKcSteps) {
        const int64_t ns = steps - s0 < kKcSteps ? steps - s0 : kKcSteps;
        a.full = s0 + ns <= full_steps ? ns : ns - 1;
        a.tail = a.full < ns ? K % kLanes : 0;
        a.first = s0 == 0;
        a.last = s0 + ns == steps;
        for (int64_t nt = nb; nt < nb + nc; nt += kNR) {
          const int64_t nr = nb + nc - nt < kNR ? nb + nc - nt : kNR;
          pack(w + nt * ws, ws, K, nr, s0, ns, wpack);
          a.wp = wpack;
          for (int64_t mt = mb; mt < mb + mc; mt += kMR) {
            const int64_t mr = mb + mc - mt < kMR ? mb + mc - mt : kMR;
            a.x = task.x + mt * task.x_stride + s0 * kLanes;
            a.acc = accbuf + ((mt - mb) * kNc + (nt - nb)) * kLanes;
            a.y = task.y + mt * task.y_stride + nt;
            kPackedTiles[mr - 1][nr - 1](a);
          }
        }
      }
    }
  }
}

constexpr int64_t kBlockedMinM = 16;

template <typename W>
void run(const MatmulTask& task, const W* w) {
  if (task.M >= kBlockedMinM && task.K > 0) {
    blocked(task, w);
  } else {
    direct(task, w);
  }
}

// ---------------------------------------------------------------------------------------------
// Block-quantized weights.

constexpr int kBlock = static_cast<int>(quant::kBlockElements[kQ8_0]);  // of the register kernels

template <int F>
constexpr int64_t kBlockBytes = quant::kBlockBytes[F];

// d (and m) of the block at b, exactly widened from f16 and broadcast.
BX_INLINE __m128 scales(const uint8_t* b) {
  int32_t bits;
  __builtin_memcpy(&bits, b, sizeof bits);
  return _mm_cvtph_ps(_mm_cvtsi32_si128(bits));  // [d, m, 0, 0] (m only for Q4_1)
}

// The 32 weights of one block as two steps: w0 = elements 0..15, w1 = elements 16..31.
template <int F>
BX_INLINE void dequant_block(const uint8_t* b, __m512& w0, __m512& w1) {
  const __m128 dm = scales(b);
  const __m512 d = _mm512_broadcastss_ps(dm);
  if constexpr (F == kQ8_0) {
    const __m512i q0 =
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)));
    const __m512i q1 =
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 18)));
    w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q0));
    w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q1));
  } else {
    // The 16 values a nibble stands for in this block, computed as quant.h says:
    //   Q4_0: table[j] = d * (j - 8);  Q4_1: table[j] = d * j + m  (product rounded, then the sum)
    // then looked up: vpermps reads bits 3:0 of each index, so the low nibble needs no mask.
    const __m512i q = _mm512_cvtepu8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + (F == kQ4_0 ? 2 : 4))));
    __m512 table;
    if constexpr (F == kQ4_0) {
      table =
          _mm512_mul_ps(d, _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7));
    } else {
      const __m512 m = _mm512_permutexvar_ps(_mm512_set1_epi32(1), _mm512_castps128_ps512(dm));
      table = _mm512_add_ps(
          _mm512_mul_ps(d, _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
          m);
    }
    w0 = _mm512_permutexvar_ps(q, table);
    w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table);
  }
}

// y[MR, NR] tile over the whole of K from row-major x [.., K] and NR rows of blocks.
template <int MR, int NR, int F>
void fused_tile(const float* x, int64_t xs, const uint8_t* w, int64_t wrb, float* y, int64_t ys,
                int64_t K) {
  __m512 acc[MR * NR];
#pragma GCC unroll 32
  for (int i = 0; i < MR * NR; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t blocks = K / kBlock;
  for (int64_t b = 0; b < blocks; ++b) {
    __m512 w0[NR], w1[NR];
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) dequant_block<F>(w + c * wrb + b * kBlockBytes<F>, w0[c], w1[c]);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 x0 = _mm512_loadu_ps(x + r * xs + b * kBlock);
      const __m512 x1 = _mm512_loadu_ps(x + r * xs + b * kBlock + kLanes);
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) acc[r * NR + c] = _mm512_fmadd_ps(x0, w0[c], acc[r * NR + c]);
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) acc[r * NR + c] = _mm512_fmadd_ps(x1, w1[c], acc[r * NR + c]);
    }
  }
  fold_tile<MR, NR>(acc, y, ys);
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
  int64_t m = 0;
  for (; m + kDirectMR <= task.M; m += kDirectMR) fused_rows<kDirectMR, kDirectNR, F>(task, m);
  switch (task.M - m) {
    case 3:
      fused_rows<3, kDirectNR, F>(task, m);
      break;
    case 2:
      fused_rows<2, kDirectNR, F>(task, m);
      break;
    case 1:
      fused_rows<1, kGemvNR, F>(task, m);
      break;
    default:
      break;
  }
}

template <int F>
void dequant_rows(const uint8_t* w, int64_t wrb, int64_t rows, int64_t K, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < K / kBlock; ++b) {
      __m512 w0, w1;
      dequant_block<F>(w + r * wrb + b * kBlockBytes<F>, w0, w1);
      _mm512_storeu_ps(out + r * K + b * kBlock, w0);
      _mm512_storeu_ps(out + r * K + b * kBlock + kLanes, w1);
    }
  }
}

// Formats without a register kernel (Q5_0, Q5_1, the K-quants, IQ4_NL, IQ4_XS): block b of each of
// the NR weight rows is dequantized into an L1 buffer by dequant_block_avx2 (kernels/cpu/
// dequant_avx2.cpp; every AVX-512 CPU has AVX2), then its E / 16 steps run from there, one zmm
// per step as in direct_tile.
template <int MR, int NR>
void buffered_tile(const float* x, int64_t xs, const uint8_t* w, int64_t wrb, int format, float* y,
                   int64_t ys, int64_t K) {
  const int64_t elements = quant::kBlockElements[format];
  const int64_t bytes = quant::kBlockBytes[format];
  alignas(64) float wb[NR][quant::kMaxBlockElements];
  __m512 acc[MR * NR];
#pragma GCC unroll 32
  for (int i = 0; i < MR * NR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < K / elements; ++b) {
    for (int c = 0; c < NR; ++c) dequant_block_avx2(format, w + c * wrb + b * bytes, wb[c]);
    for (int64_t s = 0; s < elements; s += kLanes) {
      __m512 wv[NR];
#pragma GCC unroll 16
      for (int c = 0; c < NR; ++c) wv[c] = _mm512_load_ps(wb[c] + s);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512 xv = _mm512_loadu_ps(x + r * xs + b * elements + s);
#pragma GCC unroll 16
        for (int c = 0; c < NR; ++c) acc[r * NR + c] = _mm512_fmadd_ps(xv, wv[c], acc[r * NR + c]);
      }
    }
  }
  fold_tile<MR, NR>(acc, y, ys);
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
  for (; m + kDirectMR <= task.M; m += kDirectMR) buffered_rows<kDirectMR, kDirectNR>(task, m);
  switch (task.M - m) {
    case 3:
      buffered_rows<3, kDirectNR>(task, m);
      break;
    case 2:
      buffered_rows<2, kDirectNR>(task, m);
      break;
    case 1:
      buffered_rows<1, kGemvNR>(task, m);
      break;
    default:
      break;
  }
}

}  // namespace

void qmatmul_avx512(const QuantMatmulTask* task) {
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

void dequant_rows_avx512(const uint8_t* w, int64_t w_row_bytes, int format, int64_t rows, int64_t K,
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

void matmul_avx512(const MatmulTask* task) {
  if (task->w_bf16) {
    run(*task, static_cast<const uint16_t*>(task->w));
  } else {
    run(*task, static_cast<const float*>(task->w));
  }
}

float dot_avx512(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
  }
  return fold(acc);
}

}  // namespace bx::cpu
