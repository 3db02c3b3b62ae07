// The chain-warp kernel of gemm_quant.h for M <= 16: the weight-stream kernel's stages and
// element math (gemm_quant_stream.cuh), with the dequantization and the mma chain in different
// warps, so the hardware's warp schedulers overlap them whatever order the compiler gives a
// warp's instructions (in the stream kernel's SASS a warp dequantizes its next half stage and
// only then issues the 16 dependent mma steps: with one warp a scheduler, the two latencies add).
//
// Block = kChains chain warps + 2 kChains dequantizing warps, BN = 8 kChains W rows. Chain warp c
// owns rows [n0 + 8 c, n0 + 8 c + 8) (and the same up rows when gated): it issues every mma step
// of their chains, in increasing k, from B fragments in shared memory. Dequantizing warp d makes
// half d / kChains of chain d % kChains's fragments of a stage (lane l: row 8 c + l / 4, elements
// 2 (l % 4) + {0, 1, 8, 9} of each slice, dequant_half) and stores them where chain lane l reads
// them (8 bytes a lane a slice, conflict-free). Two fragment buffers: while the chain warps run
// stage i from one, the dequantizing warps fill the other with stage i + 1; one barrier a stage.
// The chain of every element is the stream kernel's, gemm.h's.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <mutex>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_quant_common.cuh"
#include "kernels/cuda/gemm_quant_stream.cuh"
#include "kernels/cuda/mma.cuh"

namespace bx::cuda::quant_gemm {

template <int F, int kChains, bool kGated, int XR>
struct ChainWarpsShape {
  static constexpr int kWarps = 3 * kChains;  // kChains chain warps, then the dequantizing warps
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int BN = 8 * kChains;
  static constexpr int kWRows = kGated ? 2 * BN : BN;
  static constexpr int kXBytes = XR * kKS * 2;
  static constexpr int kStageBytes = kXBytes + kWRows * RowSlot<F>::kBytes;
  static constexpr int kStagesBySize = 49152 / kStageBytes;
  static constexpr int kStages = kStagesBySize < 4 ? 4 : (kStagesBySize > 8 ? 8 : kStagesBySize);
  static constexpr int kSlices = kKS / 16;
  // Fragments of one stage: [chain][gate, up][slice][lane] x 8 bytes.
  static constexpr int kParts = kGated ? 2 : 1;
  static constexpr int kFragBytes = kChains * kParts * kSlices * 32 * 8;
  static constexpr int kFragOffset = kStages * kStageBytes;
  static constexpr int kZeroOffset = kFragOffset + 2 * kFragBytes;  // 16 bytes of zeros
  static constexpr int kSmemBytes = kZeroOffset + 16;
  static_assert(kStageBytes % 16 == 0, "stages must keep 16-byte alignment");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block");
};

template <int F, int kChains, bool kGated, int XR>
__global__ void __launch_bounds__(96 * kChains) gemm_quant_chain_warps_kernel(const Params p) {
  using S = ChainWarpsShape<F, kChains, kGated, XR>;
  constexpr int kSlices = S::kSlices;
  extern __shared__ __align__(128) uint4 smem[];
  const QuantGemmArgs& a = p.a;
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const bool chain_warp = warp < kChains;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * S::BN;
  const uint32_t smem_base = ptx::smem_address(smem);
  uint8_t* smem_bytes = reinterpret_cast<uint8_t*>(smem);
  const uint32_t zero_chunk = smem_base + S::kZeroOffset;
  const int x_rows = static_cast<int>(a.M < XR ? a.M : XR);  // M <= XR: one block row
  if (tid == 0) smem[S::kZeroOffset / 16] = make_uint4(0, 0, 0, 0);

  auto load_stage = [&](int slot, int kb) {
    load_stream_stage<F, S::BN, S::kWRows, S::kXBytes, S::kThreads>(
        a, smem_base + static_cast<uint32_t>(slot * S::kStageBytes), kb, n0, x_rows, tid);
  };
  // Fragment (chain c, part g, slice s) of lane l in buffer `buffer`.
  auto fragment = [&](int buffer, int c, int g, int s, int l) {
    return reinterpret_cast<uint2*>(smem_bytes + S::kFragOffset + buffer * S::kFragBytes) +
           ((c * S::kParts + g) * kSlices + s) * 32 + l;
  };

  // Dequantizing warps: chain dc's rows, half dh of each stage.
  const int dc = (warp - kChains) % kChains, dh = (warp - kChains) / kChains;
  const int w_row = (chain_warp ? warp : dc) * 8 + lane / 4;
  const int pair = 2 * (lane % 4);
  const int64_t row_offset = (n0 + w_row) * a.w_row_bytes;
  // The gate row's fragments (part 0), then the up row's (part 1).
  auto dequant = [&](int slot, int kb, int buffer) {
    const uint8_t* w_slots = smem_bytes + slot * S::kStageBytes + S::kXBytes;
#pragma unroll
    for (int g = 0; g < S::kParts; ++g) {
      uint32_t b[16];
      dequant_half<F>(a, w_slots + (g * S::BN + w_row) * RowSlot<F>::kBytes,
                      reinterpret_cast<uintptr_t>(g == 0 ? a.w : a.w_up), row_offset, kb, dh,
                      kb < p.n_full, pair, b);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        *fragment(buffer, dc, g, dh * 8 + j, lane) = make_uint2(b[2 * j], b[2 * j + 1]);
      }
    }
  };

