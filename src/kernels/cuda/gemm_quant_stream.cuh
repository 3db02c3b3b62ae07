// The weight-stream kernel of gemm_quant.h for M <= 16 (decode): the GEMM is a pass over W, and
// its time is set by how many raw blocks are in flight and how soon each warp's mma chain gets
// its next B fragments, not by arithmetic.
//
// Same chain as the tiled kernel (gemm_quant.cu) and gemm.h, for every output element: one mma
// m16n8k16 step per 16-wide slice of K in increasing k from +0, slices past K (below
// round_up(K, 64)) with +0 weights. What differs is only when each step's operands are made:
//
//   block = kWarps warps, warp w owning W rows [n0 + 8w, n0 + 8w + 8) (one n8 column);
//   a ring of kStages stages of 256 K columns in shared memory, each holding the x rows
//   [0, min(M, XR)) (rows past M read one 16-byte chunk of zeros, so XR = 1 holds 512 bytes) and
//   each W row's raw blocks, loaded by cp.async kStages - 2 stages ahead;
//   stage i, in two halves of 8 slices: lane l dequantizes its B fragments of the second half
//   of stage i (elements 16 s + 2 (l % 4) + {0, 1, 8, 9} of row 8w + l / 4, quant_pair.h's
//   element math, rounded to bf16 pairs) into registers B while it issues the 8 dependent mma
//   steps of the first half from registers A, then the first half of stage i + 1 into A while
//   the second half's steps run from B. Each pair is independent instructions in one basic block,
//   so the dequantization can fill the mma chain's latency instead of adding to it (how much it
//   does is the compiler's instruction order: gemm_quant_chain_warps.cuh is the schedule that
//   does not depend on it).
//
// Full stages (all 16 slices below K; every stage of the K-quants) run without branches between
// the slices; the stages at the end of K (the last full stage, a partial last stage of the
// 32-element formats, slices past K) take a generic path.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <mutex>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_quant_common.cuh"
#include "kernels/cuda/mma.cuh"

