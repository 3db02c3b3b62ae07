// The steps of the GPU Mixture-of-Experts layer (moe.h), each one launch, for moe.cu and its
// tests. Shapes and orders are moe.h's; everything is on the device and asynchronous.
// early_start: launched with programmatic dependent launch (moe_launch.cuh).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/moe.h"

namespace bx::cuda::moe {

// Rows of one grouped-GEMM tile (BM), picked from the mean rows per expert (T k / E): a speed
// choice only. The grouping lays its tile list out for it.
int tile_rows(int64_t T, int top_k, int n_experts);
// The most tiles of `bm` rows S = T k grouped rows can need: ceil(S / bm) + min(E, S).
int64_t max_tiles(int64_t slots, int n_experts, int bm);
// The speed kernels' tighter bound (MoeLayerArgs::speed_kernels): (S + m (bm - 1)) / bm,
// m = min(E, S); the wgmma grid picks its tile on it (64x32 at T = 1).
int64_t max_tiles_tight(int64_t slots, int n_experts, int bm);

// The stable counting sort of the S = T k slots (slot s = t k + r) by expert:
//   offsets[e] .. offsets[e+1]: expert e's grouped rows; offsets[E] = S
//   row_of[s]: the grouped row of slot s;  row_token[row]: its token t = s / k
//   tiles: tile i covers rows [tile_row0[i], min(tile_row0[i] + bm, offsets[e+1])) of expert
//   tile_expert[i], experts in increasing id, *n_tiles of them.
// Each expert's rows are its slots in increasing s (so increasing token): the layout is a
// function of the ids alone, whichever launches below produce it.
struct Grouping {
  int32_t* offsets = nullptr;      // [E + 1]
  int32_t* row_of = nullptr;       // [S]
  int32_t* row_token = nullptr;    // [S]
  int32_t* tile_expert = nullptr;  // [max_tiles]
  int32_t* tile_row0 = nullptr;    // [max_tiles]
  int32_t* n_tiles = nullptr;      // [1]
  int32_t* chunk_base = nullptr;   // [group_chunks(S), E] (count_by_expert's scratch)
  int32_t* ticket = nullptr;       // [1] 0 between calls (route_tokens zeroes it)
};

// The default (verified) grouping: one block per expert, each counting all S slots
// (moe_group.cu), then gather_rows for the wgmma path.
void group_by_expert(const int32_t* ids, int64_t T, int top_k, int n_experts, int bm,
                     const Grouping& g, cudaStream_t stream, bool early_start);
// out[row] = x[row_token[row]] for row < rows: bf16 rows of `stride` elements (a multiple of 8,
// 16-byte aligned rows), x and out of the same stride.
void gather_rows(const uint16_t* x, int64_t stride, const int32_t* row_token, int64_t rows,
                 uint16_t* out, cudaStream_t stream, bool early_start);

// The speed kernels (MoeLayerArgs::speed_kernels), any T, three launches: route_tokens
// (moe_route.cu; also zeroes g.ticket), count_by_expert (per-chunk counts; the last block: offsets,
// chunk bases, tiles), scatter_by_expert (row_of, row_token and, xg not null, xg[row] =
// xb[row_token[row]], bf16 rows of `stride` elements, a multiple of 8, 16-byte aligned).
inline constexpr int kGroupChunk = 256;  // slots per chunk
int64_t group_chunks(int64_t slots);
void route_tokens(const float* logits, int64_t logits_stride, int64_t T, int n_experts, int top_k,
                  bool normalize, int32_t* ids, float* weights, int32_t* zero, cudaStream_t stream,
                  bool early_start);
void count_by_expert(const int32_t* ids, int64_t S, int n_experts, int bm, const Grouping& g,
                     cudaStream_t stream, bool early_start);
void scatter_by_expert(const int32_t* ids, int64_t S, int top_k, int n_experts, const Grouping& g,
                       const uint16_t* xb, int64_t stride, uint16_t* xg, cudaStream_t stream,
                       bool early_start);

// A few tokens (small_grouping): the route, the grouping and the gather above in one block, one
// launch (moe_group_small.cu), the same results.
inline constexpr int kSmallTokens = 16, kSmallSlots = 256, kSmallProbBytes = 32768;
bool small_grouping(int64_t T, int top_k, int n_experts);
void route_and_group_small(const float* logits, int64_t logits_stride, int64_t T, int n_experts,
                           int top_k, bool normalize, int bm, int32_t* ids, float* weights,
                           const Grouping& g, const uint16_t* xb, int64_t stride, uint16_t* xg,
                           cudaStream_t stream, bool early_start);

// The router logits [T, E] (row stride E) and xb [T, Dp] for a few tokens (small_router: T <= 16,
// D small enough for shared memory) in one launch (moe_router_small.cu): gemm_bf16's and
// to_bf16_padded's bits.
bool small_router(int64_t T, int64_t D);
void router_small(const float* x, int64_t x_stride, int64_t T, int64_t D, const uint16_t* router,
                  int64_t router_stride, int n_experts, uint16_t* xb, float* logits,
                  cudaStream_t stream, bool early_start);

// For a few tokens (T k <= kSmallSlots) after the gated projection: out = act Wd^T per expert
// (gemm.h's chain, by mma.sync m16n8k16) and y[t] += the rank-order combine of moe.h, in one
// launch (moe_down_combine_small.cu); no out buffer. act [S, Fp] in grouped rows.
void down_combine_small(const uint16_t* act, int64_t Fp, const uint16_t* down, int64_t down_stride,
                        int64_t D, int n_experts, int top_k, int64_t T, const Grouping& g,
                        const float* weights, float* y, int64_t y_stride, cudaStream_t stream,
                        bool early_start);

// One grouped projection: for every tile i of the grouping, rows r of expert e = tile_expert[i]:
//   plain: y[r, n] = chain(a[r], w[e*N + n])                    f32, n < N
//   gated: act[r, n] = bf16(silu(chain(a[r], w[e*N + n])) * chain(a[r], w_up[e*N + n])), n < N,
//          +0 for N <= n < round_up(N, 8)
// where a[r] is row a_rows[r] of a (the token's row) or, a_rows null, row r, and chain is gemm.h's
// over K (a multiple of 8; a and w rows padded with zeros to their strides).
struct GroupedGemm {
  const uint16_t* a = nullptr;
  int64_t a_stride = 0;
  const int32_t* a_rows = nullptr;
  const uint16_t* w = nullptr;
  const uint16_t* w_up = nullptr;  // set: gated
  int64_t w_stride = 0;
  float* y = nullptr;       // plain output
  uint16_t* act = nullptr;  // gated output
  int64_t y_stride = 0;
  int64_t N = 0, K = 0;
  int64_t slots = 0;  // S: bounds the grid (max_tiles)
  int n_experts = 0;
  MoeExpertOrder order = MoeExpertOrder::canonical;
};
void grouped_gemm(const GroupedGemm& args, const Grouping& g, int bm, cudaStream_t stream,
                  bool early_start);

// y[t] += the combine of moe.h for t < T: out [S, D] (row stride D) in grouped rows, weights and
// ids [S] by slot. by_load reads the loads from offsets; atomic adds products one by one.
void combine(const float* out, const int32_t* ids, const float* weights, const Grouping& g,
             int64_t T, int top_k, int64_t D, float* y, int64_t y_stride, MoeCombineOrder order,
             cudaStream_t stream, bool early_start);
// The rank-order combine with 16-byte loads (the speed kernels; moe_combine_wide.cu), when
// combine_wide_fits: D, y's stride, y and out multiples of 4 floats.
bool combine_wide_fits(const float* out, int64_t D, const float* y, int64_t y_stride);
void combine_wide(const float* out, const float* weights, const Grouping& g, int64_t T, int top_k,
                  int64_t D, float* y, int64_t y_stride, cudaStream_t stream, bool early_start);

}  // namespace bx::cuda::moe
