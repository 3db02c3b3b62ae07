// The stable counting sort of the (token, rank) slots by expert and the grouped GEMMs' tile list
// (moe_steps.h), on the device, for any T: two launches over chunks of kGroupChunk slots.
//
// count_kernel, block c (slots [c C, (c + 1) C)): counts[c][e] = expert e's slots in chunk c
// (shared-memory integer atomics: counts do not depend on their order). The last block to finish
// (a ticket: every block's counts are visible to it after its __threadfence) forms
//   chunk_base[c][e] = sum of counts[c'][e] for c' < c       (in place over counts)
//   offsets[e] = sum of totals[e'] for e' < e,  first_tile[e] = sum of ceil(totals[e'] / bm)
// and the tile list. Integer sums: exact in any order.
// scatter_kernel, block (c, part): slot s of chunk c with expert e takes grouped row
//   offsets[e] + chunk_base[c][e] + (expert e's slots before s in chunk c)
// so each expert's rows are its slots in increasing s, hence increasing token; block part 0
// writes row_of and row_token, and every part gathers its share of the chunk's xb rows into xg.
#include <algorithm>
#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kThreads = kGroupChunk;  // one slot per thread
constexpr int kGatherParts = 4;        // blocks sharing one chunk's row copies

__global__ void __launch_bounds__(kThreads)
    count_kernel(const int32_t* ids, int64_t S, int E, int bm, Grouping g) {
  __shared__ int counts[kMoeMaxExperts];
  __shared__ bool last;
  begin_step();
  const int tid = static_cast<int>(threadIdx.x);
  const int c = static_cast<int>(blockIdx.x);
  const int chunks = static_cast<int>(gridDim.x);
  for (int e = tid; e < E; e += kThreads) counts[e] = 0;
  __syncthreads();
  const int64_t s = static_cast<int64_t>(c) * kGroupChunk + tid;
  if (s < S) atomicAdd(&counts[ids[s]], 1);
  __syncthreads();
  for (int e = tid; e < E; e += kThreads) g.chunk_base[static_cast<int64_t>(c) * E + e] = counts[e];
  __threadfence();
  __syncthreads();
  if (tid == 0) last = atomicAdd(g.ticket, 1) == chunks - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  // Exclusive prefix over chunks per expert, eight loads in flight at a time.
  for (int e = tid; e < E; e += kThreads) {
    int run = 0;
    for (int c0 = 0; c0 < chunks; c0 += 8) {
      int v[8];
#pragma unroll
      for (int j = 0; j < 8; ++j)
        v[j] = c0 + j < chunks ? __ldcg(g.chunk_base + static_cast<int64_t>(c0 + j) * E + e) : 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (c0 + j < chunks) g.chunk_base[static_cast<int64_t>(c0 + j) * E + e] = run;
        run += v[j];
      }
    }
    counts[e] = run;  // expert e's total
  }
  __syncthreads();
  for (int e = tid; e < E; e += kThreads) {
    int rows_below = 0, tiles_below = 0;
    for (int i = 0; i < e; ++i) {
      rows_below += counts[i];
      tiles_below += (counts[i] + bm - 1) / bm;
    }
    g.offsets[e] = rows_below;
    const int n_tiles = (counts[e] + bm - 1) / bm;
    for (int j = 0; j < n_tiles; ++j) {
      g.tile_expert[tiles_below + j] = e;
      g.tile_row0[tiles_below + j] = rows_below + j * bm;
    }
    if (e == E - 1) {
      g.offsets[E] = static_cast<int32_t>(S);
      *g.n_tiles = tiles_below + n_tiles;
    }
  }
  if (tid == 0) *g.ticket = 0;  // for the next call
}

__global__ void __launch_bounds__(kThreads)
    scatter_kernel(const int32_t* __restrict__ ids, int64_t S, int k, int E, Grouping g,
                   const uint16_t* __restrict__ xb, int64_t stride, uint16_t* __restrict__ xg) {
  __shared__ int e_s[kThreads];
  __shared__ int row_s[kThreads], token_s[kThreads];
  begin_step();
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t s0 = static_cast<int64_t>(blockIdx.x) * kGroupChunk;
  const int64_t s = s0 + tid;
  const int e = s < S ? ids[s] : -1;
  e_s[tid] = e;
  __syncthreads();
  if (e >= 0) {
    int before = 0;
    for (int j = 0; j < kThreads; ++j) before += (j < tid && e_s[j] == e) ? 1 : 0;
    const int row = g.offsets[e] + g.chunk_base[static_cast<int64_t>(blockIdx.x) * E + e] + before;
    const int token = static_cast<int>(s / k);
    if (blockIdx.y == 0) {
      g.row_of[s] = row;
      g.row_token[row] = token;
    }
    row_s[tid] = row;
    token_s[tid] = token;
  }
  __syncthreads();
  if (xg == nullptr) return;
  const int n = static_cast<int>(min(static_cast<int64_t>(kGroupChunk), S - s0));
  const int per_part = (kGroupChunk + kGatherParts - 1) / kGatherParts;
  const int first = static_cast<int>(blockIdx.y) * per_part;
  const int last = min(n, first + per_part);
  const int64_t row_chunks = stride / 8;  // 16-byte pieces per row
  const int64_t pieces = (last - first) * row_chunks;
#pragma unroll 8
  for (int64_t q = tid; q < pieces; q += kThreads) {
    const int i = first + static_cast<int>(q / row_chunks);
    const int64_t piece = q - (i - first) * row_chunks;
    const uint4 v = reinterpret_cast<const uint4*>(xb + token_s[i] * stride)[piece];
    reinterpret_cast<uint4*>(xg + static_cast<int64_t>(row_s[i]) * stride)[piece] = v;
  }
}

}  // namespace

int64_t max_tiles_tight(int64_t slots, int n_experts, int bm) {
  // m <= min(E, S) non-empty experts of n_e rows: sum ceil(n_e / bm) <= sum (n_e + bm - 1) / bm
  // = (S + m (bm - 1)) / bm, an integer bound (exact at T = 1: one tile per chosen expert).
  const int64_t m = std::min<int64_t>(n_experts, slots);
  return (slots + m * (bm - 1)) / bm;
}

int64_t group_chunks(int64_t slots) {
  return (slots + kGroupChunk - 1) / kGroupChunk;
}

void count_by_expert(const int32_t* ids, int64_t S, int n_experts, int bm, const Grouping& g,
                     cudaStream_t stream, bool early_start) {
  BX_CHECK(n_experts >= 1 && n_experts <= kMoeMaxExperts,
           "moe count_by_expert: " + std::to_string(n_experts) + " experts: expected 1 to " +
               std::to_string(kMoeMaxExperts));
  BX_CHECK(S < (int64_t{1} << 31), "moe count_by_expert: too many slots");
  if (S == 0) return;
  launch_step(count_kernel, dim3(static_cast<unsigned>(group_chunks(S))), dim3(kThreads), 0, stream,
              early_start, "moe count_kernel", ids, S, n_experts, bm, g);
}

void scatter_by_expert(const int32_t* ids, int64_t S, int top_k, int n_experts, const Grouping& g,
                       const uint16_t* xb, int64_t stride, uint16_t* xg, cudaStream_t stream,
                       bool early_start) {
  if (S == 0) return;
  const unsigned parts = xg != nullptr ? kGatherParts : 1;
  launch_step(scatter_kernel, dim3(static_cast<unsigned>(group_chunks(S)), parts), dim3(kThreads),
              0, stream, early_start, "moe scatter_kernel", ids, S, top_k, n_experts, g, xb, stride,
              xg);
}

}  // namespace bx::cuda::moe
