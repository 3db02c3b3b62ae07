// The stable counting sort of the (token, rank) slots by expert and the grouped GEMMs' tile list
// (moe_steps.h), on the device: one block per expert.
//
// Block e: every block counts all S slots per expert in shared memory (integer atomics: the
// counts do not depend on their order), then the block forms
//   offsets[e] = sum of counts[e'] for e' < e,   first_tile[e] = sum of ceil(counts[e'] / bm)
// (integer sums: exact in any order). Block e writes its expert's tile entries and scatters its
// slots: it walks the slots in increasing s, blockDim at a time, and a slot of expert e lands at
// offsets[e] + the number of expert e's slots before it (a ballot prefix within each warp, warp
// totals before it), so each expert's rows are its slots in increasing s, hence increasing token.
#include <algorithm>
#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__global__ void __launch_bounds__(kThreads)
    group_kernel(const int32_t* ids, int64_t S, int k, int E, int bm, Grouping g) {
  __shared__ int counts[kMoeMaxExperts];
  __shared__ int warp_count[kWarps], warp_rows[kWarps], warp_tiles[kWarps];
  __shared__ int base_s, first_tile_s;
  begin_step();
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const int e = static_cast<int>(blockIdx.x);
  for (int i = tid; i < E; i += kThreads) counts[i] = 0;
  __syncthreads();
  for (int64_t s = tid; s < S; s += kThreads) atomicAdd(&counts[ids[s]], 1);
  __syncthreads();
  // Rows and tiles of the experts below e: integer sums, so any order gives the same values.
  int rows_below = 0, tiles_below = 0;
  for (int i = tid; i < e; i += kThreads) {
    rows_below += counts[i];
    tiles_below += (counts[i] + bm - 1) / bm;
  }
  for (int h = 16; h >= 1; h /= 2) {
    rows_below += __shfl_down_sync(0xffffffffu, rows_below, h);
    tiles_below += __shfl_down_sync(0xffffffffu, tiles_below, h);
  }
  if (lane == 0) {
    warp_rows[warp] = rows_below;
    warp_tiles[warp] = tiles_below;
  }
  __syncthreads();
  if (tid == 0) {
    int base = 0, first_tile = 0;
    for (int w = 0; w < kWarps; ++w) {
      base += warp_rows[w];
      first_tile += warp_tiles[w];
    }
    base_s = base;
    first_tile_s = first_tile;
    g.offsets[e] = base;
    if (e == E - 1) {
      g.offsets[E] = static_cast<int32_t>(S);
      *g.n_tiles = first_tile + (counts[e] + bm - 1) / bm;
    }
  }
  __syncthreads();
  const int base = base_s, n = counts[e];
  for (int j = tid; j < (n + bm - 1) / bm; j += kThreads) {
    g.tile_expert[first_tile_s + j] = e;
    g.tile_row0[first_tile_s + j] = base + j * bm;
  }
  int placed = 0;
  for (int64_t s0 = 0; s0 < S; s0 += kThreads) {
    const int64_t s = s0 + tid;
    const bool mine = s < S && ids[s] == e;
    const unsigned ballot = __ballot_sync(0xffffffffu, mine);
    if (lane == 0) warp_count[warp] = __popc(ballot);
    __syncthreads();
    int before = placed, total = placed;
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) before += warp_count[w];
      total += warp_count[w];
    }
    if (mine) {
      const int row = base + before + __popc(ballot & ((1u << lane) - 1u));
      g.row_of[s] = row;
      g.row_token[row] = static_cast<int32_t>(s / k);
    }
    placed = total;
    __syncthreads();  // warp_count is rewritten next round
  }
}

}  // namespace

int tile_rows(int64_t T, int top_k, int n_experts) {
  const int64_t mean_rows = T * top_k / std::max(n_experts, 1);
  if (mean_rows <= 16) return 16;
  if (mean_rows <= 64) return 64;
  return 128;
}

int64_t max_tiles(int64_t slots, int n_experts, int bm) {
  return (slots + bm - 1) / bm + std::min<int64_t>(n_experts, slots);
}

void group_by_expert(const int32_t* ids, int64_t T, int top_k, int n_experts, int bm,
                     const Grouping& g, cudaStream_t stream, bool early_start) {
  BX_CHECK(n_experts >= 1 && n_experts <= kMoeMaxExperts,
           "moe group_by_expert: " + std::to_string(n_experts) + " experts: expected 1 to " +
               std::to_string(kMoeMaxExperts));
  BX_CHECK(T * top_k < (int64_t{1} << 31), "moe group_by_expert: too many slots");
  launch_step(group_kernel, dim3(static_cast<unsigned>(n_experts)), dim3(kThreads), 0, stream,
              early_start, "moe group_kernel", ids, T * top_k, top_k, n_experts, bm, g);
}

}  // namespace bx::cuda::moe
