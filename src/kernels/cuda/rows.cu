// Row-wise and elementwise kernels (rows.h).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>

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

// RMSNorm walking the row twice (rows of any length; kThreads = 128 is the tests' negative
// control).
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

// RMSNorm with the row held in registers between the sum of squares and the scaling pass (x
// read once; any alignment). kPer = elements a thread, ceil(D / 256) <= kPer.
template <int kPer>
__global__ void __launch_bounds__(kRowThreads)
    rmsnorm_block_kernel(const float* x, int64_t x_stride, const float* w, float eps, float* out,
                         int64_t out_stride, int D) {
  __shared__ float scratch[kRowThreads / 32];
  const float* row = x + static_cast<int64_t>(blockIdx.x) * x_stride;
  float* dst = out + static_cast<int64_t>(blockIdx.x) * out_stride;
  const int j = static_cast<int>(threadIdx.x);
  float v[kPer];
#pragma unroll
  for (int k = 0; k < kPer; ++k) v[k] = j + k * kRowThreads < D ? row[j + k * kRowThreads] : 0.0f;
  float acc = 0.0f;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    if (j + k * kRowThreads < D) acc = fmaf(v[k], v[k], acc);
  }
  const float ss = block_sum<kRowThreads>(acc, scratch);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int i = j + k * kRowThreads;
    if (i < D) dst[i] = (v[k] * r) * w[i];
  }
}

// cp.async.cg: 16 bytes global -> shared, bypassing L1 and the registers.
__device__ __forceinline__ void copy_16_async(void* smem, const void* gmem) {
  const auto saddr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(saddr), "l"(gmem));
}

// RMSNorm of 16-byte aligned rows (x, out, w, strides and D multiples of 4 floats), staged in
// shared memory: 16-byte cp.async loads (kChunks a thread, all in flight at once, no registers
// held), then thread j reads its elements j, j + 256, ... from shared memory in the contract
// order, and the scaling pass is float4 (w float4 too). D <= 1024 kChunks.
template <int kChunks>
__global__ void __launch_bounds__(kRowThreads)
    rmsnorm_staged_kernel(const float* x, int64_t x_stride, const float* w, float eps, float* out,
                          int64_t out_stride, int D) {
  __shared__ float4 staged[kChunks * kRowThreads];
  __shared__ float scratch[kRowThreads / 32];
  const auto* row4 =
      reinterpret_cast<const float4*>(x + static_cast<int64_t>(blockIdx.x) * x_stride);
  auto* dst4 = reinterpret_cast<float4*>(out + static_cast<int64_t>(blockIdx.x) * out_stride);
  const auto* w4 = reinterpret_cast<const float4*>(w);
  const int j = static_cast<int>(threadIdx.x), n4 = D / 4;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    if (j + c * kRowThreads < n4)
      copy_16_async(staged + j + c * kRowThreads, row4 + j + c * kRowThreads);
  }
  asm volatile("cp.async.wait_all;\n" ::: "memory");
  __syncthreads();
  const auto* row = reinterpret_cast<const float*>(staged);
  float acc = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks * 4; ++k) {
    const int i = j + k * kRowThreads;
    if (i < D) acc = fmaf(row[i], row[i], acc);
  }
  const float ss = block_sum<kRowThreads>(acc, scratch);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int q = j + c * kRowThreads;
    if (q < n4) {
      const float4 v = staged[q], g = w4[q];
      dst4[q] = make_float4((v.x * r) * g.x, (v.y * r) * g.y, (v.z * r) * g.z, (v.w * r) * g.w);
    }
  }
}

// RMSNorm of short rows (D <= 256 kPer): one warp a row, 8 rows a block. Lane l plays thread
// l + 32 q of the contract's 256-thread block for q = 0..7 ("virtual warp" q): it keeps the eight
// accumulators acc_q, butterflies each over the lanes, and adds the eight warp sums left to right,
// which is block_sum's arithmetic exactly.
template <int kPer>
__global__ void __launch_bounds__(kRowThreads)
    rmsnorm_warp_kernel(const float* x, int64_t x_stride, const float* w, float eps, float* out,
                        int64_t out_stride, int64_t M, int D) {
  constexpr int kWarps = kRowThreads / 32;
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (m >= M) return;  // a whole warp leaves; no block-wide barrier below
  const int lane = static_cast<int>(threadIdx.x & 31);
  const float* row = x + m * x_stride;
  float* dst = out + m * out_stride;
  float v[kPer][kWarps];
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
#pragma unroll
    for (int q = 0; q < kWarps; ++q) {
      const int i = k * kRowThreads + q * 32 + lane;
      v[k][q] = i < D ? row[i] : 0.0f;
    }
  }
  float total = 0.0f;