  // Chain warps: the mma steps of the stage whose x is in `slot`, fragments in `buffer`, its
  // first `slices` slices.
  float acc[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}}, acc_up[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}};
  auto chain = [&](int slot, int buffer, int slices) {
    const uint32_t base = smem_base + static_cast<uint32_t>(slot * S::kStageBytes);
    auto step = [&](int s) {
      uint32_t x[4];
      ptx::ldmatrix_x4(x_fragment_address(base, s, lane, x_rows, zero_chunk), x[0], x[1], x[2],
                       x[3]);
      const uint2 b = *fragment(buffer, warp, 0, s, lane);
      ptx::mma_bf16_m16n8k16(acc[0], x, b.x, b.y);
      if constexpr (kGated) {
        const uint2 u = *fragment(buffer, warp, 1, s, lane);
        ptx::mma_bf16_m16n8k16(acc_up[0], x, u.x, u.y);
      }
    };
    if (slices == kSlices) {
      // Four slices' operands loaded ahead of their steps (the loads of the next four issue
      // while these steps run).
#pragma unroll 4
      for (int s = 0; s < kSlices; ++s) step(s);
    } else {
      for (int s = 0; s < slices; ++s) step(s);
    }
  };
  auto slices_of = [&](int kb) {
    const int64_t left = (p.k_round - static_cast<int64_t>(kb) * kKS) / 16;
    return static_cast<int>(left < kSlices ? left : kSlices);
  };

  // Prologue: stages 0 .. kStages - 2 in flight; stage 0's fragments into buffer 0.
#pragma unroll
  for (int s = 0; s < S::kStages - 1; ++s) {
    if (s < p.k_stages) load_stage(s, s);
    ptx::cp_async_commit();
  }
  ptx::cp_async_wait<S::kStages - 2>();
  __syncthreads();
  if (!chain_warp) dequant(0, 0, 0);

  // Stage i: stage i + 1 landed and buffer i % 2 complete (the barrier; every warp is past stage
  // i - 1); stage i + kStages - 1 goes to the slot of stage i - 1 (its x was read by the chain
  // warps in stage i - 1, its blocks dequantized in stage i - 2). The chain warps run stage i
  // from buffer i % 2 while the dequantizing warps fill buffer (i + 1) % 2 (read in stage i - 1).
  for (int i = 0; i < p.k_stages; ++i) {
    ptx::cp_async_wait<S::kStages - 3>();
    __syncthreads();
    const int next = i + S::kStages - 1;
    if (next < p.k_stages) load_stage(next % S::kStages, next);
    ptx::cp_async_commit();
    if (chain_warp) {
      chain(i % S::kStages, i % 2, slices_of(i));
    } else if (i + 1 < p.k_stages) {
      dequant((i + 1) % S::kStages, i + 1, (i + 1) % 2);
    }
  }
  ptx::cp_async_wait<0>();

  if (chain_warp) store_fragments<1, kGated>(a, 0, n0 + warp * 8 + pair, lane, acc, acc_up);
}

template <int F, int kChains, bool kGated, int XR>
void launch_chain_warps(const Params& p, cudaStream_t stream) {
  using S = ChainWarpsShape<F, kChains, kGated, XR>;
  auto* kernel = gemm_quant_chain_warps_kernel<F, kChains, kGated, XR>;
  static std::once_flag configured;
  std::call_once(configured, [&] {
    check_cuda(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes),
        "gemm_quant: cudaFuncSetAttribute");
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                    cudaSharedmemCarveoutMaxShared),
               "gemm_quant: cudaFuncSetAttribute (carveout)");
  });
  const dim3 grid(static_cast<unsigned>((p.a.N + S::BN - 1) / S::BN), 1);
  kernel<<<grid, S::kThreads, S::kSmemBytes, stream>>>(p);
  check_launch("gemm_quant_chain_warps_kernel");
}

// M <= 16: blocks of 2 chains (6 warps, 16 W rows: the decode GEMMs' blocks fit the
// multiprocessors at once); x rows held: 1 at M = 1, else 16.
template <int F, bool kGated>
void launch_chain_warps_format(const Params& p, cudaStream_t stream) {
  if (p.a.M == 1) {
    launch_chain_warps<F, 2, kGated, 1>(p, stream);
  } else {
    launch_chain_warps<F, 2, kGated, 16>(p, stream);
  }
}

}  // namespace bx::cuda::quant_gemm
