// The top-k combine (moe.h): y[t] += the token's k expert rows weighted. Block (t, j): token t,
// columns [256 j, 256 j + 256), one column per thread (so even one token spreads its loads over
// D / 256 blocks).
//
// rank:    a = w[t,0] o[t,0]; a = a + w[t,r] o[t,r] for r = 1 .. k-1; y = y + a
// by_load: the same sum with the ranks ordered by their expert's load (decreasing; equal loads:
//          lower id first), the order a busiest-first scheduler finishes them (the control)
// atomic:  atomicAdd(y, w[t,r] o[t,r]) for each slot, one thread per (slot, column): the order
//          the hardware lands them (fast mode)
// Products and sums are explicit round-to-nearest operations (no FMA).
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    combine_kernel(const float* out, const int32_t* ids, const float* weights, Grouping g, int k,
                   int64_t D, float* y, int64_t y_stride, bool by_load) {
  __shared__ int64_t row[kMoeMaxTopK];
  __shared__ float w[kMoeMaxTopK];
  begin_step();
  const int64_t t = blockIdx.x;
  if (!by_load) {  // rank order: thread r loads rank r's row and weight
    const int r = static_cast<int>(threadIdx.x);
    if (r < k) {
      row[r] = g.row_of[t * k + r];
      w[r] = weights[t * k + r];
    }
  } else if (threadIdx.x == 0) {
    int order[kMoeMaxTopK];
    for (int r = 0; r < k; ++r) order[r] = r;
    {  // insertion sort by (load decreasing, id increasing)
      const int32_t* id = ids + t * k;
      auto load = [&](int r) { return g.offsets[id[r] + 1] - g.offsets[id[r]]; };
      for (int i = 1; i < k; ++i) {
        const int r = order[i];
        int j = i;
        while (j > 0) {
          const int q = order[j - 1];
          const bool q_first = load(q) > load(r) || (load(q) == load(r) && id[q] < id[r]);
          if (q_first) break;
          order[j] = q;
          --j;
        }
        order[j] = r;
      }
    }
    for (int i = 0; i < k; ++i) {
      const int64_t s = t * k + order[i];
      row[i] = g.row_of[s];
      w[i] = weights[s];
    }
  }
  __syncthreads();
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= D) return;
  float a = __fmul_rn(w[0], out[row[0] * D + c]);
  for (int i = 1; i < k; ++i) a = __fadd_rn(a, __fmul_rn(w[i], out[row[i] * D + c]));
  float* yc = y + t * y_stride + c;
  *yc = __fadd_rn(*yc, a);
}

__global__ void __launch_bounds__(kThreads)
    combine_atomic_kernel(const float* out, const float* weights, Grouping g, int k, int64_t D,
                          float* y, int64_t y_stride) {
  begin_step();
  const int64_t s = blockIdx.x;
  const int64_t t = s / k;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= D) return;
  const float* o = out + static_cast<int64_t>(g.row_of[s]) * D;
  atomicAdd(y + t * y_stride + c, __fmul_rn(weights[s], o[c]));
}

}  // namespace

void combine(const float* out, const int32_t* ids, const float* weights, const Grouping& g,
             int64_t T, int top_k, int64_t D, float* y, int64_t y_stride, MoeCombineOrder order,
             cudaStream_t stream, bool early_start) {
  if (T == 0) return;
  const auto column_blocks = static_cast<unsigned>((D + kThreads - 1) / kThreads);
  if (order == MoeCombineOrder::atomic) {
    launch_step(combine_atomic_kernel, dim3(static_cast<unsigned>(T * top_k), column_blocks),
                dim3(kThreads), 0, stream, early_start, "moe combine_atomic_kernel", out, weights,
                g, top_k, D, y, y_stride);
    return;
  }
  launch_step(combine_kernel, dim3(static_cast<unsigned>(T), column_blocks), dim3(kThreads), 0,
              stream, early_start, "moe combine_kernel", out, ids, weights, g, top_k, D, y,
              y_stride, order == MoeCombineOrder::by_load);
}

}  // namespace bx::cuda::moe