#pragma unroll
  for (int q = 0; q < kWarps; ++q) {
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      if (k * kRowThreads + q * 32 + lane < D) acc = fmaf(v[k][q], v[k][q], acc);
    }
#pragma unroll
    for (int o = 16; o >= 1; o /= 2) acc = acc + __shfl_xor_sync(0xffffffffu, acc, o);
    total = q == 0 ? acc : total + acc;
  }
  const float r = 1.0f / sqrtf(total / static_cast<float>(D) + eps);
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
#pragma unroll
    for (int q = 0; q < kWarps; ++q) {
      const int i = k * kRowThreads + q * 32 + lane;
      if (i < D) dst[i] = (v[k][q] * r) * w[i];
    }
  }
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

// Elementwise kernels: thread i of the row's grid-stride loop handles elements 4i .. 4i + 3 with
// 16-byte accesses when vec (every pointer 16-byte aligned, every stride and the row length a
// multiple of 4), else element i. The same IEEE operation per element either way.
__global__ void silu_mul_kernel(const float* gate, int64_t gate_stride, const float* up,
                                int64_t up_stride, float* out, int64_t out_stride, int64_t F,
                                bool vec) {
  const int64_t m = blockIdx.y;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if (vec) {
    const float4* g4 = reinterpret_cast<const float4*>(gate + m * gate_stride);
    const float4* u4 = reinterpret_cast<const float4*>(up + m * up_stride);
    float4* o4 = reinterpret_cast<float4*>(out + m * out_stride);
    for (int64_t i = start; i < F / 4; i += step) {
      const float4 g = g4[i], u = u4[i];
      o4[i] = make_float4((g.x / (1.0f + expf(-g.x))) * u.x, (g.y / (1.0f + expf(-g.y))) * u.y,
                          (g.z / (1.0f + expf(-g.z))) * u.z, (g.w / (1.0f + expf(-g.w))) * u.w);
    }
    return;
  }
  for (int64_t i = start; i < F; i += step) {
    const float g = gate[m * gate_stride + i];
    out[m * out_stride + i] = (g / (1.0f + expf(-g))) * up[m * up_stride + i];
  }
}

// The plain loops of the elementwise kernels above, one element a thread of a grid-stride loop.
__global__ void gelu_tanh_mul_kernel(const float* gate, int64_t gate_stride, const float* up,
                                     int64_t up_stride, float* out, int64_t out_stride, int64_t F) {
  const int64_t m = blockIdx.y;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < F; i += step) {
    const float g = gate[m * gate_stride + i];
    const float z = 0.7978845608028654f * (g + (0.044715f * g) * (g * g));
    out[m * out_stride + i] = (g / (1.0f + expf(-2.0f * z))) * up[m * up_stride + i];
  }
}

__global__ void scale_kernel(float* x, int64_t x_stride, float factor, int64_t D) {
  const int64_t m = blockIdx.y;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < D; i += step) {
    x[m * x_stride + i] = x[m * x_stride + i] * factor;
  }
}

__global__ void add_kernel(float* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t D,
                           bool vec) {
  const int64_t m = blockIdx.y;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if (vec) {
    float4* y4 = reinterpret_cast<float4*>(y + m * y_stride);
    const float4* x4 = reinterpret_cast<const float4*>(x + m * x_stride);
    for (int64_t i = start; i < D / 4; i += step) {
      const float4 a = y4[i], b = x4[i];
      y4[i] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    }
    return;
  }
  for (int64_t i = start; i < D; i += step) {
    y[m * y_stride + i] = y[m * y_stride + i] + x[m * x_stride + i];
  }
}

