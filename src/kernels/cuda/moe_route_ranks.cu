// The router's softmax and top-k (moe.h "route", the orders in moe_route.cuh): a block of kTokens
// tokens, one warp per token for the softmax, then the block's threads over the (token, expert)
// pairs for the ranks, then one thread per token for the normalization. A token's route depends
// on its own logits only.
#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_route.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda {
namespace {

constexpr int kTokens = 8;  // tokens per block, one warp each
constexpr int kThreads = kTokens * 32;

__global__ void __launch_bounds__(kThreads)
    route_ranks_kernel(const float* logits, int64_t stride, int64_t T, int E, int k, bool normalize,
                       int32_t* ids, float* weights, int32_t* zero) {
  __shared__ float p[kTokens * kMoeMaxExperts];
  __shared__ int32_t id_s[kTokens * kMoeMaxTopK];
  __shared__ float w_s[kTokens * kMoeMaxTopK];
  moe::begin_step();
  if (zero != nullptr && blockIdx.x == 0 && threadIdx.x == 0) *zero = 0;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kTokens;
  const int n = static_cast<int>(min(static_cast<int64_t>(kTokens), T - t0));
  if (warp < n) moe::softmax_warp(logits + (t0 + warp) * stride, E, p + warp * E);
  __syncthreads();
  moe::top_k_block(p, n, E, k, id_s, w_s);
  __syncthreads();
  const int t = static_cast<int>(threadIdx.x);
  if (t < n && normalize) moe::normalize_token(w_s + t * k, k);
  __syncthreads();
  for (int q = static_cast<int>(threadIdx.x); q < n * k; q += kThreads) {
    ids[t0 * k + q] = id_s[q];
    weights[t0 * k + q] = w_s[q];
  }
}

}  // namespace

namespace moe {

void route_tokens(const float* logits, int64_t logits_stride, int64_t T, int n_experts, int top_k,
                  bool normalize, int32_t* ids, float* weights, int32_t* zero, cudaStream_t stream,
                  bool early_start) {
  BX_CHECK(n_experts >= 1 && n_experts <= kMoeMaxExperts && top_k >= 1 && top_k <= n_experts &&
               top_k <= kMoeMaxTopK,
           "moe_route: top-" + std::to_string(top_k) + " of " + std::to_string(n_experts) +
               " experts: expected 1 <= k <= experts <= " + std::to_string(kMoeMaxExperts) +
               " and k <= " + std::to_string(kMoeMaxTopK));
  if (T == 0) return;
  const auto blocks = static_cast<unsigned>((T + kTokens - 1) / kTokens);
  launch_step(route_ranks_kernel, dim3(blocks), dim3(kThreads), 0, stream, early_start,
              "moe route_ranks_kernel", logits, logits_stride, T, n_experts, top_k, normalize, ids,
              weights, zero);
}

}  // namespace moe

}  // namespace bx::cuda
