// Paged attention over the bf16 KV cache on tensor cores (attention.h). Two kernel families give
// the same bits (every row runs the same operations in the same order; tested):
//   wgmma_attention_kernel (default; sm_90a) 64-row warpgroup tiles, a producer warpgroup
//                   copying chunks by cp.async into 128-byte-swizzled stages (described there)
//   the mma.sync kernels (AttentionArgs::mma_sync) 16-row warp tiles, described next.
//
// mma.sync kernels: the threads of a block copy each 64-position chunk of K and V into shared
// memory together (cp.async, three stages: two chunks in flight while one is computed; rows of Dp
// bf16 whose 16-byte units are XOR-swizzled by row % 8 so that ldmatrix is conflict-free); the
// warps that hold query rows compute on it.
//   prefill kernel  8 warps, block (tile, head pair): warp w holds the tile's tokens
//                   16 (w % 4) .. 16 (w % 4) + 15 of head 2 y + w / 4 (two heads of one KV head
//                   share every chunk; an odd group takes one head a block, warps 4..7 idle)
//   decode kernel   4 warps, block (single token, KV head x 16 query heads of its group
//                   [, split]): warp 0 holds the heads; with a workspace each block computes
//                   one split and combine_kernel merges the splits, else the block walks them
// Per warp and chunk (m16n8k16 fragments; lane = 4 g + c holds rows g and g + 8):
//   S[16 x 64]  = Qb[16 x Dp] K^T      Dp/16 k-steps x 8 n-tiles; K by ldmatrix (non-trans)
//   O[16 x Dp] += bf16(P)[16 x 64] V   4 k-steps x Dp/8 n-tiles; P from S's accumulators (the
//                                      C layout of two n-tiles is the A layout of one k-step),
//                                      V by ldmatrix.trans
// Split results of the walking kernels are merged into an accumulator in shared memory (each
// thread its own elements), divided by L at the end.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_d256.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/hopper.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/wgmma_rs.cuh"

namespace bx::cuda {
namespace {

constexpr int kThreads = 128;           // decode and combine blocks
constexpr int kPrefillThreads = 256;    // prefill blocks: two heads x four row tiles
constexpr int kRows = 16;               // query rows of a warp tile
constexpr int kTileTokens = 4 * kRows;  // tokens of a prefill tile (== kAttentionChunk)
constexpr int kKeys = kAttentionChunk;  // positions of a chunk
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kTileTokens == kAttentionChunk, "a prefill tile is one 64-aligned position group");

struct Params {
  const float* q;
  int64_t q_stride;
  float* out;
  int64_t out_stride;
  int n_heads;
  int group;           // n_heads / n_kv_heads
  int group_tiles;     // ceil(group / 16): mma.sync decode tiles per KV head
  int wg_group_tiles;  // ceil(group / 64): wgmma decode jobs per KV head
  int decode_wgs;      // wgmma decode jobs a block (1: one warpgroup with all four stages)
  float q_scale;       // scale * log2(e)
  PagedKv kv;
  DeviceBatch batch;
  AttentionPlan plan;
  float* partials;   // decode split partials [n_singles][n_heads][split_slots][2 + Dh], or null
  int split_slots;   // max_position / split + 1
  int split_chunks;  // split / 64
  int window;        // AttentionArgs::window (0: none)
};

// The first position a query at pos reads (0, or the sliding window's start: attention.h).
__device__ __forceinline__ int64_t first_visible(int64_t pos, int window) {
  return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}
// Whether a window leaves nothing of [.., end) to a query at pos: its state must pass unchanged.
__device__ __forceinline__ bool masked_before(int64_t end, int64_t pos, int window) {
  return window > 0 && end <= first_visible(pos, window);
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t& r0, uint32_t& r1,
                                                  uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

__device__ __forceinline__ int64_t slot_offset(const PagedKv& kv, const int32_t* table, int64_t pos,
                                               int g) {
  const int p32 = static_cast<int>(pos);  // positions fit in int32 (DeviceBatch)
  const int64_t block = table[p32 / kv.block_size];
  const int64_t row = block * kv.block_size + p32 % kv.block_size;
  return (row * kv.n_kv_heads + g) * kv.head_dim;
}

// The split merge of attention.h: (M, L, O) <- (M, L, O) combined with (m_s, l_s, o_s).
struct MergeWeights {
  float a, b;
};
__device__ __forceinline__ MergeWeights merge_max(float& M, float m_s) {
  const float M_new = fmaxf(M, m_s);
  const MergeWeights w{ex2(__fsub_rn(M, M_new)), ex2(__fsub_rn(m_s, M_new))};
  M = M_new;
  return w;
}
__device__ __forceinline__ float merge_value(float acc, float part, MergeWeights w) {
  return __fadd_rn(__fmul_rn(acc, w.a), __fmul_rn(part, w.b));
}

// Byte offset of 16-byte unit u of row r in a chunk of rows of Dp bf16.
template <int kDp>
__device__ __forceinline__ uint32_t swizzled(int r, int u) {
  return static_cast<uint32_t>(r * (kDp * 2) + ((u ^ (r & 7)) << 4));
}

// With kBlock threads, thread i copies row i / (kBlock / 64) of every chunk (16-byte units
// i % (kBlock / 64) + (kBlock / 64) j); its row's cache offset (-1: beyond last, zero-filled) is
// looked up one chunk ahead, so the block-table read hides under the compute.
template <int kBlock>
__device__ __forceinline__ int64_t row_offset(const PagedKv& kv, const int32_t* table,
                                              int64_t chunk, int64_t last, int g) {
  const int64_t pos = chunk * kKeys + static_cast<int>(threadIdx.x) / (kBlock / kKeys);
  return pos <= last ? slot_offset(kv, table, pos, g) : -1;
}

template <int kDp, int kBlock>
__device__ __forceinline__ void load_chunk(uint32_t ks, uint32_t vs, const PagedKv& kv,
                                           int64_t offset) {
  constexpr int kPerRow = kBlock / kKeys;  // threads a row
  static_assert(kPerRow * kKeys == kBlock && (kDp / 8) % kPerRow == 0, "whole rows per thread");
  const int r = static_cast<int>(threadIdx.x) / kPerRow;
  const int first_unit = static_cast<int>(threadIdx.x) % kPerRow;
#pragma unroll
  for (int j = 0; j < kDp / 8 / kPerRow; ++j) {
    const int u = first_unit + kPerRow * j;
    const bool valid = offset >= 0 && u * 8 < kv.head_dim;
    const int64_t off = valid ? offset + u * 8 : 0;
    const uint32_t dst = swizzled<kDp>(r, u);
    ptx::cp_async_16(ks + dst, kv.k + off, valid);
    ptx::cp_async_16(vs + dst, kv.v + off, valid);
  }
}

// The per-chunk online-softmax step of attention.h on one 16-row fragment (m16n8k16 C layout:
// s[i][e] is row g (e < 2) or g + 8, key 8 i + 2 c + (e & 1) of the chunk starting at c0):
// causal mask, chunk max, alpha, p = ex2(s - m'), l = l alpha + rowsum(p), o = o alpha
// (through scale_o), leaving p in s. Shared by the mma.sync and the wgmma kernels so that both
// run the same arithmetic.
template <int kOTiles>
struct alpha_scale_o {
  float (&o)[kOTiles][4];
  __device__ __forceinline__ void operator()(const float (&alpha)[2]) const {
#pragma unroll
    for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) o[j][e] = __fmul_rn(o[j][e], alpha[e >> 1]);
    }
  }
};

