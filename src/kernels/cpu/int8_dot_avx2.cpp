// AVX2 path of the int8-activation dot (kernel version cpu-k2; the arithmetic is in
// int8_dot_isa.h). Compiled with -mavx2 -mfma -mf16c.
//
// Eight weight rows at a time, lane r of every float vector = output column n0 + r. Per block:
//   - each row's integer dot as 8 int32 partials: vpmaddubsw (u8 weight codes x s8 activations,
//     pairs summed to i16; no saturation: |pair| <= 255 * 127 * 2 < 2^15 only for Q8_0's |w|,
//     the others stay below 64 * 127 * 2), then vpmaddwd by 1 (or by the sub-block scale) to i32;
//   - the 8 rows' partials folded to one vector of 8 exact sums (sum_lanes8: vphaddd tree);
//   - the block's fmas on the 8 lanes at once, in the block order of the contract.
// Integer sums are exact, so their order is free; the float steps are the scalar path's, lane
// by lane, hence the same bits. Rows past n_end (a tail tile) repeat the last row and are not
// stored.
#include <cstdint>
#include <cstring>

#include "kernels/cpu/int8_dot_isa.h"
#include "kernels/cpu/intrinsics.h"
#include "kernels/q8_0_tiles.h"

namespace bx::cpu {
namespace {

constexpr int kRows = 8;

// Lane r = the sum of the 8 int32 lanes of p[r].
__m256i sum_lanes8(const __m256i p[kRows]) {
  const __m256i h01 = _mm256_hadd_epi32(p[0], p[1]);
  const __m256i h23 = _mm256_hadd_epi32(p[2], p[3]);
  const __m256i h45 = _mm256_hadd_epi32(p[4], p[5]);
  const __m256i h67 = _mm256_hadd_epi32(p[6], p[7]);
  const __m256i a = _mm256_hadd_epi32(h01, h23);  // [r0..r3 low halves | r0..r3 high halves]
  const __m256i c = _mm256_hadd_epi32(h45, h67);
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, c, 0x20),
                          _mm256_permute2x128_si256(a, c, 0x31));
}

uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Widens the f16 at byte offset `at` of each row's block b to 8 f32 lanes.
__m256 f16_lanes(const uint8_t* const rows[kRows], int64_t block_offset, int at) {
  alignas(16) uint16_t h[kRows];
  for (int r = 0; r < kRows; ++r) h[r] = u16_at(rows[r] + block_offset + at);
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
}

// The 32 nibbles of a 32-element block (16 bytes qs): element e < 16 is qs[e] & 15, element
// e >= 16 is qs[e - 16] >> 4, one element per byte.
__m256i nibbles32(const uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i low4 = _mm_set1_epi8(15);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), low4), _mm_and_si128(v, low4));
}

// Byte e = 16 where bit e of the little-endian 32-bit qh is set, else 0.
__m256i high_bits32(const uint8_t* qh) {
  const __m256i v = _mm256_set1_epi32(static_cast<int32_t>(u32_at(qh)));
  // byte e takes byte e / 8 of qh (each 128-bit half holds all four bytes of the broadcast)
  const __m256i spread = _mm256_shuffle_epi8(
      v, _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(16));
}

// i32 partials of sum_e u[e] * x[e] for unsigned codes u < 64 and int8 x.
__m256i dot_u8(__m256i u, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
}

// Each format: the number of fmas it needs, and the integer sums of one row's block.
template <int F>
struct Format;

template <>
struct Format<quant::kQ8_0> {
  // S: sum of signed q8 * x (the sign moved onto x: |q8| <= 128 fits vpmaddubsw's u8).
  static __m256i S(const uint8_t* blk, const int8_t* x, int32_t*) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    return dot_u8(_mm256_abs_epi8(w), _mm256_sign_epi8(xv, w));
  }
};