namespace bx::cuda::quant_gemm {

template <int F, int kWarps, bool kGated, int XR>
struct StreamShape {
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int BN = 8 * kWarps;                // W rows (outputs) per block, 8 per warp
  static constexpr int kWRows = kGated ? 2 * BN : BN;  // gate rows, then the up rows
  static constexpr int kWSlot = RowSlot<F>::kBytes;
  static constexpr int kXBytes = XR * kKS * 2;
  static constexpr int kStageBytes = kXBytes + kWRows * kWSlot;
  // About 56 KB a block (four blocks of a multiprocessor), at least 4 and at most 8 stages.
  static constexpr int kStagesBySize = 57344 / kStageBytes;
  static constexpr int kStages = kStagesBySize < 4 ? 4 : (kStagesBySize > 8 ? 8 : kStagesBySize);
  static constexpr int kZeroOffset = kStages * kStageBytes;  // 16 bytes of zeros
  static constexpr int kSmemBytes = kZeroOffset + 16;
  static constexpr int kUnit = 8;  // slices a lane dequantizes at a time: half a stage
  static_assert(kStageBytes % 16 == 0, "stages must keep 16-byte alignment");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block");
};

// Stage kb of a weight-stream kernel into the shared memory at `base`: x[0 .. x_rows, k0 .. k0 +
// 256) (zeros past K; chunk c of row r at r * 32 + (c ^ (r % 8)), so that ldmatrix's 8 rows fall
// in different banks) at offset 0, then, from kXBytes on, RowSlot<F>::kBytes for each of kWRows
// W rows: rows [n0, n0 + BN) of W, then (gated) the same rows of w_up, each the chunks covering
// its blocks of that range (zeros for rows past N). Issued as cp.async by kThreads threads.
template <int F, int BN, int kWRows, int kXBytes, int kThreads>
__device__ __forceinline__ void load_stream_stage(const QuantGemmArgs& a, uint32_t base, int kb,
                                                  int64_t n0, int x_rows, int tid) {
  using R = RowSlot<F>;
  const int64_t k0 = static_cast<int64_t>(kb) * kKS;
  for (int i = tid; i < x_rows * kXChunks; i += kThreads) {
    const int r = i / kXChunks, c = i % kXChunks;
    const int64_t k = k0 + c * 8;
    const bool valid = k < a.K;
    const uint16_t* src = valid ? a.x + r * a.x_stride + k : a.x;
    ptx::cp_async_16(base + static_cast<uint32_t>((r * kXChunks + (c ^ (r & 7))) * 16), src, valid);
  }
  const uintptr_t w_addr = reinterpret_cast<uintptr_t>(a.w);
  const uintptr_t up_addr = reinterpret_cast<uintptr_t>(a.w_up);
  const int64_t stage_bytes = (a.K - k0 < kKS ? a.K - k0 : kKS) / R::E * R::BB;
  for (int i = tid; i < kWRows * R::kChunks; i += kThreads) {
    const int r = i / R::kChunks, c = i % R::kChunks;
    const int64_t n = n0 + r % BN;
    const uintptr_t first =
        (r < BN ? w_addr : up_addr) + n * a.w_row_bytes + kb * int64_t{R::kStageBlockBytes};
    const uintptr_t chunk = (first & ~uintptr_t{15}) + 16 * c;
    const bool valid = n < a.N && k0 < a.K && chunk < first + stage_bytes;
    ptx::cp_async_16(base + static_cast<uint32_t>(kXBytes + r * R::kBytes + 16 * c),
                     valid ? reinterpret_cast<const void*>(chunk) : a.w, valid);
  }
}

// The address lane `lane` gives ldmatrix_x4 for the A fragment (x) of slice s of a stage whose x
// rows start at `base`: row lane % 16, 16-byte chunk 2 s + lane / 16; rows at or past x_rows
// read the 16 zero bytes at zero_chunk.
__device__ __forceinline__ uint32_t x_fragment_address(uint32_t base, int s, int lane, int x_rows,
                                                       uint32_t zero_chunk) {
  const int r = lane & 15, c = s * 2 + (lane >> 4);
  return r < x_rows ? base + static_cast<uint32_t>((r * kXChunks + (c ^ (r & 7))) * 16)
                    : zero_chunk;
}

// Lane's B fragments of slices [s0, s0 + kUnit) of a stage: b[2 j], b[2 j + 1] for slice s0 + j
// (elements pair + {0, 1} and pair + {8, 9} of the slice), from the row's blocks at `row`. With
// kFull == false, slices j >= valid hold +0 (slices past K).
template <int F, int kUnit, bool kFull>
__device__ __forceinline__ void dequant_unit(const uint8_t* row, int s0, int pair, int valid,
                                             uint32_t (&b)[2 * kUnit]) {
  constexpr int E = RowSlot<F>::E, BB = RowSlot<F>::BB;
#pragma unroll
  for (int j = 0; j < kUnit; ++j) {
    const int s = s0 + j;
    const int block = 16 * s / E * BB, first = 16 * s % E;
    uint32_t lo = pack_bf16(quant::dequant_pair<F>(row + block, first, pair));
    uint32_t hi = pack_bf16(quant::dequant_pair<F>(row + block, first, pair + 8));
    if (!kFull && j >= valid) lo = hi = 0;
    b[2 * j] = lo;
    b[2 * j + 1] = hi;
  }
}

// Lane's B fragments of half h (slices [8 h, 8 h + 8)) of stage kb for one W row: the row held
// at slot_row (RowSlot<F>::kBytes of chunks), whose blocks start at w_base + row_offset + kb
// RowSlot<F>::kStageBlockBytes in device memory (that address's last 4 bits are the lead bytes of
// its chunks); pair = 2 (lane % 4). b as dequant_unit gives it; with full == false the slices
// past K are +0.
template <int F>
__device__ __forceinline__ void dequant_half(const QuantGemmArgs& a, const uint8_t* slot_row,
                                             uintptr_t w_base, int64_t row_offset, int kb, int h,
                                             bool full, int pair, uint32_t (&b)[16]) {
  constexpr int kUnit = 8;
  const int64_t offset = row_offset + kb * int64_t{RowSlot<F>::kStageBlockBytes};
  const uint8_t* row = slot_row + ((w_base + offset) & 15u);
  // Compile-time slice numbers (every shift and index of the element math folds).
  auto run = [&]<int kS0>() {
    if (full) {
      dequant_unit<F, kUnit, true>(row, kS0, pair, kUnit, b);
    } else {
      const int64_t left = (a.K - static_cast<int64_t>(kb) * kKS) / 16 - kS0;  // below K
      const int valid = static_cast<int>(left < 0 ? 0 : (left < kUnit ? left : kUnit));
      dequant_unit<F, kUnit, false>(row, kS0, pair, valid, b);
    }
  };
  if (h == 0) {
    run.template operator()<0>();
  } else {
    run.template operator()<kUnit>();
  }
}

template <int F, int kWarps, bool kGated, int XR>
__global__ void __launch_bounds__(32 * kWarps) gemm_quant_stream_kernel(const Params p) {
  using S = StreamShape<F, kWarps, kGated, XR>;
  constexpr int kUnit = S::kUnit;
  extern __shared__ __align__(128) uint4 smem[];
  const QuantGemmArgs& a = p.a;
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * S::BN;
  const uint32_t smem_base = ptx::smem_address(smem);
  const uint8_t* smem_bytes = reinterpret_cast<const uint8_t*>(smem);
  const uint32_t zero_chunk = smem_base + S::kZeroOffset;
  const int x_rows = static_cast<int>(a.M < XR ? a.M : XR);  // M <= XR: one block row
  if (tid == 0) smem[S::kZeroOffset / 16] = make_uint4(0, 0, 0, 0);

  auto load_stage = [&](int slot, int kb) {
    load_stream_stage<F, S::BN, S::kWRows, S::kXBytes, S::kThreads>(
        a, smem_base + static_cast<uint32_t>(slot * S::kStageBytes), kb, n0, x_rows, tid);
  };

  const int w_row = warp * 8 + lane / 4;  // this lane's W row in the tile
  const int pair = 2 * (lane % 4);        // its first element in each slice
  const int64_t row_offset = (n0 + w_row) * a.w_row_bytes;

  // This lane's fragments of half `h` of stage kb (in `slot`) into b (and u, the up rows).
  auto dequant = [&](int slot, int kb, int h, bool full, uint32_t(&b)[2 * kUnit],
                     uint32_t(&u)[2 * kUnit]) {
    const uint8_t* w_slots = smem_bytes + slot * S::kStageBytes + S::kXBytes;
    dequant_half<F>(a, w_slots + w_row * S::kWSlot, reinterpret_cast<uintptr_t>(a.w), row_offset,
                    kb, h, full, pair, b);
    if constexpr (kGated) {
      dequant_half<F>(a, w_slots + (S::BN + w_row) * S::kWSlot, reinterpret_cast<uintptr_t>(a.w_up),
                      row_offset, kb, h, full, pair, u);
    }
  };

  float acc[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}}, acc_up[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}};

  // The mma steps of half h of the stage whose x is in `slot`, from fragments b, u: its first
  // `slices` slices (slices at or past round_up(K, 64) have no step).
  auto chain = [&](int slot, int h, int slices, const uint32_t(&b)[2 * kUnit],
                   const uint32_t(&u)[2 * kUnit]) {
    const uint32_t base = smem_base + static_cast<uint32_t>(slot * S::kStageBytes);
#pragma unroll
    for (int j = 0; j < kUnit; ++j) {
      if (j >= slices) break;
      uint32_t x[4];
      ptx::ldmatrix_x4(x_fragment_address(base, h * kUnit + j, lane, x_rows, zero_chunk), x[0],
                       x[1], x[2], x[3]);
      ptx::mma_bf16_m16n8k16(acc[0], x, b[2 * j], b[2 * j + 1]);
      if constexpr (kGated) ptx::mma_bf16_m16n8k16(acc_up[0], x, u[2 * j], u[2 * j + 1]);
    }
  };

  const int n_full = p.n_full;
  // Slices of half h of stage kb below round_up(K, 64).
  auto slices_of = [&](int kb, int h) {
    const int64_t left = (p.k_round - static_cast<int64_t>(kb) * kKS) / 16 - h * kUnit;
    return static_cast<int>(left < 0 ? 0 : (left < kUnit ? left : kUnit));
  };

  // Prologue: stages 0 .. kStages - 2 in flight; the first half of stage 0 into A.