// A sliding window (window > 0) also masks keys before the row's first visible position, and a
// row whose window starts past the chunk keeps its state exactly (alpha = 1, p = 0: l and o pass
// through unchanged, as if the chunk were not visited; R11).
template <typename ScaleO>
__device__ __forceinline__ void softmax_step(float (&s)[8][4], int64_t c0, int64_t pos0,
                                             int64_t pos1, float (&m)[2], float (&l)[2],
                                             const ScaleO& scale_o, int window) {
  const int c = static_cast<int>(threadIdx.x) & 3;
  // Causal (and window) mask, then the chunk's row max.
  float mc[2] = {-INFINITY, -INFINITY};
  const int rel0 = static_cast<int>(pos0 - c0), rel1 = static_cast<int>(pos1 - c0);
  // The window masks key k (relative to c0) of a row at rel when k + window <= rel, and the
  // whole chunk when kKeys - 1 + window <= rel (the row skips it).
#pragma unroll
  for (int i = 0; i < 8; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int key = 8 * i + 2 * c + (e & 1);  // relative to c0; rel >= 0 in every chunk
      const int rel = e < 2 ? rel0 : rel1;
      if (key > rel || (window > 0 && key + window <= rel)) s[i][e] = -INFINITY;
      mc[e >> 1] = fmaxf(mc[e >> 1], s[i][e]);
    }
  }
  float alpha[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mc[r] = fmaxf(mc[r], __shfl_xor_sync(0xffffffffu, mc[r], 1));
    mc[r] = fmaxf(mc[r], __shfl_xor_sync(0xffffffffu, mc[r], 2));
    const float m_new = fmaxf(m[r], mc[r]);
    const bool skip = window > 0 && kKeys - 1 + window <= (r == 0 ? rel0 : rel1);
    alpha[r] = skip ? 1.0f : ex2(__fsub_rn(m[r], m_new));
    if (!skip) m[r] = m_new;
  }
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const bool skip = window > 0 && kKeys - 1 + window <= (e < 2 ? rel0 : rel1);
      s[i][e] = skip ? 0.0f : ex2(__fsub_rn(s[i][e], m[e >> 1]));
      sum[e >> 1] = __fadd_rn(sum[e >> 1], s[i][e]);
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    sum[r] = __fadd_rn(sum[r], __shfl_xor_sync(0xffffffffu, sum[r], 1));
    sum[r] = __fadd_rn(sum[r], __shfl_xor_sync(0xffffffffu, sum[r], 2));
    l[r] = __fadd_rn(__fmul_rn(l[r], alpha[r]), sum[r]);
  }
  scale_o(alpha);
}

// One warp's state for its 16 rows: the current split's (m, l, o) for rows g and g + 8.
template <int kDp>
struct WarpState {
  static constexpr int kQSteps = kDp / 16;  // k-steps of S = Q K^T
  static constexpr int kOTiles = kDp / 8;   // n-tiles of O
  uint32_t qa[kQSteps][4];
  float o[kOTiles][4];
  float m[2], l[2];

  __device__ __forceinline__ void reset() {
#pragma unroll
    for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) o[j][e] = 0.0f;
    }
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.0f;
  }

  // Row r's q (f32, head_dim dims), scaled and rounded into A fragments; null rows are zero.
  __device__ __forceinline__ void load_q(const float* q0, const float* q1, int head_dim,
                                         float q_scale) {
    const int lane = static_cast<int>(threadIdx.x) & 31, c = lane & 3;
    auto at = [&](const float* q, int d) {
      return q != nullptr && d < head_dim ? __fmul_rn(q[d], q_scale) : 0.0f;
    };
#pragma unroll
    for (int kk = 0; kk < kQSteps; ++kk) {
      const int d = kk * 16 + 2 * c;
      qa[kk][0] = pack_bf16(at(q0, d), at(q0, d + 1));
      qa[kk][1] = pack_bf16(at(q1, d), at(q1, d + 1));
      qa[kk][2] = pack_bf16(at(q0, d + 8), at(q0, d + 9));
      qa[kk][3] = pack_bf16(at(q1, d + 8), at(q1, d + 9));
    }
  }

  // One chunk at positions [c0, c0 + 64) for rows at positions pos0 (row g), pos1 (row g + 8).
  __device__ __forceinline__ void chunk(uint32_t ks, uint32_t vs, int64_t c0, int64_t pos0,
                                        int64_t pos1, int window) {
    const int lane = static_cast<int>(threadIdx.x) & 31, mat = lane >> 3;
    float s[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[i][e] = 0.0f;
    }
    // Per k-step: the four fragment loads first, then the eight mma (latency of one load).
#pragma unroll
    for (int kk = 0; kk < kQSteps; ++kk) {
      uint32_t b[4][4];
#pragma unroll
      for (int ip = 0; ip < 4; ++ip) {
        const int key = 16 * ip + 8 * (mat >> 1) + (lane & 7), unit = 2 * kk + (mat & 1);
        ptx::ldmatrix_x4(ks + swizzled<kDp>(key, unit), b[ip][0], b[ip][1], b[ip][2], b[ip][3]);
      }
#pragma unroll
      for (int ip = 0; ip < 4; ++ip) {
        ptx::mma_bf16_m16n8k16(s[2 * ip], qa[kk], b[ip][0], b[ip][1]);
        ptx::mma_bf16_m16n8k16(s[2 * ip + 1], qa[kk], b[ip][2], b[ip][3]);
      }
    }
    softmax_step(s, c0, pos0, pos1, m, l, alpha_scale_o<kOTiles>{o}, window);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]),
                              pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      // Groups of four fragment loads, then their eight mma.
#pragma unroll
      for (int jq = 0; jq < kOTiles / 2; jq += 4) {
        uint32_t b[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int key = 16 * kk + 8 * (mat & 1) + (lane & 7), unit = 2 * (jq + i) + (mat >> 1);
          ldmatrix_x4_trans(vs + swizzled<kDp>(key, unit), b[i][0], b[i][1], b[i][2], b[i][3]);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          ptx::mma_bf16_m16n8k16(o[2 * (jq + i)], pa, b[i][0], b[i][1]);
          ptx::mma_bf16_m16n8k16(o[2 * (jq + i) + 1], pa, b[i][2], b[i][3]);
        }
      }
    }
  }
};

// Chunks in shared memory: the one computed and kStages - 1 in flight.
constexpr int kStages = 3;

template <int kDp>
__host__ __device__ constexpr int stage_bytes() {
  return 2 * kKeys * kDp * 2;  // K and V of one chunk
}
template <int kDp>
__host__ __device__ constexpr int smem_bytes(int acc_warps) {
  return kStages * stage_bytes<kDp>() + acc_warps * (kDp / 8) * 4 * 32 * 4;
}

