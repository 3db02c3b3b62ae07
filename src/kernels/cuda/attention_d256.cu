// Attention for head_dim in (128, 256] (attention_d256.h). Per warp and chunk (m16n8k16
// fragments; lane = 4 g + c holds rows g and g + 8):
//   S[16 x 64]   = Qb[16 x 256] K^T    16 k-steps x 8 n-tiles; Qb from shared memory (fragment
//                                      order), K by ldmatrix
//   O[16 x 256] += bf16(P)[16 x 64] V  4 k-steps x 32 n-tiles; P from S's accumulators (the C
//                                      layout of two n-tiles is the A layout of one k-step), V
//                                      by ldmatrix.trans
// K and V rows of a chunk are 256 bf16 (32 units of 16 bytes) whose units are XOR-swizzled by
// row % 8, so the eight rows of an ldmatrix hit eight different bank groups.
#include "kernels/cuda/attention_d256.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/cuda/attention_steps.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/mma.cuh"

namespace bx::cuda {
namespace {

using namespace attention_steps;

constexpr int kDp = 256;
constexpr int kRowTiles = 4;  // warps of 16 rows a block, each twice: dims 0..127, 128..255
constexpr int kWarps = 2 * kRowTiles;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = kAttentionWideRows;  // query rows of a warp
constexpr int kTileTokens = kRowTiles * kRows;
constexpr int kQSteps = kDp / 16;            // k-steps of S = Q K^T
constexpr int kOTiles = kDp / 2 / 8;         // n-tiles of a warp's half of O
constexpr int kStages = 3;                   // chunks in shared memory: one computed, two in flight
constexpr int kHalfBytes = kKeys * kDp * 2;  // K (or V) of one chunk
constexpr int kStageBytes = 2 * kHalfBytes;  // 64 KB
constexpr int kQBytes = kRowTiles * kQSteps * 32 * 16;       // a uint4 a lane a k-step a row tile
constexpr int kSmemBytes = kStages * kStageBytes + kQBytes;  // 224 KB
static_assert(kTileTokens == kAttentionChunk, "a prefill tile is one 64-aligned position group");
static_assert(kSmemBytes <= 227 * 1024, "the shared memory of one block on sm_90");

struct Params {
  const float* q;
  int64_t q_stride;
  float* out;
  int64_t out_stride;
  int n_heads;
  int group;        // n_heads / n_kv_heads
  int group_tiles;  // ceil(group / 16): row tiles of 16 heads a KV head needs
  int block_tiles;  // ceil(group_tiles / 4): decode blocks a KV head
  float q_scale;    // scale * log2(e)
  PagedKv kv;
  DeviceBatch batch;
  AttentionPlan plan;
  float* partials;   // split partials [n_singles][n_heads][split_slots][2 + Dh], or null
  int split_slots;   // max_position / split + 1
  int split_chunks;  // split / 64
  int window;        // AttentionArgs::window (0: none)
};

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t& r0, uint32_t& r1,
                                                  uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// Byte offset of 16-byte unit u of row r of a chunk.
__device__ __forceinline__ uint32_t swizzled(int r, int u) {
  return static_cast<uint32_t>(r * (kDp * 2) + ((u ^ (r & 7)) << 4));
}

// Element offset of KV head g at position pos of a sequence's cache.
__device__ __forceinline__ int64_t slot_offset(const PagedKv& kv, const int32_t* table, int64_t pos,
                                               int g) {
  const int p32 = static_cast<int>(pos);  // positions fit in int32 (DeviceBatch)
  const int64_t block = table[p32 / kv.block_size];
  const int64_t row = block * kv.block_size + p32 % kv.block_size;
  return (row * kv.n_kv_heads + g) * kv.head_dim;
}

// Thread i copies row i / 4 of every chunk (units i % 4 + 4 j); its row's cache offset (-1:
// past the last position, zero-filled) is looked up one chunk ahead.
__device__ __forceinline__ int64_t row_offset(const PagedKv& kv, const int32_t* table,
                                              int64_t chunk, int64_t last, int g) {
  const int64_t pos = chunk * kKeys + static_cast<int>(threadIdx.x) / 4;
  return pos <= last ? slot_offset(kv, table, pos, g) : -1;
}

__device__ __forceinline__ void load_chunk(uint32_t ks, uint32_t vs, const PagedKv& kv,
                                           int64_t offset) {
  const int r = static_cast<int>(threadIdx.x) / 4;
  const int first_unit = static_cast<int>(threadIdx.x) % 4;
#pragma unroll
  for (int j = 0; j < kDp / 32; ++j) {
    const int u = first_unit + 4 * j;
    const bool valid = offset >= 0 && u * 8 < kv.head_dim;
    const int64_t off = valid ? offset + u * 8 : 0;
    const uint32_t dst = swizzled(r, u);
    ptx::cp_async_16(ks + dst, kv.k + off, valid);
    ptx::cp_async_16(vs + dst, kv.v + off, valid);
  }
}

// The rows of one warp: row g (index 0) and g + 8 (index 1) of this lane. Warps w and
// w + kRowTiles hold the same rows: both compute S and the softmax (the same operations, so the
// same m and l), and each its half of O's dims.
struct Rows {
  bool any = false;                        // the warp holds at least one row
  const float* q[2] = {nullptr, nullptr};  // the rows' q (null: absent, computed as zero)
  float* out[2] = {nullptr, nullptr};      // their output (null: absent)
  float* partial[2] = {nullptr, nullptr};  // split path: their partial (m, l, o[Dh])
  int64_t pos[2] = {0, 0};
};

// Visits chunks [first_chunk, last_chunk] of KV head kv_head for the rows (every warp of the
// block copies; warps with rows compute), then writes the output or, with walk false, the
// split's partial. last_pos: the last position to read.
__device__ void run_rows(const Params& p, const Rows& rows, const int32_t* table, int kv_head,
                         int64_t last_pos, int64_t first_chunk, int64_t last_chunk, bool walk) {
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t base = ptx::smem_address(smem);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int c4 = lane & 3, mat = lane >> 3;
  const int half = warp / kRowTiles;  // O dims 128 half .. 128 half + 127
  const int Dh = p.kv.head_dim;
  // The row tile's q fragments: k-step kk of lane l at q_smem + (kk * 32 + l) * 16, written by
  // the warp of half 0 (read after the loop's first barrier).
  const uint32_t q_smem = base + kStages * kStageBytes + (warp % kRowTiles) * (kQSteps * 32 * 16);
  if (rows.any && half == 0) {
    auto at = [&](int r, int d) {
      return rows.q[r] != nullptr && d < Dh ? __fmul_rn(rows.q[r][d], p.q_scale) : 0.0f;
    };
#pragma unroll 4
    for (int kk = 0; kk < kQSteps; ++kk) {
      const int d = kk * 16 + 2 * c4;
      const uint32_t a0 = pack_bf16(at(0, d), at(0, d + 1));
      const uint32_t a1 = pack_bf16(at(1, d), at(1, d + 1));
      const uint32_t a2 = pack_bf16(at(0, d + 8), at(0, d + 9));
      const uint32_t a3 = pack_bf16(at(1, d + 8), at(1, d + 9));
      asm volatile(
          "st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(q_smem + (kk * 32 + lane) * 16),
          "r"(a0), "r"(a1), "r"(a2), "r"(a3));
    }
  }

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
  // Dim of o[j][e] (e < 2: row g, else g + 8): 128 half + 8 j + 2 c + (e & 1).
  auto dim = [&](int j, int e) { return 128 * half + 8 * j + 2 * c4 + (e & 1); };

  // Chunks first_chunk, first_chunk + 1 in flight (one commit group each, maybe empty); chunk
  // c + 2 is loaded while c is computed, into chunk c - 1's stage.
#pragma unroll
  for (int i = 0; i + 1 < kStages; ++i) {
    if (first_chunk + i <= last_chunk) {
      const uint32_t si = base + static_cast<uint32_t>(i * kStageBytes);
      load_chunk(si, si + kHalfBytes, p.kv,
                 row_offset(p.kv, table, first_chunk + i, last_pos, kv_head));
    }
    ptx::cp_async_commit();
  }
  int64_t next_offset = first_chunk + kStages - 1 <= last_chunk
                            ? row_offset(p.kv, table, first_chunk + kStages - 1, last_pos, kv_head)
                            : -1;
  int stage = 0;
  bool first_split = true;
  for (int64_t c = first_chunk; c <= last_chunk; ++c) {
    ptx::cp_async_wait<kStages - 2>();  // chunk c has landed (later ones may be in flight)
    __syncthreads();                    // ... for every thread; and chunk c - 1 is not read
    if (c + kStages - 1 <= last_chunk) {
      const int load_stage = stage == 0 ? kStages - 1 : stage - 1;  // chunk c - 1's
      const uint32_t sl = base + static_cast<uint32_t>(load_stage * kStageBytes);
      load_chunk(sl, sl + kHalfBytes, p.kv, next_offset);
      if (c + kStages <= last_chunk) {
        next_offset = row_offset(p.kv, table, c + kStages, last_pos, kv_head);
      }
    }
    ptx::cp_async_commit();
    if (rows.any) {
      const uint32_t ks = base + static_cast<uint32_t>(stage * kStageBytes);
      const uint32_t vs = ks + kHalfBytes;
      float s[8][4];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[i][e] = 0.0f;
      }
      // S: per k-step the q fragment and four K fragment loads, then the eight mma.
#pragma unroll
      for (int kk = 0; kk < kQSteps; ++kk) {
        uint32_t qa[4];
        asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(qa[0]), "=r"(qa[1]), "=r"(qa[2]), "=r"(qa[3])
                     : "r"(q_smem + (kk * 32 + lane) * 16));
        uint32_t b[4][4];
#pragma unroll
        for (int ip = 0; ip < 4; ++ip) {
          const int key = 16 * ip + 8 * (mat >> 1) + (lane & 7), unit = 2 * kk + (mat & 1);
          ptx::ldmatrix_x4(ks + swizzled(key, unit), b[ip][0], b[ip][1], b[ip][2], b[ip][3]);
        }
#pragma unroll
        for (int ip = 0; ip < 4; ++ip) {
          ptx::mma_bf16_m16n8k16(s[2 * ip], qa, b[ip][0], b[ip][1]);
          ptx::mma_bf16_m16n8k16(s[2 * ip + 1], qa, b[ip][2], b[ip][3]);
        }
      }
      softmax_step<kOTiles>(s, c * kKeys, rows.pos[0], rows.pos[1], m, l, o, p.window);
      // O += bf16(P) V over this half's dims: per k-step of 16 keys, groups of four V fragment
      // loads, then their eight mma.
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]),
                                pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int jq = 0; jq < kOTiles / 2; jq += 4) {
          uint32_t b[4][4];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int key = 16 * kk + 8 * (mat & 1) + (lane & 7);
            const int unit = 16 * half + 2 * (jq + i) + (mat >> 1);
            ldmatrix_x4_trans(vs + swizzled(key, unit), b[i][0], b[i][1], b[i][2], b[i][3]);
          }
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            ptx::mma_bf16_m16n8k16(o[2 * (jq + i)], pa, b[i][0], b[i][1]);
            ptx::mma_bf16_m16n8k16(o[2 * (jq + i) + 1], pa, b[i][2], b[i][3]);
          }
        }
      }
      const bool split_end = (c + 1) % p.split_chunks == 0 || c == last_chunk;
      if (walk && split_end) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          // A split the window leaves empty for this row passes (M, L, O) through unchanged.
          const int64_t lo_chunk = first_visible(rows.pos[r], p.window) / kKeys;
          const MergeWeights w = c < lo_chunk ? MergeWeights{1.0f, 0.0f} : merge_max(M[r], m[r]);
          L[r] = merge_value(L[r], l[r], w);
          if (rows.out[r] == nullptr) continue;
