// Row-wise and elementwise kernels (rows.h).
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/rows.h"

namespace bx::cuda {
namespace {

// Sum of one value per thread in the fixed tree of rows.h; every thread gets the total.
// scratch holds at least kThreads / 32 floats.
template <int kThreads>
__device__ __forceinline__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o >= 1; o /= 2) v = v + __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  if ((threadIdx.x & 31) == 0) scratch[warp] = v;
  __syncthreads();
  float total = scratch[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w) total = total + scratch[w];
  __syncthreads();  // scratch may be reused
  return total;
}

template <int kThreads>
__device__ __forceinline__ float block_max(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o >= 1; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  if ((threadIdx.x & 31) == 0) scratch[warp] = v;
  __syncthreads();
  float total = scratch[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w) total = fmaxf(total, scratch[w]);
  __syncthreads();
  return total;
}

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_kernel(const float* x, int64_t x_stride, const float* w, float eps, float* out,
                   int64_t out_stride, int64_t D) {
  __shared__ float scratch[kThreads / 32];
  const float* row = x + static_cast<int64_t>(blockIdx.x) * x_stride;
  float* dst = out + static_cast<int64_t>(blockIdx.x) * out_stride;
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < D; i += kThreads) acc = fmaf(row[i], row[i], acc);
  const float ss = block_sum<kThreads>(acc, scratch);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
  for (int64_t i = threadIdx.x; i < D; i += kThreads) dst[i] = (row[i] * r) * w[i];
}

// NaN in any element makes the row NaN (fmaxf skips NaN, so the sum carries it instead).
__global__ void __launch_bounds__(kRowThreads)
    log_softmax_kernel(const float* x, int64_t x_stride, float* out, int64_t out_stride,
                       int64_t N) {
  __shared__ float scratch[kRowThreads / 32];
  const float* row = x + static_cast<int64_t>(blockIdx.x) * x_stride;
  float* dst = out + static_cast<int64_t>(blockIdx.x) * out_stride;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < N; i += kRowThreads) mx = fmaxf(mx, row[i]);
  mx = block_max<kRowThreads>(mx, scratch);
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < N; i += kRowThreads) acc = acc + expf(row[i] - mx);
  const float log_s = logf(block_sum<kRowThreads>(acc, scratch));
  for (int64_t i = threadIdx.x; i < N; i += kRowThreads) dst[i] = (row[i] - mx) - log_s;
}

__global__ void silu_mul_kernel(const float* gate, int64_t gate_stride, const float* up,
                                int64_t up_stride, float* out, int64_t out_stride, int64_t F) {
  const int64_t m = blockIdx.y;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < F;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[m * gate_stride + i];
    out[m * out_stride + i] = (g / (1.0f + expf(-g))) * up[m * up_stride + i];
  }
}

__global__ void add_kernel(float* y, int64_t y_stride, const float* x, int64_t x_stride,
                           int64_t D) {
  const int64_t m = blockIdx.y;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < D;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[m * y_stride + i] = y[m * y_stride + i] + x[m * x_stride + i];
  }
}

__global__ void to_bf16_kernel(const float* x, int64_t x_stride, uint16_t* out, int64_t out_stride,
                               int64_t K, int64_t K_padded) {
  const int64_t m = blockIdx.y;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < K_padded;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = i < K ? x[m * x_stride + i] : 0.0f;
    out[m * out_stride + i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

__global__ void copy_rows_kernel(const void* src, bool src_bf16, int64_t src_stride,
                                 const int32_t* ids, float* out, int64_t out_stride, int64_t D) {
  const int64_t t = blockIdx.y;
  const int64_t r = ids[t];
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < D;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v;
    if (src_bf16) {
      const uint16_t h = static_cast<const uint16_t*>(src)[r * src_stride + i];
      v = __uint_as_float(static_cast<uint32_t>(h) << 16);
    } else {
      v = static_cast<const float*>(src)[r * src_stride + i];
    }
    out[t * out_stride + i] = v;
  }
}

// Grid for an elementwise pass over M rows of D: (blocks per row, M).
dim3 elementwise_grid(int64_t M, int64_t D) {
  const int64_t per_row = (D + 255) / 256;
  return dim3(static_cast<unsigned>(per_row < 64 ? per_row : 64), static_cast<unsigned>(M));
}

void check_rows(int64_t M, int64_t D, const char* what) {
  BX_CHECK(M >= 0 && D >= 0, std::string(what) + ": negative size");
  BX_CHECK(M <= 65535,
           std::string(what) + ": " + std::to_string(M) + " rows exceed the grid limit of 65535");
}

}  // namespace

