// Gathering the tokens' bf16 rows into expert order (moe_steps.h gather_rows): one block per
// grouped row, 16-byte copies.
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    gather_kernel(const uint16_t* x, int64_t stride, const int32_t* row_token, uint16_t* out) {
  begin_step();
  const int64_t row = blockIdx.x;
  const uint4* src = reinterpret_cast<const uint4*>(x + row_token[row] * stride);
  uint4* dst = reinterpret_cast<uint4*>(out + row * stride);
  for (int64_t i = threadIdx.x; i < stride / 8; i += kThreads) dst[i] = src[i];
}

}  // namespace

void gather_rows(const uint16_t* x, int64_t stride, const int32_t* row_token, int64_t rows,
                 uint16_t* out, cudaStream_t stream, bool early_start) {
  if (rows == 0) return;
  launch_step(gather_kernel, dim3(static_cast<unsigned>(rows)), dim3(kThreads), 0, stream,
              early_start, "moe gather_kernel", x, stride, row_token, out);
}

}  // namespace bx::cuda::moe