#pragma unroll
          for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int d = dim(j, e);
              if (d < Dh) {
                float& a = rows.out[r][d];  // the accumulator: this thread's own elements
                a = merge_value(first_split ? 0.0f : a, o[j][2 * r + e], w);
              }
            }
          }
        }
        reset();
        first_split = false;
      }
    }
    stage = stage == kStages - 1 ? 0 : stage + 1;
  }
  ptx::cp_async_wait<0>();  // nothing left in flight when the block ends
  if (!rows.any) return;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (walk) {
      if (rows.out[r] == nullptr) continue;
#pragma unroll
      for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int d = dim(j, e);
          if (d < Dh) rows.out[r][d] = rows.out[r][d] / L[r];
        }
      }
    } else {
      float* part = rows.partial[r];
      if (part == nullptr) continue;
      if (c4 == 0 && half == 0) {
        part[0] = m[r];
        part[1] = l[r];
      }
#pragma unroll
      for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int d = dim(j, e);
          if (d < Dh) part[2 + d] = o[j][2 * r + e];
        }
      }
    }
  }
}

// Block (tile, head): warps w and w + 4 hold the tile's tokens 16 w .. 16 w + 15. The tile's
// rows share its 64-aligned group, so they need the same chunks: from the first row's window
// start (the earliest) to the group's.
__global__ void __launch_bounds__(kThreads, 1) prefill_kernel(Params p) {
  const int64_t tile = p.plan.n_tiles - 1 - blockIdx.x;  // the later (longer) tiles first
  const int64_t first = p.plan.tiles[2 * tile];
  const int count = p.plan.tiles[2 * tile + 1];
  const int head = static_cast<int>(blockIdx.y);
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int row_tile = (static_cast<int>(threadIdx.x) >> 5) % kRowTiles;
  const int Dh = p.kv.head_dim;
  const int64_t pos_first = p.batch.positions[first];
  const int64_t last_pos = pos_first + count - 1;
  Rows rows;
  rows.any = row_tile * kRows < count;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row_tile * kRows + (lane >> 2) + 8 * r;
    rows.pos[r] = row < count ? pos_first + row : last_pos;
    if (row < count) {
      rows.q[r] = p.q + (first + row) * p.q_stride + static_cast<int64_t>(head) * Dh;
      rows.out[r] = p.out + (first + row) * p.out_stride + static_cast<int64_t>(head) * Dh;
    }
  }
  const int32_t* table = p.batch.tables + p.batch.table_offsets[first];
  const int64_t first_chunk = first_visible(pos_first, p.window) / kKeys;
  run_rows(p, rows, table, head / p.group, last_pos, first_chunk, last_pos / kKeys, true);
}