void rmsnorm(const float* x, int64_t x_stride, const float* w, float eps, float* out,
             int64_t out_stride, int64_t M, int64_t D, cudaStream_t stream, int threads_per_row) {
  check_rows(0, D, "rmsnorm");
  BX_CHECK(M >= 0, "rmsnorm: negative M");
  if (M == 0) return;
  if (threads_per_row == 128) {
    rmsnorm_kernel<128>
        <<<static_cast<unsigned>(M), 128, 0, stream>>>(x, x_stride, w, eps, out, out_stride, D);
  } else {
    BX_CHECK(threads_per_row == kRowThreads, "rmsnorm: threads_per_row must be 256 or 128");
    rmsnorm_kernel<kRowThreads><<<static_cast<unsigned>(M), kRowThreads, 0, stream>>>(
        x, x_stride, w, eps, out, out_stride, D);
  }
  check_launch("rmsnorm_kernel");
}

void log_softmax(const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t M,
                 int64_t N, cudaStream_t stream) {
  BX_CHECK(M >= 0 && N >= 0, "log_softmax: negative size");
  if (M == 0) return;
  log_softmax_kernel<<<static_cast<unsigned>(M), kRowThreads, 0, stream>>>(x, x_stride, out,
                                                                           out_stride, N);
  check_launch("log_softmax_kernel");
}

void silu_mul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
              float* out, int64_t out_stride, int64_t M, int64_t F, cudaStream_t stream) {
  check_rows(M, F, "silu_mul");
  if (M == 0 || F == 0) return;
  silu_mul_kernel<<<elementwise_grid(M, F), 256, 0, stream>>>(gate, gate_stride, up, up_stride, out,
                                                              out_stride, F);
  check_launch("silu_mul_kernel");
}

void add_inplace(float* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t M, int64_t D,
                 cudaStream_t stream) {
  check_rows(M, D, "add_inplace");
  if (M == 0 || D == 0) return;
  add_kernel<<<elementwise_grid(M, D), 256, 0, stream>>>(y, y_stride, x, x_stride, D);
  check_launch("add_kernel");
}

void to_bf16_padded(const float* x, int64_t x_stride, uint16_t* out, int64_t out_stride, int64_t M,
                    int64_t K, int64_t K_padded, cudaStream_t stream) {
  check_rows(M, K_padded, "to_bf16_padded");
  BX_CHECK(K <= K_padded && out_stride >= K_padded, "to_bf16_padded: K_padded below K");
  if (M == 0 || K_padded == 0) return;
  to_bf16_kernel<<<elementwise_grid(M, K_padded), 256, 0, stream>>>(x, x_stride, out, out_stride, K,
                                                                    K_padded);
  check_launch("to_bf16_kernel");
}

void embed_rows(const void* table, bool table_bf16, int64_t table_stride, const int32_t* ids,
                float* out, int64_t out_stride, int64_t T, int64_t D, cudaStream_t stream) {
  check_rows(T, D, "embed_rows");
  if (T == 0 || D == 0) return;
  copy_rows_kernel<<<elementwise_grid(T, D), 256, 0, stream>>>(table, table_bf16, table_stride, ids,
                                                               out, out_stride, D);
  check_launch("copy_rows_kernel");
}

void gather_rows(const float* x, int64_t x_stride, const int32_t* rows, float* out,
                 int64_t out_stride, int64_t R, int64_t D, cudaStream_t stream) {
  check_rows(R, D, "gather_rows");
  if (R == 0 || D == 0) return;
  copy_rows_kernel<<<elementwise_grid(R, D), 256, 0, stream>>>(x, false, x_stride, rows, out,
                                                               out_stride, D);
  check_launch("copy_rows_kernel");
}

}  // namespace bx::cuda
