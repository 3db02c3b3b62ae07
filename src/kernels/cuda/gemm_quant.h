// GEMM with block-quantized weights resident in their GGUF blocks (W4A16 / W8A16):
// y[M,N] (+)= x[M,K] @ dequant(W)[N,K]^T, x bf16, f32 accumulation and output.
//
// Contract: the bits of the invariant bf16 GEMM (gemm.h) run on Wb = bf16(dequant(W)), the
// weights dequantized to f32 by kernels/quant.h's element math (the values gguf::dequantize_to_f32
// gives at load) and rounded to bf16 (round to nearest even, as CudaBackend::upload_matrix does).
// So a model whose weights stay in blocks gives the same bits as the same model dequantized at
// load, for every M.
//
// How: every output element is the chain of gemm.h, one mma k16 step per 16-wide slice of K in
// increasing k from +0, over k < round_up(K, 64) with zeros past K:
//
//   acc = +0.0f
//   for k0 = 0, 16, ... < round_up(K, 64):  acc = acc + dot16(x[m, k0:k0+16], Wb[n, k0:k0+16])
//
// issued as mma.sync m16n8k16 (which gives the bits of the wgmma steps on Hopper; gemm.h's
// reference and tests/cuda/gemm_test check that). The raw blocks of a 256-wide K stage go to
// shared memory (cp.async); each thread dequantizes the four weights of its B fragment for each
// slice (f32 element math, then __floats2bfloat162_rn) straight into registers. The tile shape and
// M never change the sequence above, and the element math involves only W[n, k]: y[m, n] depends
// only on x[m, :], W[n, :] and K.
//
// Epilogues: output parts and the gated (SwiGLU) epilogue of gemm.h, the same expressions on the
// same chains, so their bits are gemm_bf16's with the same epilogue on Wb.
//
// Formats with a fused kernel: Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K (gemm_quant_supports). Others
// are dequantized at load by the caller.
//
// Requirements (bx::Error otherwise): K a multiple of the format's block size (32 or 256), x
// 16-byte aligned with a row stride that is a multiple of 8 elements and >= K, w_row_bytes >=
// the bytes of K weights, M, N >= 0. The weight buffer must have 16 readable bytes past its last
// row (the kernel loads whole 16-byte chunks; CudaBackend::upload_blocks pads).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/gemm.h"

namespace bx::cuda {

struct QuantGemmArgs {
  const uint16_t* x = nullptr;  // [M, K] bf16 bits, row stride x_stride (elements), device
  int64_t x_stride = 0;
  const uint8_t* w = nullptr;  // N rows of K / E blocks of `format`, row r at w + r * w_row_bytes
  int64_t w_row_bytes = 0;
  int format = 0;      // quant::BlockFormatId
  float* y = nullptr;  // [M, N] f32, row stride y_stride (elements), device
  int64_t y_stride = 0;
  int64_t M = 0, N = 0, K = 0;
  bool accumulate = false;  // y = y + x Wb^T instead of y = x Wb^T
  // Output parts, as gemm.h's: columns [parts[i].first_col, next) go to parts[i].y (q | k | v
  // from one W of their rows back to back).
  GemmOutputPart parts[GemmArgs::kMaxParts];
  int n_parts = 0;
  // Gated epilogue, as gemm.h's: the up rows [N, K] in the same format and row stride, W holding
  // the gate rows; y[m, n] = silu_mul of the two chains, or with y_bf16 that rounded to bf16 with
  // +0 in columns [N, round_up(N, 8)) (row stride y_stride). Not with accumulate or parts.
  const uint8_t* w_up = nullptr;
  uint16_t* y_bf16 = nullptr;
};

// Whether gemm_quant and embed_quant_rows take blocks of this quant::BlockFormatId.
bool gemm_quant_supports(int format);

// Which kernel runs; speed only, every schedule gives the bits above. tiled: 64 x 32 tiles, any
// M. For M <= 16 (decode) two weight-stream kernels: stream (each warp dequantizes the blocks of
// its 8 W rows and issues their mma steps) and chain_warps (warps that dequantize and warps that
// issue the mma steps, the fragments handed over in shared memory). automatic:
// quant_gemm_pick_schedule.
enum class QuantGemmSchedule { automatic, tiled, stream, chain_warps };
inline constexpr QuantGemmSchedule kQuantGemmSchedules[] = {
    QuantGemmSchedule::tiled, QuantGemmSchedule::stream, QuantGemmSchedule::chain_warps};
const char* quant_gemm_schedule_name(QuantGemmSchedule schedule);
// The schedule automatic uses for M rows of x: tiled above 16, stream at or below.
QuantGemmSchedule quant_gemm_pick_schedule(int64_t M);

// The kernel above. Asynchronous on `stream`. stream and chain_warps need M <= 16 (bx::Error).
void gemm_quant(const QuantGemmArgs& args, cudaStream_t stream,
                QuantGemmSchedule schedule = QuantGemmSchedule::automatic);

// out[t, c] = float(bf16(dequant(table)[ids[t], c])) for c < D: the rows a table dequantized at
// load and held as bf16 gives (embed_rows). table rows are row_bytes apart; D a multiple of the
// block size.
void embed_quant_rows(const uint8_t* table, int format, int64_t row_bytes, const int32_t* ids,
                      float* out, int64_t out_stride, int64_t T, int64_t D, cudaStream_t stream);

}  // namespace bx::cuda
