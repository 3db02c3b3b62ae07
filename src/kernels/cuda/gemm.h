// GEMM on the tensor cores: y[M,N] (+)= x[M,K] @ W[N,K]^T, bf16 inputs, f32 accumulation and
// output. The invariant kernel, and cuBLAS as the labelled non-invariant baseline (R8).
//
// Contract and reduction order (INVARIANCE.md R1-R3). K is cut into splits of a fixed size,
// kGemmKSplit = 1024 elements (the last one shorter), the same for every M (R2). Within a split
// every output element is one chain of mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32 instructions,
// one per 16-wide slice of K, in increasing k; the splits are then added in increasing order:
//
//   total = +0.0f
//   for each split s = [k_s, min(k_s + kGemmKSplit, K)), s increasing:
//     acc = +0.0f
//     for k0 = k_s, k_s + 16, ... (elements k >= K read as +0 bf16):
//       acc = mma_k16(x[m, k0:k0+16], W[n, k0:k0+16], acc)
//     total = total + acc                       (one f32 add)
//   y[m,n] = total                              (accumulate: y[m,n] = y[m,n] + total)
//
// How the tensor core sums the 16 products of one slice into acc is fixed by the hardware and
// the instruction, and involves only row m of x and row n of W. Two schedules compute this same
// sequence of operations: one block walks every split and keeps total in registers, or (small
// M, few output tiles) one block per (tile, split) writes acc to a workspace and a second kernel
// adds the splits in order. The schedule, the tile that computes an element (chosen from M and
// N), its position in the tile, the pipeline depth and the grid never change the sequence, so
// y[m,n] depends only on x[m,:], W[n,:] and K: never on M or on the other rows. Every GemmTile and
// both schedules give the same bits (tests/cuda/gemm_test).
//
// Requirements (checked, bx::Error otherwise): K % 8 == 0, x_stride and w_stride multiples of 8
// elements, x and W 16-byte aligned (each 8-element chunk of a row is one 16-byte load); M, N,
// K >= 0, strides at least the row length. Callers with K % 8 != 0 pad rows with zeros to a
// multiple of 8 (the zeros add nothing: mma slices already pad K to 16 with zeros).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

struct GemmArgs {
  const uint16_t* x = nullptr;  // [M, K] bf16 bits, row stride x_stride (elements), device
  int64_t x_stride = 0;
  const uint16_t* w = nullptr;  // [N, K] bf16 bits, row stride w_stride (elements), device
  int64_t w_stride = 0;
  float* y = nullptr;  // [M, N] f32, row stride y_stride (elements), device
  int64_t y_stride = 0;
  int64_t M = 0, N = 0, K = 0;
  bool accumulate = false;  // y = y + x W^T instead of y = x W^T
  // Optional device scratch for the split schedule: gemm_workspace_floats(M, N, K) floats. When
  // it is null or smaller, the register schedule runs (same bits, fewer blocks at small M).
  float* workspace = nullptr;
  int64_t workspace_floats = 0;
};

inline constexpr int64_t kGemmKSplit = 1024;

// Floats of workspace the split schedule needs: splits(K) * M * N.
inline int64_t gemm_workspace_floats(int64_t M, int64_t N, int64_t K) {
  return (K + kGemmKSplit - 1) / kGemmKSplit * M * N;
}

// Which schedule runs: automatic takes the split schedule when the workspace suffices, K has more
// than one split and the output tiles alone would not fill two waves of the GPU.
enum class GemmSchedule { automatic, registers, splits };

// The tile shapes (BM x BN). automatic picks from M and N (bench/RESULTS.md has the runs behind
// the thresholds): 16x32 for M <= 16; for M <= 128, 64x32 when N < 16384 (enough blocks to
// stream W) and 64x128 / 128x128 for larger N; 128x128 above, on 16 warps (32x32 each; measured
// faster than 8 warps of 64x32 once the register schedule keeps total beside acc). Tests force
// each one to show they agree bit for bit.
enum class GemmTile { automatic, t16x32, t64x32, t64x128, t128x128, t128x128w16 };

// The invariant kernel. Asynchronous on `stream`.
void gemm_bf16(const GemmArgs& args, cudaStream_t stream, GemmTile tile = GemmTile::automatic,
               GemmSchedule schedule = GemmSchedule::automatic);

// Fast mode (R8): cuBLAS (cublasGemmEx, bf16 inputs, CUBLAS_COMPUTE_32F, default algorithm).
// Its kernel and its split of K follow M, so rows are not invariant. The handle is created on
// first use on the calling thread's current device. `accumulate` is not supported (bx::Error).
void gemm_bf16_cublas(const GemmArgs& args, cudaStream_t stream);

}  // namespace bx::cuda
