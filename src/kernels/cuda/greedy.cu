// Greedy choice per row (greedy.h).
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/greedy.h"

namespace bx::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int32_t kNone = 0x7fffffff;  // no non-NaN value seen

// (value a, id ia) beats (value b, id ib): larger value, or equal value and lower id. An id of
// kNone never beats anything and anything real beats it.
__device__ __forceinline__ bool beats(float a, int32_t ia, float b, int32_t ib) {
  if (ia == kNone) return false;
  if (ib == kNone) return true;
  return a > b || (a == b && ia < ib);
}

__global__ void greedy_kernel(const float* logits, int64_t logits_stride, const float* logprobs,
                              int64_t logprobs_stride, int64_t cols, int32_t* ids, float* chosen) {
  __shared__ float best_value[kThreads];
  __shared__ int32_t best_id[kThreads];
  const int64_t r = blockIdx.x;
  const float* row = logits + r * logits_stride;
  float value = 0.0f;
  int32_t id = kNone;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) {  // ascending ids per thread
    const float x = row[i];
    if (x != x) continue;  // NaN
    if (id == kNone || x > value) value = x, id = static_cast<int32_t>(i);
  }
  best_value[threadIdx.x] = value;
  best_id[threadIdx.x] = id;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const int other = threadIdx.x + half;
      if (beats(best_value[other], best_id[other], best_value[threadIdx.x], best_id[threadIdx.x])) {
        best_value[threadIdx.x] = best_value[other];
        best_id[threadIdx.x] = best_id[other];
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const int32_t winner = best_id[0] == kNone ? 0 : best_id[0];
    ids[r] = winner;
    chosen[r] = logprobs[r * logprobs_stride + winner];
  }
}

}  // namespace

void greedy_rows(const float* logits, int64_t logits_stride, const float* logprobs,
                 int64_t logprobs_stride, int64_t rows, int64_t cols, int32_t* ids, float* chosen,
                 cudaStream_t stream) {
  if (rows <= 0) return;
  greedy_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      logits, logits_stride, logprobs, logprobs_stride, cols, ids, chosen);
  check_launch("greedy_kernel");
}

}  // namespace bx::cuda