// Block (single token, KV head x block tile t [, split]): warps w and w + 4 hold heads
// 16 (4 t + w) .. 16 (4 t + w) + 15 of the KV head's group.
__global__ void __launch_bounds__(kThreads, 1) decode_kernel(Params p) {
  const int64_t single = blockIdx.x;
  const int64_t token = p.plan.singles[single];
  const int kv_head = static_cast<int>(blockIdx.y) / p.block_tiles;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int row_tile = (static_cast<int>(threadIdx.x) >> 5) % kRowTiles;
  const int group_tile = (static_cast<int>(blockIdx.y) % p.block_tiles) * kRowTiles + row_tile;
  const int Dh = p.kv.head_dim;
  const int64_t pos = p.batch.positions[token];
  const int64_t last_chunk = pos / kKeys;
  const int64_t lo_chunk = first_visible(pos, p.window) / kKeys;
  int64_t first_chunk = lo_chunk, end_chunk = last_chunk;
  int64_t split = 0;
  if (p.partials != nullptr) {
    split = blockIdx.z;
    const int64_t split_first = split * p.split_chunks;
    if (split_first > last_chunk) return;  // the whole block: this split is past the token
    end_chunk = split_first + p.split_chunks - 1 < last_chunk ? split_first + p.split_chunks - 1
                                                              : last_chunk;
    if (end_chunk < lo_chunk) return;  // before the window: combine_kernel skips it
    first_chunk = split_first > lo_chunk ? split_first : lo_chunk;
  }
  Rows rows;
  rows.any = group_tile * kRows < p.group;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int in_group = group_tile * kRows + (lane >> 2) + 8 * r;
    rows.pos[r] = pos;
    if (in_group < p.group) {
      const int head = kv_head * p.group + in_group;
      rows.q[r] = p.q + token * p.q_stride + static_cast<int64_t>(head) * Dh;
      rows.out[r] = p.out + token * p.out_stride + static_cast<int64_t>(head) * Dh;
      if (p.partials != nullptr) {
        rows.partial[r] =
            p.partials + ((single * p.n_heads + head) * p.split_slots + split) * (2 + Dh);
      }
    }
  }
  const int32_t* table = p.batch.tables + p.batch.table_offsets[token];
  run_rows(p, rows, table, kv_head, pos, first_chunk, end_chunk, p.partials == nullptr);
}

