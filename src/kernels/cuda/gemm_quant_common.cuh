// Device pieces shared by the two kernels of gemm_quant.h (the tiled kernel for M > 16 in
// gemm_quant.cu, the weight-stream kernel for M <= 16 in gemm_quant_stream.cuh): the kernel
// parameters, the bf16 pair conversion, the stage geometry of the raw blocks and the epilogue that
// writes a warp's m16n8 fragments.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/gemm_quant.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_pair.h"

namespace bx::cuda::quant_gemm {

constexpr int kKS = 256;           // K columns per stage
constexpr int kXChunks = kKS / 8;  // 16-byte chunks per x row of a stage

struct Params {
  QuantGemmArgs a;
  int k_stages;     // stages over round_up(K, 64)
  int n_full;       // stages whose 16 slices are all below K: K / 256
  int64_t k_round;  // round_up(K, 64): the last slice + 16
};

// Two f32 -> one register of two bf16 (round to nearest even), the first in the low half.
__device__ __forceinline__ uint32_t pack_bf16(quant::QuantPair v) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(v.first, v.second);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// F.silu(g) * u, the expression of rows.cu's silu_mul_kernel and gemm.cu's gated epilogue (same
// compilation flags).
__device__ __forceinline__ float silu_times(float g, float u) {
  return (g / (1.0f + expf(-g))) * u;
}

// One W row's raw blocks for a stage of format F in shared memory: the 16-byte chunks that cover
// the bytes of its blocks in [k0, k0 + 256), which start up to 15 bytes before the first block.
template <int F>
struct RowSlot {
  static constexpr int E = static_cast<int>(quant::kBlockElements[F]);
  static constexpr int BB = static_cast<int>(quant::kBlockBytes[F]);
  static constexpr int kStageBlockBytes = kKS / E * BB;  // one row's blocks in a full stage
  static constexpr int kBytes = (kStageBlockBytes + 15) / 16 * 16 + 16;
  static constexpr int kChunks = kBytes / 16;
};

// Writes a warp's FM m16n8 accumulator fragments (and the up chains' for the gated epilogue):
// fragment element e of mi is row m0 + 16 mi + lane / 4 (+8 for e >= 2), column col (+1 for odd
// e), col = the warp's first column + 2 (lane % 4). A warp's 8 columns are one aligned group of
// 8: in one output part, and holding any padding columns [N, round_up(N, 8)) of the bf16 outputs.
template <int FM, bool kGated>
__device__ __forceinline__ void store_fragments(const QuantGemmArgs& a, int64_t m0, int64_t col,
                                                int lane, const float (&acc)[FM][4],
                                                const float (&acc_up)[FM][4]) {
  float* out_base = a.y;
  int64_t out_stride = a.y_stride, out_col = col;
  if constexpr (!kGated) {
    for (int i = 0; i < a.n_parts; ++i) {
      if (col >= a.parts[i].first_col) {
        out_base = a.parts[i].y;
        out_stride = a.parts[i].stride;
        out_col = col - a.parts[i].first_col;
      }
    }
  }
  const int64_t padded = (a.N + 7) / 8 * 8;
#pragma unroll
  for (int mi = 0; mi < FM; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m0 + mi * 16 + lane / 4 + 8 * half;
      if (m >= a.M) continue;
      float v[2] = {acc[mi][2 * half], acc[mi][2 * half + 1]};
      if constexpr (kGated) {
        v[0] = silu_times(v[0], acc_up[mi][2 * half]);
        v[1] = silu_times(v[1], acc_up[mi][2 * half + 1]);
        if (a.y_bf16 != nullptr) {  // columns col, col + 1 as one 4-byte store; +0 past N
          if (col < padded) {
            const uint32_t lo = __bfloat16_as_ushort(__float2bfloat16_rn(col < a.N ? v[0] : 0.0f));
            const uint32_t hi =
                __bfloat16_as_ushort(__float2bfloat16_rn(col + 1 < a.N ? v[1] : 0.0f));
            reinterpret_cast<uint32_t*>(a.y_bf16 + m * a.y_stride)[col / 2] = lo | (hi << 16);
          }
          continue;
        }
      }
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        if (col + e >= a.N) continue;
        float* out = out_base + m * out_stride + out_col + e;
        *out = a.accumulate ? *out + v[e] : v[e];
      }
    }
  }
}

}  // namespace bx::cuda::quant_gemm