// The rows of one block, whichever kernel: row r (0..15) of warp w is query (token[w][r], head).
struct Rows {
  int64_t token0 = -1, token1 = -1;  // rows g and g + 8 of this lane, -1 when absent
  int head0 = 0, head1 = 0;
  int64_t pos0 = 0, pos1 = 0;
  bool any = false;  // the warp holds at least one row
};

// Walks (or, with partials, computes one split of) chunks [first_chunk, last_chunk] for the
// rows, then writes the output (or the split's partial).
template <int kDp, int kBlock>
__device__ void run_rows(const Params& p, const Rows& rows, const int32_t* table, int kv_head,
                         int64_t last_pos, int64_t first_chunk, int64_t last_chunk,
                         float* partial_base) {
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t base = ptx::smem_address(smem);
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int Dh = p.kv.head_dim;
  constexpr int kOTiles = kDp / 8;
  constexpr uint32_t kHalf = stage_bytes<kDp>() / 2;
  const bool walk = partial_base == nullptr;
  const int c4 = lane & 3, g = lane >> 2;
  // The walking merge's accumulator: warp w's O elements, thread-owned (decode: warp 0 only).
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  float* acc = reinterpret_cast<float*>(smem + kStages * stage_bytes<kDp>());

  WarpState<kDp> st;
  st.reset();
  float M[2] = {-INFINITY, -INFINITY}, L[2] = {0.0f, 0.0f};
  float* out_row[2] = {nullptr, nullptr};
  if (rows.any) {
    const float* q0 = rows.token0 >= 0 ? p.q + rows.token0 * p.q_stride + rows.head0 * Dh : nullptr;
    const float* q1 = rows.token1 >= 0 ? p.q + rows.token1 * p.q_stride + rows.head1 * Dh : nullptr;
    st.load_q(q0, q1, Dh, p.q_scale);
    if (rows.token0 >= 0) out_row[0] = p.out + rows.token0 * p.out_stride + rows.head0 * Dh;
    if (rows.token1 >= 0) out_row[1] = p.out + rows.token1 * p.out_stride + rows.head1 * Dh;
  }

  // Chunks first_chunk .. first_chunk + kStages - 2 in flight (one commit group each, maybe
  // empty); chunk c + kStages - 1 is loaded while c is computed, into chunk c - 1's stage.
#pragma unroll
  for (int i = 0; i + 1 < kStages; ++i) {
    if (first_chunk + i <= last_chunk) {
      const uint32_t si = base + static_cast<uint32_t>(i * stage_bytes<kDp>());
      load_chunk<kDp, kBlock>(si, si + kHalf, p.kv,
                              row_offset<kBlock>(p.kv, table, first_chunk + i, last_pos, kv_head));
    }
    ptx::cp_async_commit();
  }
  int64_t next_offset =
      first_chunk + kStages - 1 <= last_chunk
          ? row_offset<kBlock>(p.kv, table, first_chunk + kStages - 1, last_pos, kv_head)
          : -1;
  int stage = 0;
  bool first_split = true;
  for (int64_t c = first_chunk; c <= last_chunk; ++c) {
    ptx::cp_async_wait<kStages - 2>();  // chunk c has landed (later ones may be in flight)
    __syncthreads();                    // ... for every thread; and chunk c - 1 is not read
    if (c + kStages - 1 <= last_chunk) {
      const int load_stage = stage == 0 ? kStages - 1 : stage - 1;  // chunk c - 1's
      const uint32_t sl = base + static_cast<uint32_t>(load_stage * stage_bytes<kDp>());
      load_chunk<kDp, kBlock>(sl, sl + kHalf, p.kv, next_offset);
      if (c + kStages <= last_chunk) {
        next_offset = row_offset<kBlock>(p.kv, table, c + kStages, last_pos, kv_head);
      }
    }
    ptx::cp_async_commit();
    if (rows.any) {
      const uint32_t ks = base + static_cast<uint32_t>(stage * stage_bytes<kDp>());
      st.chunk(ks, ks + kHalf, c * kKeys, rows.pos0, rows.pos1, p.window);
      const bool split_end = (c + 1) % p.split_chunks == 0 || c == last_chunk;
      if (walk && split_end) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          // A split the window leaves empty for this row passes (M, L, O) through unchanged.
          // (The chunk of the row's first visible position, computed here: held across the
          // loop it costs the decode kernel a spilled register.)
          const int64_t lo_chunk = first_visible(r == 0 ? rows.pos0 : rows.pos1, p.window) / kKeys;
          const MergeWeights w = c < lo_chunk ? MergeWeights{1.0f, 0.0f} : merge_max(M[r], st.m[r]);
          L[r] = merge_value(L[r], st.l[r], w);
          if (out_row[r] == nullptr) continue;
#pragma unroll
          for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int d = 8 * j + 2 * c4 + e;
              if (d < Dh) {
                float& a = acc[((warp * kOTiles + j) * 4 + 2 * r + e) * 32 + lane];
                a = merge_value(first_split ? 0.0f : a, st.o[j][2 * r + e], w);
              }
            }
          }
        }
        st.reset();
        first_split = false;
      }
    }
    stage = stage == kStages - 1 ? 0 : stage + 1;
  }
  ptx::cp_async_wait<0>();  // nothing left in flight when the block ends
  if (!rows.any) return;

  if (walk) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (out_row[r] == nullptr) continue;
#pragma unroll
      for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int d = 8 * j + 2 * c4 + e;
          if (d < Dh)
            out_row[r][d] = acc[((warp * kOTiles + j) * 4 + 2 * r + e) * 32 + lane] / L[r];
        }
      }
    }
  } else {
    // partial_base points at this block's split of head 0 of the group tile; row stride between
    // heads is split_slots * (2 + Dh).
    const int64_t head_stride = static_cast<int64_t>(p.split_slots) * (2 + Dh);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (out_row[r] == nullptr) continue;
      float* part = partial_base + (g + 8 * r) * head_stride;
      if (c4 == 0) {
        part[0] = st.m[r];
        part[1] = st.l[r];
      }
#pragma unroll
      for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int d = 8 * j + 2 * c4 + e;
          if (d < Dh) part[2 + d] = st.o[j][2 * r + e];
        }
      }
    }
  }
}

