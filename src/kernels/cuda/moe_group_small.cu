// Routing and grouping for a few tokens (decode) in one block (moe_steps.h route_and_group_small):
// the route of moe_route.cuh (one warp per token for the softmax, the block's threads over the
// (token, expert) pairs for the ranks), then the grouping of moe_group.cu with all T k slots as
// one chunk, then the gather of xb rows into expert order. The same orders, so the same ids,
// weights, rows and tile list as moe_route + count_by_expert + scatter_by_expert.
#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_route.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__global__ void __launch_bounds__(kThreads)
    route_group_small_kernel(const float* logits, int64_t logits_stride, int T, int E, int k,
                             bool normalize, int bm, int32_t* ids, float* weights, Grouping g,
                             const uint16_t* __restrict__ xb, int64_t stride,
                             uint16_t* __restrict__ xg) {
  extern __shared__ float p[];  // [T, E]
  __shared__ int32_t id_s[kSmallSlots];
  __shared__ float w_s[kSmallSlots];
  __shared__ int counts[kMoeMaxExperts], rows_s[kMoeMaxExperts];
  __shared__ int row_s[kSmallSlots];
  begin_step();
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid >> 5;
  const int S = T * k;
  for (int t = warp; t < T; t += kWarps) softmax_warp(logits + t * logits_stride, E, p + t * E);
  for (int e = tid; e < E; e += kThreads) counts[e] = 0;
  __syncthreads();
  top_k_block(p, T, E, k, id_s, w_s);
  __syncthreads();
  if (tid < T && normalize) normalize_token(w_s + tid * k, k);
  if (tid < S) atomicAdd(&counts[id_s[tid]], 1);
  __syncthreads();
  if (tid < S) {
    ids[tid] = id_s[tid];
    weights[tid] = w_s[tid];
  }
  for (int e = tid; e < E; e += kThreads) {
    int rows_below = 0, tiles_below = 0;
    for (int i = 0; i < e; ++i) {
      rows_below += counts[i];
      tiles_below += (counts[i] + bm - 1) / bm;
    }
    rows_s[e] = rows_below;
    g.offsets[e] = rows_below;
    const int n_tiles = (counts[e] + bm - 1) / bm;
    for (int j = 0; j < n_tiles; ++j) {
      g.tile_expert[tiles_below + j] = e;
      g.tile_row0[tiles_below + j] = rows_below + j * bm;
    }
    if (e == E - 1) {
      g.offsets[E] = S;
      *g.n_tiles = tiles_below + n_tiles;
    }
  }
  __syncthreads();
  if (tid < S) {
    const int e = id_s[tid];
    int before = 0;
    for (int j = 0; j < tid; ++j) before += id_s[j] == e ? 1 : 0;
    const int row = rows_s[e] + before;
    g.row_of[tid] = row;
    g.row_token[row] = tid / k;
    row_s[tid] = row;
  }
  __syncthreads();
  if (xg == nullptr) return;
  const int64_t row_chunks = stride / 8;  // 16-byte pieces per row
  const int64_t pieces = S * row_chunks;
#pragma unroll 8
  for (int64_t q = tid; q < pieces; q += kThreads) {
    const int s = static_cast<int>(q / row_chunks);
    const int64_t piece = q - s * row_chunks;
    const uint4 v = reinterpret_cast<const uint4*>(xb + (s / k) * stride)[piece];
    reinterpret_cast<uint4*>(xg + static_cast<int64_t>(row_s[s]) * stride)[piece] = v;
  }
}

}  // namespace

bool small_grouping(int64_t T, int top_k, int n_experts) {
  return T <= kSmallTokens && T * top_k <= kSmallSlots && T * n_experts * 4 <= kSmallProbBytes;
}

void route_and_group_small(const float* logits, int64_t logits_stride, int64_t T, int n_experts,
                           int top_k, bool normalize, int bm, int32_t* ids, float* weights,
                           const Grouping& g, const uint16_t* xb, int64_t stride, uint16_t* xg,
                           cudaStream_t stream, bool early_start) {
  BX_CHECK(small_grouping(T, top_k, n_experts) && n_experts <= kMoeMaxExperts,
           "moe route_and_group_small: T = " + std::to_string(T) + ", top-" +
               std::to_string(top_k) + " of " + std::to_string(n_experts) +
               ": more than one block takes");
  if (T == 0) return;
  const size_t smem = static_cast<size_t>(T * n_experts) * 4;
  launch_step(route_group_small_kernel, dim3(1), dim3(kThreads), smem, stream, early_start,
              "moe route_group_small_kernel", logits, logits_stride, static_cast<int>(T), n_experts,
              top_k, normalize, bm, ids, weights, g, xb, stride, xg);
}

}  // namespace bx::cuda::moe