template <int F>
struct Simple4or5 {
  static constexpr bool kMin = F == quant::kQ4_1 || F == quant::kQ5_1;
  static constexpr bool kHigh = F == quant::kQ5_0 || F == quant::kQ5_1;
  // S before the zero point: sum of the unsigned 4- or 5-bit code * x.
  static __m256i S(const uint8_t* blk, const int8_t* x, int32_t*) {
    const uint8_t* after_scales = blk + (kMin ? 4 : 2);
    __m256i u;
    if constexpr (kHigh) {
      u = _mm256_or_si256(nibbles32(after_scales + 4), high_bits32(after_scales));
    } else {
      u = nibbles32(after_scales);
    }
    return dot_u8(u, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
  }
};
template <>
struct Format<quant::kQ4_0> : Simple4or5<quant::kQ4_0> {};
template <>
struct Format<quant::kQ4_1> : Simple4or5<quant::kQ4_1> {};
template <>
struct Format<quant::kQ5_0> : Simple4or5<quant::kQ5_0> {};
template <>
struct Format<quant::kQ5_1> : Simple4or5<quant::kQ5_1> {};

template <>
struct Format<quant::kQ4_K> {
  // S = sum_j sc[j] (sum over sub-block j of q4k * x); *Z = sum_j mn[j] sum32[j].
  static __m256i S(const uint8_t* blk, const int8_t* x, const int32_t* sum32, int32_t* Z) {
    const uint8_t* scales = blk + 4;
    const uint8_t* qs = blk + 16;
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256i acc = _mm256_setzero_si256();
    int32_t z = 0;
    for (int pair = 0; pair < 4; ++pair) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * pair));
      for (int half = 0; half < 2; ++half) {
        const int j = 2 * pair + half;
        int sc, mn;
        q4k_scale_min(scales, j, sc, mn);
        z += mn * sum32[j];
        const __m256i u = _mm256_and_si256(half == 0 ? v : _mm256_srli_epi16(v, 4), low4);
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * j));
        const __m256i p16 = _mm256_maddubs_epi16(u, xv);
        acc = _mm256_add_epi32(acc,
                               _mm256_madd_epi16(p16, _mm256_set1_epi16(static_cast<int16_t>(sc))));
      }
    }
    *Z = z;
    return acc;
  }
};

template <>
struct Format<quant::kQ6_K> {
  // S = sum_i s[i] (sum over sub-block i of 16 of (q6 - 32) * x).
  static __m256i S(const uint8_t* blk, const int8_t* x, int32_t*) {
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(blk + 192);
    const __m256i low4 = _mm256_set1_epi8(15);
    const __m256i three = _mm256_set1_epi8(3);
    const __m256i offset = _mm256_set1_epi8(32);
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32));
      const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h));
      for (int jj = 0; jj < 4; ++jj) {
        const int j = 4 * h + jj;
        const __m256i src = (jj % 2 == 0) ? ql0 : ql1;
        const __m256i low = _mm256_and_si256(jj < 2 ? src : _mm256_srli_epi16(src, 4), low4);
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(hv, 2 * jj), three);
        const __m256i u = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * j));
        // (q6 - 32) x in i16 pairs: |pair| <= 32 * 127 * 2
        const __m256i p16 =
            _mm256_sub_epi16(_mm256_maddubs_epi16(u, xv), _mm256_maddubs_epi16(offset, xv));
        const __m256i sc =
            _mm256_set_m128i(_mm_set1_epi16(scales[2 * j + 1]), _mm_set1_epi16(scales[2 * j]));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p16, sc));
      }
    }
    return acc;
  }
};

// Asks for block `at` (byte offset) of the 8 rows after `rows` (the next tile, which lies right
// after this one in memory): by the time this tile is done, its blocks are in the cache. A
// tile's rows are short (hundreds of bytes), too short for the hardware prefetcher to follow
// eight interleaved streams. Prefetches never fault, past the matrix's end either.
void prefetch_next_tile(const Int8DotTask& t, const uint8_t* const rows[kRows], int64_t at,
                        int64_t bytes) {
  for (int r = 0; r < kRows; ++r) {
    const auto* next = reinterpret_cast<const char*>(rows[r] + kRows * t.w_row_bytes + at);
    // blocks of 34 bytes and less: consecutive blocks touch every line; larger: each line
    for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch(next + off, _MM_HINT_T0);
  }
}

