// The reference bf16 GEMM (gemm.h, gemm_bf16_reference): mma.sync m16n8k16 tiles fed by a
// cp.async pipeline, one 64x64 tile per block on 4 warps (32x32 each, as 16x8 fragments).
//
// The K loop walks stages of kBK = 64 columns in increasing k, and inside a stage the four
// 16-wide slices in increasing k: every output element gets one chain of mma k16 steps from +0,
// the order of gemm.h. Shared memory per stage: BM rows of x then BN rows of W, each row kBK bf16
// = 8 chunks of 16 bytes; chunk c of row r sits at slot r * 8 + (c ^ (r % 8)) so that the 8 rows
// one ldmatrix reads fall in different banks.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/mma.cuh"

namespace bx::cuda {
namespace {

constexpr int kBK = 64;
constexpr int kChunks = kBK / 8;  // 16-byte chunks per tile row
constexpr int BM = 64, BN = 64, WARPS_M = 2, WARPS_N = 2, STAGES = 3;
constexpr int kThreads = WARPS_M * WARPS_N * 32;
constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;
constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;
constexpr int kStageSlots = (BM + BN) * kChunks;
constexpr int kSmemBytes = STAGES * kStageSlots * 16;

__device__ __forceinline__ int slot(int row, int chunk) {
  return row * kChunks + (chunk ^ (row & 7));
}

__global__ void __launch_bounds__(kThreads) gemm_reference_kernel(const GemmArgs args) {
  extern __shared__ __align__(128) uint4 smem[];
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m = warp / WARPS_N;
  const int warp_n = warp % WARPS_N;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int k_tiles = static_cast<int>((args.K + kBK - 1) / kBK);
  const uint32_t smem_base = ptx::smem_address(smem);

  // Stage `stage` <- x[m0 .. m0+BM, k0 .. k0+kBK) and W[n0 .. n0+BN, same k]; zeros outside.
  auto load_stage = [&](int stage, int kt) {
    const uint32_t base = smem_base + static_cast<uint32_t>(stage * kStageSlots * 16);
    const int64_t k0 = static_cast<int64_t>(kt) * kBK;
    for (int i = tid; i < (BM + BN) * kChunks; i += kThreads) {
      const int r = i / kChunks;
      const int c = i % kChunks;
      const int64_t k = k0 + c * 8;
      const uint16_t* src;
      bool valid;
      if (r < BM) {
        const int64_t m = m0 + r;
        valid = m < args.M && k < args.K;
        src = valid ? args.x + m * args.x_stride + k : args.x;
      } else {
        const int64_t n = n0 + (r - BM);
        valid = n < args.N && k < args.K;
        src = valid ? args.w + n * args.w_stride + k : args.w;
      }
      ptx::cp_async_16(base + static_cast<uint32_t>(slot(r, c) * 16), src, valid);
    }
  };

  float acc[kFragsM][kFragsN][4];
#pragma unroll
  for (int i = 0; i < kFragsM; ++i)
#pragma unroll
    for (int j = 0; j < kFragsN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  // acc += x_tile[:, 16 slices in increasing k] @ W_tile^T, one mma per (fragment, slice).
  auto compute_stage = [&](int stage) {
    const uint32_t base = smem_base + static_cast<uint32_t>(stage * kStageSlots * 16);
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t a[kFragsM][4];
#pragma unroll
      for (int mi = 0; mi < kFragsM; ++mi) {
        const int row = warp_m * kWarpM + mi * 16 + (lane & 15);
        const int chunk = kk * 2 + (lane >> 4);
        ptx::ldmatrix_x4(base + static_cast<uint32_t>(slot(row, chunk) * 16), a[mi][0], a[mi][1],
                         a[mi][2], a[mi][3]);
      }
      uint32_t b[kFragsN][2];
      if constexpr (kFragsN % 2 == 0) {
#pragma unroll
        for (int ni = 0; ni < kFragsN; ni += 2) {
          const int row = BM + warp_n * kWarpN + ni * 8 + (lane & 7) + ((lane >> 4) << 3);
          const int chunk = kk * 2 + ((lane >> 3) & 1);
          ptx::ldmatrix_x4(base + static_cast<uint32_t>(slot(row, chunk) * 16), b[ni][0], b[ni][1],
                           b[ni + 1][0], b[ni + 1][1]);
        }
      } else {
#pragma unroll
        for (int ni = 0; ni < kFragsN; ++ni) {
          const int row = BM + warp_n * kWarpN + ni * 8 + (lane & 7);
          const int chunk = kk * 2 + ((lane >> 3) & 1);
          ptx::ldmatrix_x2(base + static_cast<uint32_t>(slot(row, chunk) * 16), b[ni][0], b[ni][1]);
        }
      }
#pragma unroll
      for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
        for (int ni = 0; ni < kFragsN; ++ni)
          ptx::mma_bf16_m16n8k16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    }
  };

  // Pipeline: STAGES - 1 stages in flight ahead of the one being multiplied.
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    ptx::cp_async_commit();
  }
  for (int i = 0; i < k_tiles; ++i) {
    ptx::cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage i landed for all threads; stage i - 1 is no longer read
    const int next = i + STAGES - 1;
    if (next < k_tiles) load_stage(next % STAGES, next);
    ptx::cp_async_commit();
    compute_stage(i % STAGES);
  }
  ptx::cp_async_wait<0>();

  // Epilogue: fragment element e of (mi, ni) is row lane/4 (+8 for e >= 2), column 2*(lane%4)
  // (+1 for odd e) of the 16x8 fragment.
#pragma unroll
  for (int mi = 0; mi < kFragsM; ++mi) {
#pragma unroll
    for (int ni = 0; ni < kFragsN; ++ni) {
      const int64_t col = n0 + warp_n * kWarpN + ni * 8 + (lane & 3) * 2;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t row = m0 + warp_m * kWarpM + mi * 16 + (lane >> 2) + half * 8;
        if (row >= args.M) continue;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (col + e >= args.N) continue;
          float* out = args.y + row * args.y_stride + col + e;
          const float v = acc[mi][ni][half * 2 + e];
          *out = args.accumulate ? *out + v : v;
        }
      }
    }
  }
}

}  // namespace

void gemm_bf16_reference(const GemmArgs& args, cudaStream_t stream) {
  check_gemm_args(args, "gemm_bf16_reference");
  BX_CHECK(args.n_parts == 0 && args.w_up == nullptr,
           "gemm_bf16_reference: output parts and the gated epilogue are not supported");
  if (args.M == 0 || args.N == 0) return;
  check_cuda(cudaFuncSetAttribute(gemm_reference_kernel,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
             "gemm_bf16_reference: cudaFuncSetAttribute");
  const dim3 grid(static_cast<unsigned>((args.N + BN - 1) / BN),
                  static_cast<unsigned>((args.M + BM - 1) / BM));
  gemm_reference_kernel<<<grid, kThreads, kSmemBytes, stream>>>(args);
  check_launch("gemm_reference_kernel");
}

}  // namespace bx::cuda