__device__ __forceinline__ uint32_t bf16_pair(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

// vec also needs K a multiple of 4, so each group of 4 is all data or all padding.
__global__ void to_bf16_kernel(const float* x, int64_t x_stride, uint16_t* out, int64_t out_stride,
                               int64_t K, int64_t K_padded, bool vec) {
  const int64_t m = blockIdx.y;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if (vec) {
    const float4* x4 = reinterpret_cast<const float4*>(x + m * x_stride);
    uint2* o2 = reinterpret_cast<uint2*>(out + m * out_stride);
    for (int64_t i = start; i < K_padded / 4; i += step) {
      const float4 v = 4 * i < K ? x4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      o2[i] = make_uint2(bf16_pair(v.x, v.y), bf16_pair(v.z, v.w));
    }
    return;
  }
  for (int64_t i = start; i < K_padded; i += step) {
    const float v = i < K ? x[m * x_stride + i] : 0.0f;
    out[m * out_stride + i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

// Element by element (f32 tables, gather_rows, and bf16 tables off the embed_bf16 alignment).
__global__ void copy_rows_kernel(const void* src, bool src_bf16, int64_t src_stride,
                                 const int32_t* ids, float* out, int64_t out_stride, int64_t D) {
  const int64_t t = blockIdx.y;
  const int64_t r = ids[t];
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = start; i < D; i += step) {
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

// bf16 table rows widened to f32 (D, the stride and out's alignment multiples of 4 elements,
// the table 8-byte aligned): thread x of block b reads the 4-element quads q = 1024 b + x +
// 256 u, u = 0..3, all four before it writes (four 8-byte loads in flight), and writes each as
// one float4, so a warp's store covers 512 contiguous bytes.
__global__ void __launch_bounds__(256)
    embed_bf16_kernel(const uint16_t* table, int64_t table_stride, const int32_t* ids, float* out,
                      int64_t out_stride, int64_t quads) {
  const int64_t t = blockIdx.y;
  const auto* src = reinterpret_cast<const uint2*>(table + ids[t] * table_stride);
  auto* dst = reinterpret_cast<float4*>(out + t * out_stride);
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * 1024 + threadIdx.x;
  uint2 h[4] = {};
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    if (q0 + 256 * u < quads) h[u] = src[q0 + 256 * u];
  }
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    if (q0 + 256 * u < quads) {
      dst[q0 + 256 * u] =
          make_float4(__uint_as_float(h[u].x << 16), __uint_as_float(h[u].x & 0xffff0000u),
                      __uint_as_float(h[u].y << 16), __uint_as_float(h[u].y & 0xffff0000u));
    }
  }
}

// True when p is 16-byte aligned and every stride and the length are multiples of 4 elements.
bool vec_ok(std::initializer_list<const void*> ptrs, std::initializer_list<int64_t> counts) {
  for (const void* p : ptrs) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  }
  for (int64_t n : counts) {
    if (n % 4 != 0) return false;
  }
  return true;
}

// Grid for an elementwise pass over M rows of D: (blocks per row, M).
dim3 elementwise_grid(int64_t M, int64_t D, bool vec = false) {
  const int64_t per_row = ((vec ? D / 4 : D) + 255) / 256;
  return dim3(static_cast<unsigned>(per_row < 64 ? per_row : 64), static_cast<unsigned>(M));
}

void check_rows(int64_t M, int64_t D, const char* what) {
  BX_CHECK(M >= 0 && D >= 0, std::string(what) + ": negative size");
  BX_CHECK(M <= 65535,
           std::string(what) + ": " + std::to_string(M) + " rows exceed the grid limit of 65535");
}

}  // namespace

void rmsnorm_two_pass(const float* x, int64_t x_stride, const float* w, float eps, float* out,
                      int64_t out_stride, int64_t M, int64_t D, cudaStream_t stream,
                      int threads_per_row) {
  BX_CHECK(M >= 0 && D >= 0, "rmsnorm: negative size");
  BX_CHECK(threads_per_row == kRowThreads || threads_per_row == 128,
           "rmsnorm: threads_per_row must be 256 or 128");
  if (M == 0) return;
  if (threads_per_row == 128) {
    rmsnorm_kernel<128>
        <<<static_cast<unsigned>(M), 128, 0, stream>>>(x, x_stride, w, eps, out, out_stride, D);
  } else {
    rmsnorm_kernel<kRowThreads><<<static_cast<unsigned>(M), kRowThreads, 0, stream>>>(
        x, x_stride, w, eps, out, out_stride, D);
  }
  check_launch("rmsnorm_kernel");
}

void rmsnorm(const float* x, int64_t x_stride, const float* w, float eps, float* out,
             int64_t out_stride, int64_t M, int64_t D, cudaStream_t stream, int threads_per_row) {
  BX_CHECK(M >= 0 && D >= 0, "rmsnorm: negative size");
  BX_CHECK(threads_per_row == kRowThreads || threads_per_row == 128,
           "rmsnorm: threads_per_row must be 256 or 128");
  if (M == 0) return;
  if (threads_per_row != kRowThreads || D > 8192) {
    rmsnorm_two_pass(x, x_stride, w, eps, out, out_stride, M, D, stream, threads_per_row);
    return;
  }
  const int d = static_cast<int>(D);
  const unsigned rows = static_cast<unsigned>(M);
  const auto warp_blocks = static_cast<unsigned>((M + kRowThreads / 32 - 1) / (kRowThreads / 32));
  if (D <= 256) {
    rmsnorm_warp_kernel<1>
        <<<warp_blocks, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, M, d);
  } else if (D <= 512) {
    rmsnorm_warp_kernel<2>
        <<<warp_blocks, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, M, d);
  } else if (D <= 1024) {
    rmsnorm_warp_kernel<4>
        <<<warp_blocks, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, M, d);
  } else if (vec_ok({x, out, w}, {x_stride, out_stride, D})) {
    if (D <= 2048) {
      rmsnorm_staged_kernel<2>
          <<<rows, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, d);
    } else if (D <= 4096) {
      rmsnorm_staged_kernel<4>
          <<<rows, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, d);
    } else {
      rmsnorm_staged_kernel<8>
          <<<rows, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, d);
    }
  } else if (D <= 2048) {
    rmsnorm_block_kernel<8>
        <<<rows, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, d);
  } else if (D <= 4096) {
    rmsnorm_block_kernel<16>
        <<<rows, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, d);
  } else {
    rmsnorm_block_kernel<32>
        <<<rows, kRowThreads, 0, stream>>>(x, x_stride, w, eps, out, out_stride, d);
  }
  check_launch("rmsnorm");
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
  const bool vec = vec_ok({gate, up, out}, {gate_stride, up_stride, out_stride, F});
  silu_mul_kernel<<<elementwise_grid(M, F, vec), 256, 0, stream>>>(gate, gate_stride, up, up_stride,
                                                                   out, out_stride, F, vec);
  check_launch("silu_mul_kernel");
}

