// The per-row steps of the attention contract (attention.h) on m16n8k16 fragments, for the
// attention kernels of head_dim above 128 (attention_d256.cu): the window bounds, the online
// softmax of one chunk, and the split merge. Every step is the IEEE f32 operation written (the
// project builds with --fmad=false) except ex2 (ex2.approx.ftz.f32) and max (fmaxf).
#pragma once

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention.h"

namespace bx::cuda::attention_steps {

inline constexpr int kKeys = kAttentionChunk;  // positions of a chunk
inline constexpr float kLog2e = 1.4426950408889634f;

// The first position a query at pos reads: 0, or the sliding window's start.
__device__ __forceinline__ int64_t first_visible(int64_t pos, int window) {
  return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}
// Whether a window leaves nothing of [.., end) to a query at pos.
__device__ __forceinline__ bool masked_before(int64_t end, int64_t pos, int window) {
  return window > 0 && end <= first_visible(pos, window);
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// bf16_rn(lo), bf16_rn(hi) in one register, lo in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// The split merge: (M, L, O) <- (M, L, O) combined with (m_s, l_s, o_s):
//   M' = max(M, m_s); a = ex2(M - M'); b = ex2(m_s - M'); L = L a + l_s b; O = O a + o_s b.
struct MergeWeights {
  float a, b;
};
__device__ __forceinline__ MergeWeights merge_max(float& M, float m_s) {
  const float M_new = fmaxf(M, m_s);
  const MergeWeights w{ex2(__fsub_rn(M, M_new)), ex2(__fsub_rn(m_s, M_new))};
  M = M_new;
  return w;
}
__device__ __forceinline__ float merge_value(float acc, float part, MergeWeights w) {
  return __fadd_rn(__fmul_rn(acc, w.a), __fmul_rn(part, w.b));
}

// One chunk's online-softmax step on a 16-row fragment: s[i][e] is the score of row g (e < 2)
// or g + 8 (lane = 4 g + c) with key 8 i + 2 c + (e & 1) of the chunk at c0; rows at positions
// pos0, pos1. Masks keys past the row (causal) and before its window, then
//   m_c = max_j s_j; m' = max(m, m_c); alpha = ex2(m - m'); p_j = ex2(s_j - m')
//   l = l alpha + rowsum(p)   (lane sums its 16 columns in order from +0, then xor-1, xor-2)
//   o = o alpha               (o[j][e] of the row of e, through the caller's kOTiles tiles)
// and leaves p in s. A row whose window starts past the chunk keeps its state exactly
// (alpha = 1, p = 0), as if the chunk were not visited (R11).
template <int kOTiles>
__device__ __forceinline__ void softmax_step(float (&s)[8][4], int64_t c0, int64_t pos0,
                                             int64_t pos1, float (&m)[2], float (&l)[2],
                                             float (&o)[kOTiles][4], int window) {
  const int c = static_cast<int>(threadIdx.x) & 3;
  const int rel[2] = {static_cast<int>(pos0 - c0), static_cast<int>(pos1 - c0)};
  // Key k (relative to c0) is masked for a row at rel when k > rel or k + window <= rel; the
  // whole chunk is before the window when kKeys - 1 + window <= rel.
  const bool skip[2] = {window > 0 && kKeys - 1 + window <= rel[0],
                        window > 0 && kKeys - 1 + window <= rel[1]};
  float mc[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int key = 8 * i + 2 * c + (e & 1);
      const int r = rel[e >> 1];
      if (key > r || (window > 0 && key + window <= r)) s[i][e] = -INFINITY;
      mc[e >> 1] = fmaxf(mc[e >> 1], s[i][e]);
    }
  }
  float alpha[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mc[r] = fmaxf(mc[r], __shfl_xor_sync(0xffffffffu, mc[r], 1));
    mc[r] = fmaxf(mc[r], __shfl_xor_sync(0xffffffffu, mc[r], 2));
    const float m_new = fmaxf(m[r], mc[r]);
    alpha[r] = skip[r] ? 1.0f : ex2(__fsub_rn(m[r], m_new));
    if (!skip[r]) m[r] = m_new;
  }
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[i][e] = skip[e >> 1] ? 0.0f : ex2(__fsub_rn(s[i][e], m[e >> 1]));
      sum[e >> 1] = __fadd_rn(sum[e >> 1], s[i][e]);
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    sum[r] = __fadd_rn(sum[r], __shfl_xor_sync(0xffffffffu, sum[r], 1));
    sum[r] = __fadd_rn(sum[r], __shfl_xor_sync(0xffffffffu, sum[r], 2));
    l[r] = __fadd_rn(__fmul_rn(l[r], alpha[r]), sum[r]);
  }
#pragma unroll
  for (int j = 0; j < kOTiles; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) o[j][e] = __fmul_rn(o[j][e], alpha[e >> 1]);
  }
}

}  // namespace bx::cuda::attention_steps
