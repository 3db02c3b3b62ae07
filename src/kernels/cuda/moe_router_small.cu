// The router logits and xb for a few tokens in one launch (moe_steps.h router_small): block j
// computes experts [8 j, 8 j + 8) for all T <= 16 tokens.
//
//   xb[t, k]        = bf16(x[t, k]) (round to nearest even; +0 for D <= k < Dp): to_bf16_padded
//   logits[t, e]    = gemm.h's chain: acc = +0; for k0 = 0, 16, ... < round_up(Dp, 64):
//                     acc = acc + dot16(xb[t, k0:k0+16], router[e, k0:k0+16]) (one mma.sync
//                     m16n8k16 step; elements past Dp are +0)
// The tensor core's m16n8k16 step gives wgmma's k16 bits (gemm.h), so these are gemm_bf16's
// logits. The block stages its 8 router rows (cp.async, all in flight at once) and the T rows of
// x, converted, in shared memory as 16-byte chunks at slot r * C + (chunk ^ (r % 8)) (C chunks per
// row: conflict-free ldmatrix); warp 0 walks the chain. Rows of x past T are zeros and their
// outputs are not stored. Block 0 also writes xb for the later steps.
#include <mutex>
#include <string>

#include <cuda_bf16.h>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/hopper.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kThreads = 128;
constexpr int kRows = 16;    // token rows of the mma tile
constexpr int kExperts = 8;  // router rows per block (the mma's n)
constexpr int kMaxSmem = 200 * 1024;

int64_t padded_k(int64_t D) {
  return (D + 63) / 64 * 64;
}
size_t smem_bytes(int64_t D) {
  return static_cast<size_t>((kRows + kExperts) * padded_k(D)) * 2;
}

__device__ __forceinline__ uint32_t bf16_bits(float v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

__global__ void __launch_bounds__(kThreads)
    router_small_kernel(const float* __restrict__ x, int64_t x_stride, int T, int64_t D, int64_t Dp,
                        const uint16_t* __restrict__ router, int64_t router_stride, int E,
                        uint16_t* __restrict__ xb, float* __restrict__ logits) {
  extern __shared__ __align__(128) uint4 smem[];
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t Kp = (Dp + 63) / 64 * 64;
  const int chunks = static_cast<int>(Kp / 8);
  const uint32_t xs = ptx::smem_address(smem);
  const uint32_t ws = xs + static_cast<uint32_t>(kRows * chunks * 16);
  auto slot = [chunks](int r, int c) { return r * chunks + (c ^ (r & 7)); };
  const int e0 = static_cast<int>(blockIdx.x) * kExperts;

  ptx::griddep_launch_dependents();
  // The router rows do not depend on earlier kernels: in flight before the wait.
  for (int i = tid; i < kExperts * chunks; i += kThreads) {
    const int r = i / chunks, c = i - r * chunks;
    const int64_t k = static_cast<int64_t>(c) * 8;
    const bool valid = e0 + r < E && k < Dp;
    const uint16_t* src = valid ? router + (e0 + r) * router_stride + k : router;
    ptx::cp_async_16(ws + static_cast<uint32_t>(slot(r, c) * 16), src, valid);
  }
  ptx::cp_async_commit();
  ptx::griddep_wait();

  for (int i = tid; i < kRows * chunks; i += kThreads) {
    const int r = i / chunks, c = i - r * chunks;
    const int64_t k = static_cast<int64_t>(c) * 8;
    uint32_t h[4] = {0, 0, 0, 0};
    if (r < T && k < D) {
      const float* row = x + r * x_stride + k;
#pragma unroll
      for (int j = 0; j < 8; j += 2) {
        const float lo = k + j < D ? row[j] : 0.0f, hi = k + j + 1 < D ? row[j + 1] : 0.0f;
        h[j / 2] = bf16_bits(lo) | (bf16_bits(hi) << 16);
      }
    }
    const uint4 v = make_uint4(h[0], h[1], h[2], h[3]);
    smem[slot(r, c)] = v;
    if (blockIdx.x == 0 && r < T && k < Dp) reinterpret_cast<uint4*>(xb + r * Dp + k)[0] = v;
  }
  ptx::cp_async_wait<0>();
  __syncthreads();
  if (tid >= 32) return;

  const int lane = tid;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int c0 = 0; c0 < chunks; c0 += 2) {
    uint32_t a[4], b0, b1;
    ptx::ldmatrix_x4(xs + static_cast<uint32_t>(slot(lane & 15, c0 + (lane >> 4)) * 16), a[0], a[1],
                     a[2], a[3]);
    ptx::ldmatrix_x2(ws + static_cast<uint32_t>(slot(lane & 7, c0 + ((lane >> 3) & 1)) * 16), b0,
                     b1);
    ptx::mma_bf16_m16n8k16(acc, a, b0, b1);
  }
  // acc[v]: token lane / 4 (+8 for v >= 2), expert e0 + 2 (lane % 4) (+1 for odd v).
#pragma unroll
  for (int v = 0; v < 4; ++v) {
    const int t = lane / 4 + (v >= 2 ? 8 : 0);
    const int e = e0 + 2 * (lane % 4) + (v & 1);
    if (t < T && e < E) logits[static_cast<int64_t>(t) * E + e] = acc[v];
  }
}

}  // namespace

bool small_router(int64_t T, int64_t D) {
  return T >= 1 && T <= kRows && smem_bytes((D + 7) / 8 * 8) <= kMaxSmem;
}

void router_small(const float* x, int64_t x_stride, int64_t T, int64_t D, const uint16_t* router,
                  int64_t router_stride, int n_experts, uint16_t* xb, float* logits,
                  cudaStream_t stream, bool early_start) {
  const int64_t Dp = (D + 7) / 8 * 8;
  BX_CHECK(small_router(T, D), "moe router_small: T = " + std::to_string(T) +
                                   ", D = " + std::to_string(D) + ": more than one tile of tokens");
  const size_t smem = smem_bytes(Dp);
  static std::once_flag configured;  // raise the dynamic shared memory limit once
  std::call_once(configured, [] {
    check_cuda(cudaFuncSetAttribute(router_small_kernel,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem),
               "moe router_small: cudaFuncSetAttribute");
  });
  const auto blocks = static_cast<unsigned>((n_experts + kExperts - 1) / kExperts);
  launch_step(router_small_kernel, dim3(blocks), dim3(kThreads), smem, stream, early_start,
              "moe router_small_kernel", x, x_stride, static_cast<int>(T), D, Dp, router,
              router_stride, n_experts, xb, logits);
}

}  // namespace bx::cuda::moe