// y[m, n0 .. n0 + 8) for the rows `rows` (lanes past `count` computed but not stored).
template <int F>
void tile(const Int8DotTask& t, const uint8_t* const rows[kRows], int64_t n0, int count) {
  constexpr int64_t E = quant::kBlockElements[F];
  constexpr int64_t bytes = quant::kBlockBytes[F];
  const int64_t K = t.x.K;
  const int64_t blocks = K / E;
  for (int64_t m = 0; m < t.M; ++m) {
    const int8_t* q = t.x.q + m * K;
    const float* dx = t.x.scale + m * blocks;
    const int32_t* sum32 = t.x.sum32 + m * (K / 32);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t at = b * bytes;
      const int8_t* qb = q + b * E;
      if (m == 0) prefetch_next_tile(t, rows, at, bytes);
      __m256i p[kRows];
      alignas(32) int32_t z[kRows];
      for (int r = 0; r < kRows; ++r) {
        if constexpr (F == quant::kQ4_K) {
          p[r] = Format<F>::S(rows[r] + at, qb, sum32 + b * 8, &z[r]);
        } else {
          p[r] = Format<F>::S(rows[r] + at, qb, z);
        }
      }
      __m256i S = sum_lanes8(p);
      const __m256 dxb = _mm256_set1_ps(dx[b]);
      if constexpr (F == quant::kQ4_0) S = _mm256_sub_epi32(S, _mm256_set1_epi32(8 * sum32[b]));
      if constexpr (F == quant::kQ5_0) S = _mm256_sub_epi32(S, _mm256_set1_epi32(16 * sum32[b]));
      const int d_at = F == quant::kQ6_K ? 208 : 0;
      const __m256 d = f16_lanes(rows, at, d_at);
      acc = _mm256_fmadd_ps(_mm256_mul_ps(d, dxb), _mm256_cvtepi32_ps(S), acc);
      if constexpr (F == quant::kQ4_1 || F == quant::kQ5_1) {
        const __m256 mins = f16_lanes(rows, at, 2);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(mins, dxb),
                              _mm256_set1_ps(static_cast<float>(sum32[b])), acc);
      }
      if constexpr (F == quant::kQ4_K) {
        const __m256 dmin = f16_lanes(rows, at, 2);
        const __m256i Z = _mm256_load_si256(reinterpret_cast<const __m256i*>(z));
        acc = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, dxb), _mm256_cvtepi32_ps(Z), acc);
      }
    }
    float* y = t.y + m * t.y_stride + n0;
    if (count == kRows) {
      _mm256_storeu_ps(y, acc);
    } else {
      alignas(32) float lanes[kRows];
      _mm256_store_ps(lanes, acc);
      for (int r = 0; r < count; ++r) y[r] = lanes[r];
    }
  }
}

// Q8_0 in tiles of 8 rows (kernels/q8_0_tiles.h): block b of a tile is the 8 rows' scales (one
// 16-byte load) and their quants, 272 bytes, the tile one sequential stream. The same steps as
// tile<kQ8_0> (the same bits), with the activations' block loaded once for the 8 rows.
void run_q8_0_tiles(const Int8DotTask& t) {
  // Ahead of the block being read, far enough to cover the memory latency at this loop's pace.
  constexpr int64_t kPrefetchBytes = 4 * quant::kQ8TileBlockBytes;
  const int64_t K = t.x.K;
  const int64_t blocks = K / 32;
  const int64_t tile_stride = kRows * t.w_row_bytes;
  for (int64_t n0 = t.n_begin; n0 < t.n_end; n0 += kRows) {
    const uint8_t* tile = t.w + (n0 / kRows) * tile_stride;
    for (int64_t m = 0; m < t.M; ++m) {
      const int8_t* q = t.x.q + m * K;
      const float* dx = t.x.scale + m * blocks;
      __m256 acc = _mm256_setzero_ps();
      for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* at = tile + b * quant::kQ8TileBlockBytes;
        if (m == 0) {
          for (int64_t off = 0; off < quant::kQ8TileBlockBytes; off += 64) {
            _mm_prefetch(reinterpret_cast<const char*>(at + kPrefetchBytes + off), _MM_HINT_T0);
          }
        }
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + b * 32));
        __m256i p[kRows];
        for (int r = 0; r < kRows; ++r) {
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + 16 + 32 * r));
          p[r] = dot_u8(_mm256_abs_epi8(w), _mm256_sign_epi8(xv, w));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(dx[b])),
                              _mm256_cvtepi32_ps(sum_lanes8(p)), acc);
      }
      _mm256_storeu_ps(t.y + m * t.y_stride + n0, acc);
    }
  }
}

template <int F>
void run(const Int8DotTask& t) {
  for (int64_t n0 = t.n_begin; n0 < t.n_end; n0 += kRows) {
    const int count = static_cast<int>(t.n_end - n0 < kRows ? t.n_end - n0 : kRows);
    const uint8_t* rows[kRows];
    for (int r = 0; r < kRows; ++r) {
      rows[r] = t.w + (n0 + (r < count ? r : count - 1)) * t.w_row_bytes;
    }
    tile<F>(t, rows, n0, count);
  }
}

}  // namespace

void int8_dot_avx2(const Int8DotTask* task) {
  if (task->q8_0_tiles) return run_q8_0_tiles(*task);
  switch (task->format) {
    case quant::kQ8_0:
      return run<quant::kQ8_0>(*task);
    case quant::kQ4_0:
      return run<quant::kQ4_0>(*task);
    case quant::kQ4_1:
      return run<quant::kQ4_1>(*task);
    case quant::kQ5_0:
      return run<quant::kQ5_0>(*task);
    case quant::kQ5_1:
      return run<quant::kQ5_1>(*task);
    case quant::kQ4_K:
      return run<quant::kQ4_K>(*task);
    case quant::kQ6_K:
      return run<quant::kQ6_K>(*task);
    default:
      return;  // not has_int8_dot: the dispatcher never sends it here
  }
}

}  // namespace bx::cpu