#pragma unroll
  for (int s = 0; s < S::kStages - 1; ++s) {
    if (s < p.k_stages) load_stage(s, s);
    ptx::cp_async_commit();
  }
  uint32_t bA[2 * kUnit], uA[2 * kUnit], bB[2 * kUnit], uB[2 * kUnit];
  ptx::cp_async_wait<S::kStages - 2>();
  __syncthreads();
  dequant(0, 0, 0, n_full > 0, bA, uA);

  // Stage i: once stage i + 1 landed (for all threads: the barrier) and every warp is past stage
  // i - 1, stage i + kStages - 1 goes to the slot of stage i - 1. Then the second half of stage
  // i is dequantized into B while the first half's mma steps run from A, and the first half of
  // stage i + 1 into A while the second half's steps run from B.
  auto begin_stage = [&](int i) {
    ptx::cp_async_wait<S::kStages - 3>();
    __syncthreads();
    const int next = i + S::kStages - 1;
    if (next < p.k_stages) load_stage(next % S::kStages, next);
    ptx::cp_async_commit();
  };
  int i = 0;
  // Steady state: stages i and i + 1 full, no branch between the slices.
  for (; i + 1 < n_full; ++i) {
    begin_stage(i);
    const int slot = i % S::kStages;
    dequant(slot, i, 1, true, bB, uB);
    chain(slot, 0, kUnit, bA, uA);
    dequant((i + 1) % S::kStages, i + 1, 0, true, bA, uA);
    chain(slot, 1, kUnit, bB, uB);
  }
  // The rest: the last full stage, a partial last stage, slices past K.
  for (; i < p.k_stages; ++i) {
    begin_stage(i);
    const int slot = i % S::kStages;
    dequant(slot, i, 1, i < n_full, bB, uB);
    chain(slot, 0, slices_of(i, 0), bA, uA);
    if (i + 1 < p.k_stages) dequant((i + 1) % S::kStages, i + 1, 0, i + 1 < n_full, bA, uA);
    chain(slot, 1, slices_of(i, 1), bB, uB);
  }
  ptx::cp_async_wait<0>();

  store_fragments<1, kGated>(a, 0, n0 + warp * 8 + pair, lane, acc, acc_up);
}

template <int F, int kWarps, bool kGated, int XR>
void launch_stream(const Params& p, cudaStream_t stream) {
  using S = StreamShape<F, kWarps, kGated, XR>;
  auto* kernel = gemm_quant_stream_kernel<F, kWarps, kGated, XR>;
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
  check_launch("gemm_quant_stream_kernel");
}

// M <= 16. Four-warp blocks (x loaded once for 32 W rows) where they give at least half as many
// blocks as multiprocessors, else one-warp blocks; x rows held: 1 at M = 1, else 16. Speed
// only: the chain of every element is the same.
template <int F, bool kGated>
void launch_stream_format(const Params& p, cudaStream_t stream) {
  const bool four_warps = (p.a.N + 31) / 32 * 2 >= sm_count();
  if (p.a.M == 1) {
    if (four_warps) {
      launch_stream<F, 4, kGated, 1>(p, stream);
    } else {
      launch_stream<F, 1, kGated, 1>(p, stream);
    }
  } else if (four_warps) {
    launch_stream<F, 4, kGated, 16>(p, stream);
  } else {
    launch_stream<F, 1, kGated, 16>(p, stream);
  }
}

}  // namespace bx::cuda::quant_gemm