// Block (tile, head pair): warp w holds the tile's tokens 16 (w % 4) .. 16 (w % 4) + 15 for head
// 2 y + w / 4 when the group is even (both heads read one KV head), else head y in warps 0..3.
template <int kDp>
__global__ void __launch_bounds__(kPrefillThreads) prefill_kernel(Params p) {
  const int64_t tile = p.plan.n_tiles - 1 - blockIdx.x;  // the later (longer) tiles first
  const int64_t first = p.plan.tiles[2 * tile];
  const int count = p.plan.tiles[2 * tile + 1];
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const bool pairs = p.group % 2 == 0;
  const int head =
      pairs ? 2 * static_cast<int>(blockIdx.y) + (warp >> 2) : static_cast<int>(blockIdx.y);
  const int row_tile = warp & 3;
  const int64_t pos_first = p.batch.positions[first];
  const int64_t last_pos = pos_first + count - 1;
  Rows rows;
  const int r0 = row_tile * kRows + (lane >> 2), r1 = r0 + 8;
  rows.any = row_tile * kRows < count && (pairs || warp < 4);
  rows.token0 = r0 < count ? first + r0 : -1;
  rows.token1 = r1 < count ? first + r1 : -1;
  rows.head0 = rows.head1 = head;
  rows.pos0 = pos_first + r0 < last_pos ? pos_first + r0 : last_pos;
  rows.pos1 = pos_first + r1 < last_pos ? pos_first + r1 : last_pos;
  const int32_t* table = p.batch.tables + p.batch.table_offsets[first];
  run_rows<kDp, kPrefillThreads>(p, rows, table, head / p.group, last_pos, 0, last_pos / kKeys,
                                 nullptr);
}

// --- The wgmma kernel (sm_90a): prefill tiles, and decode tokens ------------------------------
// Block: two consumer warpgroups + one producer warpgroup. Warpgroup w holds 64 query rows;
// warp k of it rows 16 k .. 16 k + 15, the same m16n8k16 fragments as the kernels above:
//   S[64 x 64]  = Qb K^T    Dp/16 wgmma m64n64k16, Qb from registers, K from shared memory
//   O[64 x Dp] += bf16(P) V 4 wgmma m64nDpk16, P from registers (S's accumulators, as above), V
//                           from shared memory (N-major)
// so every row's arithmetic is the chain order of attention.h, as in the mma.sync kernels.
// Prefill (shared chunks): block b = (n_tiles - 1 - t) * head_blocks + x takes tile t, the later
// (longer) tiles first for every head before the next tile; rows are the tile's tokens. Even
// group: both warpgroups take tile t, heads 2 x and 2 x + 1. Odd group: warpgroup 0 takes tile t
// of head x, warpgroup 1 the tile before it when that is the previous 64-aligned group of the
// same sequence and t's group is odd (see partners). The two read one stream of chunks.
// Decode: warpgroup w of block b takes job decode_wgs b + w = ((single n_kv_heads + kv head)
// wg_group_tiles + group tile) splits + split: rows are up to 64 query heads of the KV head for
// one token; with split partials it computes one split and writes its partial (combine_kernel
// merges them), else it walks the splits. Two jobs a block each read their own stream of chunks
// (two stages each); one job a block (while the jobs do not fill the SMs) has all four stages.
// The producer warps copy the chunks (cp.async; full / empty mbarriers a stage): a shared stream
// uses the four stages in turn, own streams two stages a warpgroup. A chunk of K or V in shared
// memory: 64-dim halves of 64 rows x 128 bytes (8 KB, 1024-aligned), 16-byte unit u of row r at
// ((u % 8) ^ (r % 8)) * 16: the 128-byte swizzle of wgmma.
constexpr int kWgStages = 4;
constexpr int kWgConsumers = 2;
constexpr int kWgmmaThreads = (kWgConsumers + 1) * 128;  // + the producer warpgroup
constexpr int kWgRows = 64;                              // query rows of a warpgroup

template <int kDp>
__host__ __device__ constexpr int wg_half_bytes() {
  return kKeys * kDp * 2;  // K (or V) of one chunk
}
template <int kDp>
__host__ __device__ constexpr int wg_acc_offset() {
  return kWgStages * 2 * wg_half_bytes<kDp>();
}
template <int kDp>
__host__ __device__ constexpr int wg_bar_offset() {
  return wg_acc_offset<kDp>() + kWgConsumers * 128 * (kDp / 2) * 4;
}
template <int kDp>
__host__ __device__ constexpr int wg_smem_bytes() {
  return wg_bar_offset<kDp>() + 2 * kWgStages * 8 + 1024;  // + alignment slack
}

__device__ __forceinline__ uint32_t wg_swizzled(int r, int u) {
  return static_cast<uint32_t>((u >> 3) * (kKeys * 128) + r * 128 + (((u & 7) ^ (r & 7)) << 4));
}

// N-major (transposed) B with 128-byte swizzle: rows of 64 N elements (128 bytes), 8 K rows a
// 1024-byte atom; atoms 1024 bytes apart along K (stride byte offset), 64-wide N blocks
// `n_block_bytes` apart (leading byte offset).
__device__ __forceinline__ uint64_t smem_desc_mn128(uint32_t address, uint32_t n_block_bytes) {
  return (static_cast<uint64_t>((address & 0x3FFFF) >> 4)) |
         (static_cast<uint64_t>(n_block_bytes >> 4) << 16) | (uint64_t{1024 >> 4} << 32) |
         (uint64_t{1} << 62);
}

// Keeps the A fragments of an in-flight wgmma in their registers until this point.
__device__ __forceinline__ void keep_alive(const uint32_t (&a)[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    asm volatile("" ::"r"(a[i][0]), "r"(a[i][1]), "r"(a[i][2]), "r"(a[i][3]));
  }
}

// One warpgroup's rows and chunks. Row r (0..63): tile rows are tokens first + r of head `head`
// at positions last_pos - count + 1 + r; decode rows are heads head + r of token `first` at
// last_pos. Rows r >= count are computed (q = 0, the last row's position) but not written.
struct WgJob {
  int64_t first = 0;
  int count = 0;  // rows (0: idle)
  bool tile = true;
  int head = 0;
  int kv_head = 0;
  int64_t last_pos = 0;
  int64_t first_chunk = 0, last_chunk = 0;
  const int32_t* table = nullptr;
  float* partial = nullptr;  // decode split: this split's partial of head `head`, else null
};

