// GEMM on the tensor cores: y[M,N] (+)= x[M,K] @ W[N,K]^T, bf16 inputs, f32 accumulation and
// output. The invariant kernel (wgmma, Hopper sm_90a), a simple mma.sync reference, and cuBLAS as
// the labelled non-invariant baseline (R8).
//
// Contract and reduction order (INVARIANCE.md R1-R3). There is no split of K. Every output
// element is one chain of wgmma.mma_async.m64nNk16.f32.bf16.bf16 instructions, one per 16-wide
// slice of K, in increasing k, starting from +0:
//
//   acc = +0.0f
//   for k0 = 0, 16, 32, ... < round_up(K, 64) (elements k >= K read as +0 bf16):
//     acc = acc + dot16(x[m, k0:k0+16], W[n, k0:k0+16])     (one wgmma k16 step, scale-d = 1)
//   y[m,n] = acc                                (accumulate: y[m,n] = y[m,n] + acc, one f32 add)
//
// Epilogues, applied to the finished chains, the same way for every M and tile (R3):
// - parts: the N output columns go to up to three matrices (q | k | v from one W = [Wq; Wk; Wv]):
//   column n of part i (n in [first_col_i, first_col_{i+1})) is stored at y_i[m, n - first_col_i].
//   Each element is still its own chain, so one GEMM over the concatenated rows of W gives the
//   bits of one GEMM per part.
// - gated (w_up set; SwiGLU): y[m,n] = (g / (1.0f + expf(-g))) * u, g = chain(x[m], W[n]) and
//   u = chain(x[m], w_up[n]): F.silu(gate) * up, the expression kernels/cuda/rows.h silu_mul
//   evaluates on the stored chains, in f32, so the fused result has the unfused bits. A tile of
//   BN outputs loads BN/2 rows of W and the same BN/2 rows of w_up and produces BN/2 outputs.
//   With y_bf16 the gated outputs are stored as bf16 (__float2bfloat16_rn, what rows.h
//   to_bf16_padded does to the f32 outputs) with +0 in columns [N, round_up(N, 8)): the input of
//   a following GEMM over K = round_up(N, 8) (SwiGLU's down projection), bit for bit the one the
//   f32 outputs and to_bf16_padded would give, without that pass.
//
// How the tensor core forms dot16 and adds it to acc is fixed by the hardware; it involves only
// row m of x and row n of W. A = the x tile (wgmma's M = 64 rows of tokens), B = the W tile
// (wgmma's N = the tile's outputs), both K-major in shared memory. Rows of the x tile past M are
// zeros (TMA zero-fill, or zeroed once when the TMA box is cut to round_up(M, 8) rows); their
// outputs are never stored. The tile shape (64 or 128 rows, instruction N = 16 ... 256, chosen
// from M and N by gemm_pick_tile), the element's position in the tile, the pipeline depth and
// the grid never change the sequence above, and the tensor core gives the same bits for element
// (m, n) whatever the instruction's N and the row's position in the m64 block: tests/cuda/
// gemm_test checks every tile against every other for every M = 1..512 at ragged row offsets,
// and rows alone against rows inside batches of M = 1..1183 (memcmp). So y[m,n]
// depends only on x[m,:], W[n,:] and K: never on M, on the other rows, or on the tile.
//
// The reference (gemm_bf16_reference) is an mma.sync m16n8k16 kernel over the same k16 slices in
// the same order from +0. On the H100 it gives the same bits as the wgmma kernel (the tests
// assert it on random data), so it doubles as a plain reference for T1; T1 on small integers and
// T2 against float64 hold both to account independently of the hardware's summation.
//
// Requirements (checked, bx::Error otherwise): K % 8 == 0, x_stride and w_stride multiples of 8
// elements and x and W 16-byte aligned (TMA wants 16-byte row pitches and bases; the reference
// loads 16-byte chunks); M, N, K >= 0, strides at least the row length. Callers with K % 8 != 0
// pad rows with zeros to a multiple of 8 (the zeros add nothing: K is padded to 64 with zeros).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

// Columns [first_col, next part's first_col or N) of y go to y (row stride `stride`) instead.
struct GemmOutputPart {
  int64_t first_col = 0;  // a multiple of 8, increasing from part to part, below N
  float* y = nullptr;
  int64_t stride = 0;
};

struct GemmArgs {
  const uint16_t* x = nullptr;  // [M, K] bf16 bits, row stride x_stride (elements), device
  int64_t x_stride = 0;
  const uint16_t* w = nullptr;  // [N, K] bf16 bits, row stride w_stride (elements), device
  int64_t w_stride = 0;
  float* y = nullptr;  // [M, N] f32, row stride y_stride (elements), device
  int64_t y_stride = 0;
  int64_t M = 0, N = 0, K = 0;
  bool accumulate = false;  // y = y + x W^T instead of y = x W^T
  // Up to two more output parts after y's columns [0, parts[0].first_col) (not with w_up).
  static constexpr int kMaxParts = 2;
  GemmOutputPart parts[kMaxParts];
  int n_parts = 0;
  // Gated epilogue: the up rows [N, K] (stride w_stride), W holding the gate rows. Not with
  // accumulate; the wgmma kernel only (the reference and cuBLAS refuse it).
  const uint16_t* w_up = nullptr;
  // Gated only: bf16 outputs [M, round_up(N, 8)] here (row stride y_stride, a multiple of 8;
  // 16-byte aligned) instead of y.
  uint16_t* y_bf16 = nullptr;
};

// Output tile shapes (rows of x x rows of W). w64xN: one consumer warpgroup, wgmma m64nN (small
// M: narrow W tiles give enough blocks to stream W). w128xN: two consumer warpgroups, each m64nN
// on its own 64 rows (large M). automatic picks from M and N (gemm_pick_tile); the tests force
// every one to show they agree bit for bit.
enum class GemmTile { automatic, w64x16, w64x32, w64x64, w128x64, w128x128, w128x192, w128x256 };
inline constexpr GemmTile kGemmTiles[] = {GemmTile::w64x16,  GemmTile::w64x32,   GemmTile::w64x64,
                                          GemmTile::w128x64, GemmTile::w128x128, GemmTile::w128x192,
                                          GemmTile::w128x256};
const char* gemm_tile_name(GemmTile tile);
// The tile automatic uses for this shape on a GPU with `sms` multiprocessors (only speed).
GemmTile gemm_pick_tile(int64_t M, int64_t N, int sms);

// Throws bx::Error naming `who` unless args meets the requirements above.
void check_gemm_args(const GemmArgs& args, const char* who);

// The invariant kernel. Asynchronous on `stream`.
void gemm_bf16(const GemmArgs& args, cudaStream_t stream, GemmTile tile = GemmTile::automatic);

// Simple reference (plain epilogue and accumulate only): mma.sync m16n8k16 with cp.async, 64x64
// tiles, the same k16 slices in the same order. Slow; for tests.
void gemm_bf16_reference(const GemmArgs& args, cudaStream_t stream);

// Fast mode (R8): cuBLAS (cublasGemmEx, bf16 inputs, CUBLAS_COMPUTE_32F, default algorithm).
// Its kernel and its split of K follow M, so rows are not invariant. The handle is created on
// first use on the calling thread's current device. `accumulate`, parts and w_up are not
// supported (bx::Error).
void gemm_bf16_cublas(const GemmArgs& args, cudaStream_t stream);

}  // namespace bx::cuda
