// The router's softmax and top-k on the GPU (moe.h "route"): kernels/moe_routing.h's
// route_tokens, step for step, as device functions for moe_route.cu's kernel and the fused small-T
// grouping (moe_group_small.cu).
//
// softmax_warp (one warp per token):
//   mx   = the largest logit (+0 over -0; the lowest-index NaN if there is one: row_max)
//   e[i] = exp_steps(l[i] - mx)                       (exp_f32's operations, kernels/exp_steps.h)
//   s    = the canonical 16-lane sum of e (kernels/lanes.h): lane j < 16 adds e[16 t + j] for
//          increasing t (+0 past E), then acc[j] = acc[j] + acc[j + h] for h = 8, 4, 2, 1
//   p[i] = e[i] / s
// top_k_block (any threads, pairs (token, expert) spread over them): expert i's rank is the
//   number of experts that rank above it (larger p; equal p: lower id; NaN below every number):
//   a strict total order, so the ranks are 0 .. E-1, each once, whatever thread counts them;
//   ranks below k are the token's top-k in rank order.
// normalize_token: n = ((w0 + w1) + w2) + ..., w[r] = w[r] / n (one thread).
// The max and the top-k are selections under a strict total order, so no reduction tree can
// change them; the sum's order is the lanes' above. Every arithmetic step is an explicit
// round-to-nearest operation (ieee::), so nvcc cannot contract or reorder it.
#pragma once

#include <cstdint>

#include "kernels/exp_steps.h"

namespace bx::cuda::moe {

__device__ __forceinline__ bool is_nan(float v) {
  return v != v;
}

// a (id a_id) ranks above b (id b_id): moe_routing.cpp's order.
__device__ __forceinline__ bool ranks_above(float a, int a_id, float b, int b_id) {
  if (is_nan(b)) return !is_nan(a) || a_id < b_id;
  if (is_nan(a)) return false;
  return a > b || (a == b && a_id < b_id);
}

// p[0 .. E) = softmax(l[0 .. E)) by the calling warp (all 32 lanes); p in shared memory.
__device__ __forceinline__ void softmax_warp(const float* l, int E, float* p) {
  constexpr unsigned kAll = 0xffffffffu;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  float mx = -ieee::infinity();
  int first_nan = E;
  for (int i = lane; i < E; i += 32) {
    const float v = l[i];
    if (is_nan(v)) {
      first_nan = min(first_nan, i);
    } else if (v > mx || (v == mx && !signbit(v))) {
      mx = v;
    }
  }
  for (int h = 16; h >= 1; h /= 2) {
    const float o = __shfl_xor_sync(kAll, mx, h);
    if (o > mx || (o == mx && !signbit(o))) mx = o;
    first_nan = min(first_nan, __shfl_xor_sync(kAll, first_nan, h));
  }
  if (first_nan < E) mx = l[first_nan];

  for (int i = lane; i < E; i += 32) p[i] = exp_steps(ieee::sub(l[i], mx));
  __syncwarp();
  float acc = 0.0f;
  if (lane < 16) {
    for (int base = 0; base < E; base += 16) {
      const int i = base + lane;
      acc = ieee::add(acc, i < E ? p[i] : 0.0f);
    }
  }
  for (int h = 8; h >= 1; h /= 2) {
    const float o = __shfl_down_sync(kAll, acc, h);
    if (lane < h) acc = ieee::add(acc, o);
  }
  const float s = __shfl_sync(kAll, acc, 0);
  __syncwarp();
  for (int i = lane; i < E; i += 32) p[i] = ieee::div(p[i], s);
  __syncwarp();
}

// For tokens t < n_tokens with probabilities p[t * E + i] (shared memory): ids[t * k + r] and
// w[t * k + r] for ranks r < k. All threads of the block take part (no barrier inside; the
// caller synchronises before and after).
__device__ __forceinline__ void top_k_block(const float* p, int n_tokens, int E, int k,
                                            int32_t* ids, float* w) {
  const int pairs = n_tokens * E;
  for (int q = static_cast<int>(threadIdx.x); q < pairs; q += static_cast<int>(blockDim.x)) {
    const int t = q / E, i = q - t * E;
    const float* pt = p + t * E;
    const float pi = pt[i];
    int rank = 0;
    for (int j = 0; j < E; ++j) rank += ranks_above(pt[j], j, pi, i) ? 1 : 0;
    if (rank < k) {
      ids[t * k + rank] = i;
      w[t * k + rank] = pi;
    }
  }
}

// The model's normalization of one token's k weights, in rank order.
__device__ __forceinline__ void normalize_token(float* w, int k) {
  float n = w[0];
  for (int r = 1; r < k; ++r) n = ieee::add(n, w[r]);
  for (int r = 0; r < k; ++r) w[r] = ieee::div(w[r], n);
}

}  // namespace bx::cuda::moe