template <int kDp>
__global__ void __launch_bounds__(kWgmmaThreads, 1) wgmma_attention_kernel(Params p, bool decode) {
  extern __shared__ unsigned char wg_smem_raw[];
  const uint32_t raw = ptx::smem_address(wg_smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  unsigned char* smem = wg_smem_raw + (base - raw);
  const uint32_t full_bar = base + wg_bar_offset<kDp>();
  const uint32_t empty_bar = full_bar + kWgStages * 8;

  // The two warpgroups' jobs (every thread computes both).
  WgJob job[kWgConsumers];
  if (!decode) {
    const bool pairs = p.group % 2 == 0;
    auto tile_job = [&](int64_t t, int head) {
      WgJob j;
      j.first = p.plan.tiles[2 * t];
      j.count = p.plan.tiles[2 * t + 1];
      j.head = head;
      j.kv_head = head / p.group;
      j.last_pos = p.batch.positions[j.first] + j.count - 1;
      j.last_chunk = j.last_pos / kKeys;
      j.table = p.batch.tables + p.batch.table_offsets[j.first];
      return j;
    };
    // Odd group: tile t (64-aligned group index G) takes tile t - 1 as its partner when that is
    // group G - 1 of the same sequence and G is odd; a tile that is such a partner has no block
    // of its own (its block exits).
    auto partners = [&](int64_t t) {  // tile t - 1 is the partner of tile t
      if (t < 1) return false;
      const int64_t first = p.plan.tiles[2 * t], before = p.plan.tiles[2 * t - 2];
      const int32_t group = p.batch.positions[first] / kKeys;
      return group % 2 == 1 && p.batch.table_offsets[before] == p.batch.table_offsets[first] &&
             p.batch.positions[before] / kKeys == group - 1;
    };
    const int head_blocks = pairs ? p.n_heads / 2 : p.n_heads;
    const int64_t t0 = p.plan.n_tiles - 1 - blockIdx.x / head_blocks;
    const int head = static_cast<int>(blockIdx.x % head_blocks);
    if (pairs) {
      job[0] = tile_job(t0, 2 * head);
      job[1] = tile_job(t0, 2 * head + 1);
    } else {
      if (t0 + 1 < p.plan.n_tiles && partners(t0 + 1)) return;  // computed by tile t0 + 1
      job[0] = tile_job(t0, head);
      if (partners(t0)) job[1] = tile_job(t0 - 1, head);
    }
  } else {
    const int splits = p.partials != nullptr ? p.split_slots : 1;
    const int64_t n_jobs =
        p.plan.n_singles * p.kv.n_kv_heads * p.wg_group_tiles * static_cast<int64_t>(splits);
#pragma unroll
    for (int w = 0; w < kWgConsumers; ++w) {
      const int64_t index = static_cast<int64_t>(blockIdx.x) * p.decode_wgs + w;
      if (w >= p.decode_wgs || index >= n_jobs) continue;
      const int split = static_cast<int>(index % splits);
      const int64_t rest = index / splits;
      const int group_tile = static_cast<int>(rest % p.wg_group_tiles);
      const int kv_head = static_cast<int>(rest / p.wg_group_tiles % p.kv.n_kv_heads);
      const int64_t single = rest / p.wg_group_tiles / p.kv.n_kv_heads;
      WgJob& j = job[w];
      j.first = p.plan.singles[single];
      j.tile = false;
      j.kv_head = kv_head;
      j.head = kv_head * p.group + group_tile * kWgRows;
      const int rows = p.group - group_tile * kWgRows;
      j.last_pos = p.batch.positions[j.first];
      j.table = p.batch.tables + p.batch.table_offsets[j.first];
      const int64_t last_chunk = j.last_pos / kKeys;
      if (p.partials != nullptr) {
        j.first_chunk = static_cast<int64_t>(split) * p.split_chunks;
        if (j.first_chunk > last_chunk) continue;  // this split is past the token: idle
        j.last_chunk = j.first_chunk + p.split_chunks - 1 < last_chunk
                           ? j.first_chunk + p.split_chunks - 1
                           : last_chunk;
        j.partial = p.partials + ((single * p.n_heads + j.head) * p.split_slots + split) *
                                     (2 + static_cast<int64_t>(p.kv.head_dim));
      } else {
        j.last_chunk = last_chunk;
      }
      j.count = rows < kWgRows ? rows : kWgRows;
    }
    if (job[0].count == 0 && job[1].count == 0) return;
  }
  // Chunk streams: shared (prefill, or decode with one warpgroup: warpgroup 0's, four stages in
  // turn) or own (decode with two warpgroups: stages 2 w, 2 w + 1 for warpgroup w).
  const int active = (job[0].count > 0 ? 1 : 0) + (job[1].count > 0 ? 1 : 0);
  const bool own_streams = decode && p.decode_wgs == 2;
  const int stream_stages = own_streams ? 2 : kWgStages;

  if (threadIdx.x == 0) {
    for (int i = 0; i < kWgStages; ++i) {
      ptx::mbarrier_init(full_bar + 8 * i, 32);
      ptx::mbarrier_init(empty_bar + 8 * i, own_streams ? 4 : 4 * active);
    }
    ptx::fence_barrier_init();
  }
  __syncthreads();

  const int warp = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) >> 5, 0);
  const int lane = static_cast<int>(threadIdx.x) & 31;
  if (warp >= kWgConsumers * 4) {
    // Producer warpgroup: gives registers to the consumers; its warp w owns stage w and copies
    // the chunks of its stream that go there, lane l unit l % (Dp / 8) of rows l / (Dp / 8) +
    // k (32 / (Dp / 8)), and signals each chunk once it has landed.
    ptx::setmaxnreg_dec<40>();
    constexpr int kUnits = kDp / 8, kRowsPerStep = 32 / kUnits;
    const int stage = warp - kWgConsumers * 4;
    const WgJob src = own_streams && stage >= 2 ? job[1] : job[0];
    if (src.count == 0) return;
    const int first_stage = own_streams ? stage & ~1 : 0;
    const int unit = lane % kUnits, sub = lane / kUnits;
    const bool unit_valid = unit * 8 < p.kv.head_dim;
    const int64_t row_stride = static_cast<int64_t>(p.kv.n_kv_heads) * p.kv.head_dim;
    const int64_t head_offset = static_cast<int64_t>(src.kv_head) * p.kv.head_dim + unit * 8;
    const uint32_t ks = base + static_cast<uint32_t>(stage * 2 * wg_half_bytes<kDp>());
    const uint32_t vs = ks + wg_half_bytes<kDp>();
    int round = 0;  // of the stage
    for (int64_t i = stage - first_stage; src.first_chunk + i <= src.last_chunk;
         i += stream_stages, ++round) {
      const int64_t c = src.first_chunk + i;
      // Rows lane and lane + 32 of the chunk: cache row index (-1: past the last position).
      int32_t cache_row[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int pos = static_cast<int>(c * kKeys) + lane + 32 * h;
        cache_row[h] = pos <= src.last_pos ? src.table[pos / p.kv.block_size] * p.kv.block_size +
                                                 pos % p.kv.block_size
                                           : -1;
      }
      if (round > 0) {  // the consumers are done with the stage's previous chunk
        ptx::mbarrier_wait(empty_bar + 8 * stage, static_cast<uint32_t>((round - 1) & 1));
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll 4
        for (int j = h * (32 / kRowsPerStep); j < (h + 1) * (32 / kRowsPerStep); ++j) {
          const int r = j * kRowsPerStep + sub;
          const int32_t row = __shfl_sync(0xffffffffu, cache_row[h], r % 32);
          const bool valid = row >= 0 && unit_valid;
          const int64_t off = valid ? row * row_stride + head_offset : 0;
          const uint32_t dst = wg_swizzled(r, unit);
          ptx::cp_async_16(ks + dst, p.kv.k + off, valid);
          ptx::cp_async_16(vs + dst, p.kv.v + off, valid);
        }
      }
      ptx::cp_async_commit();
      ptx::cp_async_wait<0>();
      ptx::fence_proxy_async();
      ptx::mbarrier_arrive(full_bar + 8 * stage);
    }
    return;
  }

  ptx::setmaxnreg_inc<232>();
  const int wg = warp >> 2;
  const WgJob my = wg == 0 ? job[0] : job[1];
  if (my.count == 0) return;
  const int first_stage = own_streams ? 2 * wg : 0;
  constexpr int kQSteps = kDp / 16, kOTiles = kDp / 8;
  const int c4 = lane & 3;
  const int r0 = (warp & 3) * kRows + (lane >> 2), r1 = r0 + 8;
  const int Dh = p.kv.head_dim;
  auto row_pos = [&](int r) {  // positions fit in int32 (DeviceBatch)
    const int pos = static_cast<int>(my.last_pos) - my.count + 1 + r;
    return my.tile && pos < my.last_pos ? pos : static_cast<int>(my.last_pos);
  };
  const int pos0 = row_pos(r0), pos1 = row_pos(r1);
  const bool has_row[2] = {r0 < my.count, r1 < my.count};
  auto row_offset = [&](int r, int64_t stride) -> int64_t {  // -1: not a row
    if (r >= my.count) return -1;
    return my.tile ? (my.first + r) * stride + my.head * Dh
                   : my.first * stride + (my.head + r) * Dh;
  };
  uint32_t qa[kQSteps][4];
  {
    const int64_t q0_off = row_offset(r0, p.q_stride), q1_off = row_offset(r1, p.q_stride);
    const float* q0 = q0_off >= 0 ? p.q + q0_off : nullptr;
    const float* q1 = q1_off >= 0 ? p.q + q1_off : nullptr;
    auto at = [&](const float* q, int d) {
      return q != nullptr && d < Dh ? __fmul_rn(q[d], p.q_scale) : 0.0f;
    };
#pragma unroll
    for (int kk = 0; kk < kQSteps; ++kk) {
      const int d = kk * 16 + 2 * c4;
      qa[kk][0] = pack_bf16(at(q0, d), at(q0, d + 1));
      qa[kk][1] = pack_bf16(at(q1, d), at(q1, d + 1));
      qa[kk][2] = pack_bf16(at(q0, d + 8), at(q0, d + 9));
      qa[kk][3] = pack_bf16(at(q1, d + 8), at(q1, d + 9));
    }
  }
  float* acc = reinterpret_cast<float*>(smem + wg_acc_offset<kDp>()) + (threadIdx.x & 255);
  float o[kOTiles][4];
  float m[2], l[2], M[2] = {-INFINITY, -INFINITY}, L[2] = {0.0f, 0.0f};
  auto reset = [&] {
#pragma unroll
    for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) o[j][e] = 0.0f;
    }
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.0f;
  };
  reset();
  bool first_split = true;
  // The chunk of each row's first visible position: a split ending before it is empty.
  const int lo_chunk[2] = {static_cast<int>(first_visible(pos0, p.window) / kKeys),
                           static_cast<int>(first_visible(pos1, p.window) / kKeys)};
  int slot = 0;        // stage first_stage + slot
  uint32_t phase = 0;  // of the slot's barrier
  int split_left = p.split_chunks - static_cast<int>(my.first_chunk % p.split_chunks);  // chunks
  const int last_chunk = static_cast<int>(my.last_chunk);
  for (int c = static_cast<int>(my.first_chunk); c <= last_chunk; ++c) {
    const int stage = first_stage + slot;
    ptx::mbarrier_wait(full_bar + 8 * stage, phase);
    if (++slot == stream_stages) {
      slot = 0;
      phase ^= 1u;
    }
    const uint32_t ks = base + static_cast<uint32_t>(stage * 2 * wg_half_bytes<kDp>());
    const uint32_t vs = ks + wg_half_bytes<kDp>();
    float s[8][4];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[k][e] = 0.0f;
    }
    float(&s_flat)[32] = reinterpret_cast<float(&)[32]>(s);
    ptx::fence_registers(s_flat);
    ptx::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kQSteps; ++kk) {
      const uint32_t addr = ks + static_cast<uint32_t>((kk >> 2) * (kKeys * 128) + (kk & 3) * 32);
      ptx::wgmma_bf16_rs<64, 0>(s_flat, qa[kk], ptx::smem_desc_k128(addr));
    }
    ptx::wgmma_commit();
    ptx::wgmma_wait<0>();
    ptx::fence_registers(s_flat);
    softmax_step(s, c * kKeys, pos0, pos1, m, l, alpha_scale_o<kOTiles>{o}, p.window);
    uint32_t pa[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      pa[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
      pa[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
      pa[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
    float(&o_flat)[kDp / 2] = reinterpret_cast<float(&)[kDp / 2]>(o);
    ptx::fence_registers(o_flat);
    ptx::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t addr = vs + static_cast<uint32_t>(kk * 16 * 128);
      ptx::wgmma_bf16_rs<kDp, 1>(o_flat, pa[kk], smem_desc_mn128(addr, kKeys * 128));
    }
    ptx::wgmma_commit();
    ptx::wgmma_wait<0>();
    ptx::fence_registers(o_flat);
    keep_alive(pa);  // pa is read by the P V wgmma until here
    if (lane == 0) ptx::mbarrier_arrive(empty_bar + 8 * stage);

    const bool split_end = --split_left == 0 || c == last_chunk;
    if (split_left == 0) split_left = p.split_chunks;
    if (split_end && my.partial == nullptr) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        // A split the window leaves empty for this row passes (M, L, O) through unchanged.
        const MergeWeights w = c < lo_chunk[r] ? MergeWeights{1.0f, 0.0f} : merge_max(M[r], m[r]);
        L[r] = merge_value(L[r], l[r], w);
        if (!has_row[r]) continue;
#pragma unroll
        for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int d = 8 * j + 2 * c4 + e;
            if (d < Dh) {
              float& a = acc[(j * 4 + 2 * r + e) * (kWgConsumers * 128)];
              a = merge_value(first_split ? 0.0f : a, o[j][2 * r + e], w);
            }
          }
        }
      }
      reset();
      first_split = false;
    }
  }
  const int64_t out0 = row_offset(r0, p.out_stride), out1 = row_offset(r1, p.out_stride);
  float* out_row[2] = {out0 >= 0 ? p.out + out0 : nullptr, out1 >= 0 ? p.out + out1 : nullptr};
  if (my.partial != nullptr) {
    // The split's partial (m, l, o) of each head row; heads are split_slots (2 + Dh) apart.
    const int64_t head_stride = static_cast<int64_t>(p.split_slots) * (2 + Dh);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (out_row[r] == nullptr) continue;
      float* part = my.partial + (r == 0 ? r0 : r1) * head_stride;
      if (c4 == 0) {
        part[0] = m[r];
        part[1] = l[r];
      }
#pragma unroll
      for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int d = 8 * j + 2 * c4 + e;
          if (d < Dh) part[2 + d] = o[j][2 * r + e];
        }
      }
    }
    return;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (out_row[r] == nullptr) continue;