// Block (single token, head): merges the token's split partials in position order, skipping
// the splits wholly before its window.
__global__ void __launch_bounds__(kThreads) combine_kernel(Params p) {
  const int64_t single = blockIdx.x;
  const int head = static_cast<int>(blockIdx.y);
  const int64_t token = p.plan.singles[single];
  const int Dh = p.kv.head_dim;
  const int64_t pos = p.batch.positions[token];
  const int64_t splits = pos / (static_cast<int64_t>(p.split_chunks) * kKeys) + 1;
  const float* part = p.partials + (single * p.n_heads + head) * p.split_slots * (2 + Dh);
  float* out = p.out + token * p.out_stride + static_cast<int64_t>(head) * Dh;
  for (int d = static_cast<int>(threadIdx.x); d < Dh; d += kThreads) {
    float M = -INFINITY, L = 0.0f, O = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      const int64_t split_end = (s + 1) * p.split_chunks * kKeys;
      if (masked_before(split_end, pos, p.window)) continue;
      const float* ps = part + s * (2 + Dh);
      const MergeWeights w = merge_max(M, ps[0]);
      L = merge_value(L, ps[1], w);
      O = merge_value(O, ps[2 + d], w);
    }
    out[d] = O / L;
  }
}

}  // namespace

void attention_d256(const AttentionArgs& args, bool split_path, cudaStream_t stream) {
  static bool configured = false;  // raise the dynamic shared memory limit once per kernel
  if (!configured) {
    check_cuda(cudaFuncSetAttribute(prefill_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    kSmemBytes),
               "cudaFuncSetAttribute (attention d256)");
    check_cuda(cudaFuncSetAttribute(decode_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    kSmemBytes),
               "cudaFuncSetAttribute (attention d256)");
    configured = true;
  }
  const PagedKv& kv = args.kv;
  Params p{};
  p.q = args.q;
  p.q_stride = args.q_stride;
  p.out = args.out;
  p.out_stride = args.out_stride;
  p.n_heads = args.n_heads;
  p.group = args.n_heads / kv.n_kv_heads;
  p.group_tiles = (p.group + kRows - 1) / kRows;
  p.block_tiles = (p.group_tiles + kRowTiles - 1) / kRowTiles;
  p.q_scale = args.scale * kLog2e;
  p.kv = kv;
  p.batch = args.batch;
  p.plan = args.plan;
  p.split_chunks = args.split / kAttentionChunk;
  p.split_slots = args.plan.max_position / args.split + 1;
  p.window = args.window;
  p.partials = split_path ? args.workspace : nullptr;
  const AttentionPlan& plan = args.plan;
  if (plan.n_tiles > 0) {
    const dim3 grid(static_cast<unsigned>(plan.n_tiles), static_cast<unsigned>(args.n_heads));
    prefill_kernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
    check_launch("attention_d256 prefill_kernel");
  }
  if (plan.n_singles > 0) {
    const dim3 grid(static_cast<unsigned>(plan.n_singles),
                    static_cast<unsigned>(kv.n_kv_heads * p.block_tiles),
                    split_path ? static_cast<unsigned>(p.split_slots) : 1u);
    decode_kernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
    check_launch("attention_d256 decode_kernel");
    if (split_path) {
      const dim3 combine_grid(static_cast<unsigned>(plan.n_singles),
                              static_cast<unsigned>(args.n_heads));
      combine_kernel<<<combine_grid, kThreads, 0, stream>>>(p);
      check_launch("attention_d256 combine_kernel");
    }
  }
}

}  // namespace bx::cuda
