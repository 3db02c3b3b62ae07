// The rank-order top-k combine with 16-byte loads (moe_steps.h combine_wide; the speed kernels):
// y[t] += the token's k expert rows weighted, as moe_combine.cu's rank order, four adjacent
// columns per thread. Block (t, j): token t, columns [1024 j, 1024 (j + 1)).
//   a = w[t,0] o[t,0]; a = a + w[t,r] o[t,r] for r = 1 .. k-1; y = y + a
// per column, each product and sum an explicit round-to-nearest operation (no FMA): the same
// operations on each column as moe_combine.cu.
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kThreads = 256;
constexpr int kCols = 4;  // per thread

struct alignas(16) Float4 {
  float f[kCols];
};

__global__ void __launch_bounds__(kThreads)
    combine_wide_kernel(const float* out, const float* weights, Grouping g, int k, int64_t D,
                        float* y, int64_t y_stride) {
  __shared__ int64_t row[kMoeMaxTopK];
  __shared__ float w[kMoeMaxTopK];
  begin_step();
  const int64_t t = blockIdx.x;
  const int r = static_cast<int>(threadIdx.x);
  if (r < k) {
    row[r] = g.row_of[t * k + r];
    w[r] = weights[t * k + r];
  }
  __syncthreads();
  const int64_t c = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * kCols;
  if (c >= D) return;
  float a[kCols];
  {
    const Float4 o = *reinterpret_cast<const Float4*>(out + row[0] * D + c);
#pragma unroll
    for (int v = 0; v < kCols; ++v) a[v] = __fmul_rn(w[0], o.f[v]);
  }
#pragma unroll 8
  for (int i = 1; i < k; ++i) {
    const Float4 o = *reinterpret_cast<const Float4*>(out + row[i] * D + c);
#pragma unroll
    for (int v = 0; v < kCols; ++v) a[v] = __fadd_rn(a[v], __fmul_rn(w[i], o.f[v]));
  }
  Float4* yc = reinterpret_cast<Float4*>(y + t * y_stride + c);
  Float4 yv = *yc;
#pragma unroll
  for (int v = 0; v < kCols; ++v) yv.f[v] = __fadd_rn(yv.f[v], a[v]);
  *yc = yv;
}

}  // namespace

bool combine_wide_fits(const float* out, int64_t D, const float* y, int64_t y_stride) {
  return D % kCols == 0 && y_stride % kCols == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(out) % 16 == 0;
}

void combine_wide(const float* out, const float* weights, const Grouping& g, int64_t T, int top_k,
                  int64_t D, float* y, int64_t y_stride, cudaStream_t stream, bool early_start) {
  if (T == 0) return;
  const auto blocks = static_cast<unsigned>((D + kCols * kThreads - 1) / (kCols * kThreads));
  launch_step(combine_wide_kernel, dim3(static_cast<unsigned>(T), blocks), dim3(kThreads), 0,
              stream, early_start, "moe combine_wide_kernel", out, weights, g, top_k, D, y,
              y_stride);
}

}  // namespace bx::cuda::moe