#pragma unroll
    for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = 8 * j + 2 * c4 + e;
        if (d < Dh) out_row[r][d] = acc[(j * 4 + 2 * r + e) * (kWgConsumers * 128)] / L[r];
      }
    }
  }
}

// Block (single token, KV head x group tile[, split]): up to 16 heads of the group in warp 0.
template <int kDp>
__global__ void __launch_bounds__(kThreads) decode_kernel(Params p) {
  const int64_t single = blockIdx.x;
  const int64_t token = p.plan.singles[single];
  const int kv_head = static_cast<int>(blockIdx.y) / p.group_tiles;
  const int head_first = kv_head * p.group + (static_cast<int>(blockIdx.y) % p.group_tiles) * kRows;
  const int head_end = (kv_head + 1) * p.group;
  const int64_t pos = p.batch.positions[token];
  const int64_t last_chunk = pos / kKeys;
  int64_t first_chunk = 0, end_chunk = last_chunk;
  float* partial_base = nullptr;
  if (p.partials != nullptr) {
    const int64_t split = blockIdx.z;
    first_chunk = split * p.split_chunks;
    if (first_chunk > last_chunk) return;  // the whole block: this split is past the token
    end_chunk = first_chunk + p.split_chunks - 1 < last_chunk ? first_chunk + p.split_chunks - 1
                                                              : last_chunk;
    partial_base = p.partials + ((single * p.n_heads + head_first) * p.split_slots + split) *
                                    (2 + static_cast<int64_t>(p.kv.head_dim));
  }
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  Rows rows;
  rows.any = warp == 0;
  const int h0 = head_first + (lane >> 2), h1 = h0 + 8;
  rows.token0 = h0 < head_end ? token : -1;
  rows.token1 = h1 < head_end ? token : -1;
  rows.head0 = h0;
  rows.head1 = h1;
  rows.pos0 = rows.pos1 = pos;
  const int32_t* table = p.batch.tables + p.batch.table_offsets[token];
  run_rows<kDp, kThreads>(p, rows, table, kv_head, pos, first_chunk, end_chunk, partial_base);
}

