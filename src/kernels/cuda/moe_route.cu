// The router's softmax and top-k on the GPU (moe.h "route"): kernels/moe_routing.h's
// route_tokens, step for step, one warp per token.
//
//   mx   = the largest logit (+0 over -0; the lowest-index NaN if there is one: row_max)
//   e[i] = exp_steps(l[i] - mx)                       (exp_f32's operations, kernels/exp_steps.h)
//   s    = the canonical 16-lane sum of e (kernels/lanes.h): lane j < 16 adds e[16 t + j] for
//          increasing t (+0 past E), then acc[j] = acc[j] + acc[j + h] for h = 8, 4, 2, 1
//   p[i] = e[i] / s
//   rank r takes the untaken expert that ranks above all others (larger p, equal p: lower id,
//   NaN below every number); normalize: n = ((w0 + w1) + w2) + ..., w[r] = w[r] / n
// The max and the top-k are selections under a strict total order, so the warp's reduction tree
// cannot change them; the sum's order is the lanes' above. Every arithmetic step is an explicit
// round-to-nearest operation (ieee::), so nvcc cannot contract or reorder it.
#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/exp_steps.h"

namespace bx::cuda {
namespace {

constexpr int kWarps = 4;  // tokens per block
constexpr unsigned kAll = 0xffffffffu;

__device__ __forceinline__ bool is_nan(float v) {
  return v != v;
}

// a (id a_id) ranks above b (id b_id): moe_routing.cpp's order.
__device__ __forceinline__ bool ranks_above(float a, int a_id, float b, int b_id) {
  if (is_nan(b)) return !is_nan(a) || a_id < b_id;
  if (is_nan(a)) return false;
  return a > b || (a == b && a_id < b_id);
}

__global__ void __launch_bounds__(kWarps * 32)
    route_kernel(const float* logits, int64_t stride, int64_t T, int E, int k, bool normalize,
                 int32_t* ids, float* weights) {
  __shared__ float p_all[kWarps][kMoeMaxExperts];
  moe::begin_step();
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (t >= T) return;
  const float* l = logits + t * stride;
  float* p = p_all[warp];

  // mx: row_max (the first NaN by index wins; else the max, +0 over -0).
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

  // Top-k: k warp-wide selections; lane i % 32 owns expert i and its taken bit.
  uint32_t taken = 0;  // bit j: expert lane + 32 j
  float w_rank[kMoeMaxTopK];
  int id_rank[kMoeMaxTopK];
  for (int r = 0; r < k; ++r) {
    int best = -1;
    float best_p = 0.0f;
    for (int j = 0, i = lane; i < E; ++j, i += 32) {
      if ((taken >> j) & 1u) continue;
      if (best < 0 || ranks_above(p[i], i, best_p, best)) {
        best = i;
        best_p = p[i];
      }
    }
    for (int h = 16; h >= 1; h /= 2) {
      const int o = __shfl_xor_sync(kAll, best, h);
      const float op = __shfl_xor_sync(kAll, best_p, h);
      if (o >= 0 && (best < 0 || ranks_above(op, o, best_p, best))) {
        best = o;
        best_p = op;
      }
    }
    if ((best & 31) == lane) taken |= 1u << (best >> 5);
    id_rank[r] = best;
    w_rank[r] = p[best];
  }
  if (lane == 0) {
    if (normalize) {
      float n = w_rank[0];
      for (int r = 1; r < k; ++r) n = ieee::add(n, w_rank[r]);
      for (int r = 0; r < k; ++r) w_rank[r] = ieee::div(w_rank[r], n);
    }
    for (int r = 0; r < k; ++r) {
      ids[t * k + r] = id_rank[r];
      weights[t * k + r] = w_rank[r];
    }
  }
}

}  // namespace

void moe_route(const float* logits, int64_t logits_stride, int64_t T, int n_experts, int top_k,
               bool normalize, int32_t* ids, float* weights, cudaStream_t stream,
               bool early_start) {
  BX_CHECK(n_experts >= 1 && n_experts <= kMoeMaxExperts && top_k >= 1 && top_k <= n_experts &&
               top_k <= kMoeMaxTopK,
           "moe_route: top-" + std::to_string(top_k) + " of " + std::to_string(n_experts) +
               " experts: expected 1 <= k <= experts <= " + std::to_string(kMoeMaxExperts) +
               " and k <= " + std::to_string(kMoeMaxTopK));
  if (T == 0) return;
  const auto blocks = static_cast<unsigned>((T + kWarps - 1) / kWarps);
  moe::launch_step(route_kernel, dim3(blocks), dim3(kWarps * 32), 0, stream, early_start,
                   "moe route_kernel", logits, logits_stride, T, n_experts, top_k, normalize, ids,
                   weights);
}

}  // namespace bx::cuda