void gelu_tanh_mul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
                   float* out, int64_t out_stride, int64_t M, int64_t F, cudaStream_t stream) {
  check_rows(M, F, "gelu_tanh_mul");
  if (M == 0 || F == 0) return;
  gelu_tanh_mul_kernel<<<elementwise_grid(M, F, false), 256, 0, stream>>>(
      gate, gate_stride, up, up_stride, out, out_stride, F);
  check_launch("gelu_tanh_mul_kernel");
}

void scale_inplace(float* x, int64_t x_stride, float factor, int64_t M, int64_t D,
                   cudaStream_t stream) {
  check_rows(M, D, "scale_inplace");
  if (M == 0 || D == 0) return;
  scale_kernel<<<elementwise_grid(M, D, false), 256, 0, stream>>>(x, x_stride, factor, D);
  check_launch("scale_kernel");
}

void add_inplace(float* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t M, int64_t D,
                 cudaStream_t stream) {
  check_rows(M, D, "add_inplace");
  if (M == 0 || D == 0) return;
  const bool vec = vec_ok({y, x}, {y_stride, x_stride, D});
  add_kernel<<<elementwise_grid(M, D, vec), 256, 0, stream>>>(y, y_stride, x, x_stride, D, vec);
  check_launch("add_kernel");
}

void to_bf16_padded(const float* x, int64_t x_stride, uint16_t* out, int64_t out_stride, int64_t M,
                    int64_t K, int64_t K_padded, cudaStream_t stream) {
  check_rows(M, K_padded, "to_bf16_padded");
  BX_CHECK(K <= K_padded && out_stride >= K_padded, "to_bf16_padded: K_padded below K");
  if (M == 0 || K_padded == 0) return;
  // uint2 stores: out 8-byte aligned suffices; x is read as float4.
  const bool vec =
      vec_ok({x}, {x_stride, out_stride, K, K_padded}) && reinterpret_cast<uintptr_t>(out) % 8 == 0;
  to_bf16_kernel<<<elementwise_grid(M, K_padded, vec), 256, 0, stream>>>(
      x, x_stride, out, out_stride, K, K_padded, vec);
  check_launch("to_bf16_kernel");
}

void embed_rows(const void* table, bool table_bf16, int64_t table_stride, const int32_t* ids,
                float* out, int64_t out_stride, int64_t T, int64_t D, cudaStream_t stream) {
  check_rows(T, D, "embed_rows");
  if (T == 0 || D == 0) return;
  if (table_bf16 && vec_ok({out}, {out_stride, table_stride, D}) &&
      reinterpret_cast<uintptr_t>(table) % 8 == 0) {
    const int64_t quads = D / 4;
    const dim3 grid(static_cast<unsigned>((quads + 1023) / 1024), static_cast<unsigned>(T));
    embed_bf16_kernel<<<grid, 256, 0, stream>>>(static_cast<const uint16_t*>(table), table_stride,
                                                ids, out, out_stride, quads);
    check_launch("embed_bf16_kernel");
    return;
  }
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