// Block (single token, head): merges the token's split partials in position order.
__global__ void __launch_bounds__(kThreads) combine_kernel(Params p) {
  const int64_t single = blockIdx.x;
  const int head = static_cast<int>(blockIdx.y);
  const int64_t token = p.plan.singles[single];
  const int Dh = p.kv.head_dim;
  const int64_t splits =
      p.batch.positions[token] / (static_cast<int64_t>(p.split_chunks) * kKeys) + 1;
  const float* part = p.partials + (single * p.n_heads + head) * p.split_slots * (2 + Dh);
  float* out = p.out + token * p.out_stride + head * Dh;
  for (int d = static_cast<int>(threadIdx.x); d < Dh; d += kThreads) {
    float M = -INFINITY, L = 0.0f, O = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      const int64_t split_end = (s + 1) * p.split_chunks * kKeys;
      if (masked_before(split_end, p.batch.positions[token], p.window)) continue;
      const float* ps = part + s * (2 + Dh);
      const MergeWeights w = merge_max(M, ps[0]);
      L = merge_value(L, ps[1], w);
      O = merge_value(O, ps[2 + d], w);
    }
    out[d] = O / L;
  }
}

__global__ void kv_write_kernel(PagedKv kv, const float* k, int64_t k_stride, const float* v,
                                int64_t v_stride, DeviceBatch batch) {
  const int64_t t = blockIdx.x;
  const int32_t* table = batch.tables + batch.table_offsets[t];
  const int64_t pos = batch.positions[t];
  const int width = kv.n_kv_heads * kv.head_dim;
  const int64_t base = slot_offset(kv, table, pos, 0);
  for (int i = static_cast<int>(threadIdx.x); i < width; i += blockDim.x) {
    kv.k[base + i] = __bfloat16_as_ushort(__float2bfloat16_rn(k[t * k_stride + i]));
    kv.v[base + i] = __bfloat16_as_ushort(__float2bfloat16_rn(v[t * v_stride + i]));
  }
}

void check_kv(const PagedKv& kv) {
  BX_CHECK(kv.k != nullptr && kv.v != nullptr, "cuda attention: the KV cache is not initialised");
  BX_CHECK(kv.head_dim > 0 && kv.head_dim <= kAttentionWideMaxHeadDim && kv.head_dim % 8 == 0,
           "cuda attention: head_dim " + std::to_string(kv.head_dim) +
               " must be a multiple of 8 in [8, " + std::to_string(kAttentionWideMaxHeadDim) +
               "]");
}

template <int kDp>
void launch(const Params& p, const AttentionArgs& args, bool split_path, cudaStream_t stream) {
  static bool configured = false;  // raise the dynamic shared memory limit once per kernel
  if (!configured) {
    check_cuda(
        cudaFuncSetAttribute(prefill_kernel<kDp>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             smem_bytes<kDp>(kPrefillThreads / 32)),
        "cudaFuncSetAttribute (attention)");
    check_cuda(cudaFuncSetAttribute(decode_kernel<kDp>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    smem_bytes<kDp>(1)),
               "cudaFuncSetAttribute (attention)");
    check_cuda(
        cudaFuncSetAttribute(wgmma_attention_kernel<kDp>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, wg_smem_bytes<kDp>()),
        "cudaFuncSetAttribute (attention)");
    configured = true;
  }
  const AttentionPlan& plan = args.plan;
  if (plan.n_tiles > 0) {
    const int head_blocks = p.group % 2 == 0 ? args.n_heads / 2 : args.n_heads;
    if (args.mma_sync) {
      const dim3 grid(static_cast<unsigned>(plan.n_tiles), static_cast<unsigned>(head_blocks));
      prefill_kernel<kDp>
          <<<grid, kPrefillThreads, smem_bytes<kDp>(kPrefillThreads / 32), stream>>>(p);
      check_launch("attention prefill_kernel");
    } else {
      const auto blocks = static_cast<unsigned>(plan.n_tiles * head_blocks);
      wgmma_attention_kernel<kDp>
          <<<blocks, kWgmmaThreads, wg_smem_bytes<kDp>(), stream>>>(p, false);
      check_launch("attention wgmma_attention_kernel (prefill)");
    }
  }
  if (plan.n_singles > 0) {
    Params d = p;
    if (!split_path) d.partials = nullptr;
    if (args.mma_sync) {
      const unsigned group_blocks = static_cast<unsigned>(args.kv.n_kv_heads * p.group_tiles);
      const dim3 grid(static_cast<unsigned>(plan.n_singles), group_blocks,
                      split_path ? static_cast<unsigned>(p.split_slots) : 1u);
      decode_kernel<kDp><<<grid, kThreads, smem_bytes<kDp>(split_path ? 0 : 1), stream>>>(d);
      check_launch("attention decode_kernel");
    } else {
      const int64_t jobs =
          plan.n_singles * args.kv.n_kv_heads * p.wg_group_tiles * (split_path ? p.split_slots : 1);
      // One job a block while the jobs do not fill the SMs (each then has all four stages).
      d.decode_wgs = jobs <= sm_count() ? 1 : 2;
      const auto blocks = static_cast<unsigned>((jobs + d.decode_wgs - 1) / d.decode_wgs);
      wgmma_attention_kernel<kDp><<<blocks, kWgmmaThreads, wg_smem_bytes<kDp>(), stream>>>(d, true);
      check_launch("attention wgmma_attention_kernel (decode)");
    }
    if (split_path) {
      const dim3 combine_grid(static_cast<unsigned>(plan.n_singles),
                              static_cast<unsigned>(args.n_heads));
      combine_kernel<<<combine_grid, kThreads, 0, stream>>>(p);
      check_launch("attention combine_kernel");
    }
  }
}

}  // namespace

void AttentionPlanner::reserve(int64_t max_tokens, cudaStream_t stream) {
  if (max_tokens <= reserved_tokens_) return;
  // The old buffers may still be read by work queued on the stream.
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (attention plan)");
  const auto T = static_cast<size_t>(max_tokens);
  tiles_dev_ = DeviceBuffer(2 * T * sizeof(int32_t));  // a tile is at least two tokens
  singles_dev_ = DeviceBuffer(T * sizeof(int32_t));
  allocations_ += 2;
  tiles_.reserve(T), singles_.reserve(T);
  reserved_tokens_ = max_tokens;
}

const AttentionPlan& AttentionPlanner::build(const int32_t* positions, const int32_t* table_offsets,
                                             int64_t T, cudaStream_t stream) {
  reserve(T, stream);
  tiles_.clear();
  singles_.clear();
  int32_t max_position = 0;
  for (int64_t t = 0; t < T;) {
    int64_t end = t + 1;
    while (end < T && end - t < kTileTokens && table_offsets[end] == table_offsets[t] &&
           positions[end] == positions[end - 1] + 1 &&
           positions[end] / kAttentionChunk == positions[t] / kAttentionChunk) {
      ++end;
    }
    if (end - t == 1) {
      singles_.push_back(static_cast<int32_t>(t));
    } else {
      tiles_.push_back(static_cast<int32_t>(t));
      tiles_.push_back(static_cast<int32_t>(end - t));
    }
    for (int64_t i = t; i < end; ++i) max_position = std::max(max_position, positions[i]);
    t = end;
  }
  auto upload = [stream](DeviceBuffer& buf, const std::vector<int32_t>& host) {
    const size_t bytes = host.size() * sizeof(int32_t);
    if (bytes > 0) {
      check_cuda(cudaMemcpyAsync(buf.get(), host.data(), bytes, cudaMemcpyHostToDevice, stream),
                 "cudaMemcpyAsync (attention plan)");
    }
    return buf.get<int32_t>();
  };
  plan_.tiles = upload(tiles_dev_, tiles_);
  plan_.singles = upload(singles_dev_, singles_);
  plan_.n_tiles = static_cast<int64_t>(tiles_.size() / 2);
  plan_.n_singles = static_cast<int64_t>(singles_.size());
  plan_.T = T;
  plan_.max_position = max_position;
  return plan_;
}

int64_t attention_workspace_floats(const AttentionPlan& plan, int n_heads, int head_dim,
                                   int split) {
  const int64_t slots = plan.max_position / std::max(split, 1) + 1;
  return plan.n_singles * n_heads * slots * (2 + static_cast<int64_t>(head_dim));
}

int conventional_split(const AttentionPlan& plan, int n_kv_heads) {
  const int sms = sm_count();
  const int64_t work = std::max<int64_t>(plan.n_singles * n_kv_heads, 1);
  const int64_t splits = std::max<int64_t>(1, (2 * sms + work - 1) / work);
  const int64_t length = static_cast<int64_t>(plan.max_position) + 1;
  const int64_t per_split = (length + splits - 1) / splits;
  return static_cast<int>((per_split + kAttentionChunk - 1) / kAttentionChunk * kAttentionChunk);
}

bool attention_k3_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("BITEXACT_ATTENTION_K3");
    return v != nullptr && std::string(v) == "1";
  }();
  return enabled;
}

bool attention_uses_split_partials(const AttentionArgs& args) {
  if (args.k3) return attention_k3_uses_split_partials(args);
  const int group = args.n_heads / std::max(args.kv.n_kv_heads, 1);
  // The walking path's blocks (mma.sync) or warpgroups (wgmma): measured on the H100, walking is
  // as fast or faster once they reach the SMs.
  const int rows = args.kv.head_dim > 128 ? kAttentionWideRows : args.mma_sync ? kRows : kWgRows;
  const int64_t walkers = args.plan.n_singles * args.kv.n_kv_heads * ((group + rows - 1) / rows);
  return args.workspace != nullptr && walkers < sm_count() &&
         attention_workspace_floats(args.plan, args.n_heads, args.kv.head_dim, args.split) <=
             args.workspace_floats;
}

void kv_cache_write(const PagedKv& kv, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, const DeviceBatch& batch, cudaStream_t stream) {
  check_kv(kv);
  if (batch.T == 0) return;
  kv_write_kernel<<<static_cast<unsigned>(batch.T), 128, 0, stream>>>(kv, k, k_stride, v, v_stride,
                                                                      batch);
  check_launch("kv_write_kernel");
}

void attention(const AttentionArgs& args, cudaStream_t stream) {
  if (args.k3) {
    attention_k3(args, stream);
    return;
  }
  const PagedKv& kv = args.kv;
  check_kv(kv);
  BX_CHECK(args.split >= kAttentionChunk && args.split % kAttentionChunk == 0,
           "cuda attention: split " + std::to_string(args.split) +
               " must be a positive multiple of " + std::to_string(kAttentionChunk));
  BX_CHECK(args.n_heads > 0 && args.n_heads % kv.n_kv_heads == 0,
           "cuda attention: n_heads " + std::to_string(args.n_heads) +
               " must be a positive multiple of n_kv_heads " + std::to_string(kv.n_kv_heads));
  BX_CHECK(args.n_heads <= 65535, "cuda attention: too many heads");
  BX_CHECK(args.window >= 0, "cuda attention: window " + std::to_string(args.window) +
                                 " is negative: expected 0 (none) or a window size");
  if (args.batch.T == 0) return;
  BX_CHECK(args.plan.T == args.batch.T,
           "cuda attention: the plan covers " + std::to_string(args.plan.T) +
               " tokens, the batch has " + std::to_string(args.batch.T) +
               " (build it with AttentionPlanner for this batch)");
  Params p{};
  p.q = args.q;
  p.q_stride = args.q_stride;
  p.out = args.out;
  p.out_stride = args.out_stride;
  p.n_heads = args.n_heads;
  p.group = args.n_heads / kv.n_kv_heads;
  p.group_tiles = (p.group + kRows - 1) / kRows;
  p.wg_group_tiles = (p.group + kWgRows - 1) / kWgRows;
  p.decode_wgs = 2;
  p.q_scale = args.scale * kLog2e;
  p.kv = kv;
  p.batch = args.batch;
  p.plan = args.plan;
  p.split_chunks = args.split / kAttentionChunk;
  p.window = args.window;
  p.split_slots = args.plan.max_position / args.split + 1;
  const bool split_path = attention_uses_split_partials(args);
  p.partials = split_path ? args.workspace : nullptr;
  if (kv.head_dim > 128) {
    attention_d256(args, split_path, stream);  // attention_d256.h
  } else if (kv.head_dim <= 64) {
    launch<64>(p, args, split_path, stream);
  } else {
    launch<128>(p, args, split_path, stream);
  }
}

}  // namespace bx::cuda
