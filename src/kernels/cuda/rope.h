// RoPE on the GPU, in place on the heads of q or k: the contract of kernels/rope.h exactly.
//
// Pair i of a head at position p turns by the table's (cos, sin)[p, i]:
//   x0' = x0 * c - x1 * s,   x1' = x0 * s + x1 * c     (two products, then one add: --fmad=false)
// adjacent_pairs rotates dims (2i, 2i+1), half_split rotates (i, i + head_dim/2). The table is
// the CPU's (computed once in double and rounded to float), so the GPU gives the CPU's bits.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/rope.h"

namespace bx::cuda {

struct RopeDeviceTable {
  const float* cos = nullptr;  // [max_positions, head_dim / 2], device
  const float* sin = nullptr;
  int head_dim = 0;
  int max_positions = 0;
  RopeLayout layout = RopeLayout::adjacent_pairs;
};

// x [T, n_heads * head_dim] (row stride x_stride), positions [T] on the device, each in
// [0, max_positions) (the caller checks).
void rope_inplace(float* x, int64_t x_stride, const int32_t* positions, int64_t T, int n_heads,
                  const RopeDeviceTable& table, cudaStream_t stream);

// Per-head RMSNorm then RoPE of q and k in one launch (Qwen3's q/k norm before the rotation):
//   q[t, h] = rope(rmsnorm(q[t, h]) * q_norm),  k[t, g] = rope(rmsnorm(k[t, g]) * k_norm)
// for heads h < n_heads of q [T, n_heads * head_dim] and g < n_kv_heads of k; the norm is
// skipped where its weight is null. Bit for bit rmsnorm (rows.h, the heads as rows of head_dim)
// followed by rope_inplace on q and on k: the same order (one warp a head, lane l playing the
// threads l + 32 q of rows.h's 256) and the same IEEE steps, without the round trip to memory.
// Needs head_dim 32, 64, 128 or 256, and not 32 for half_split (qk_norm_rope_fusable).
struct QkNormRopeArgs {
  float* q = nullptr;
  int64_t q_stride = 0;
  int n_heads = 0;
  float* k = nullptr;
  int64_t k_stride = 0;
  int n_kv_heads = 0;
  const float* q_norm = nullptr;  // [head_dim] or null
  const float* k_norm = nullptr;  // [head_dim] or null
  float eps = 0.0f;
};
bool qk_norm_rope_fusable(const RopeDeviceTable& table);
void qk_norm_rope_inplace(const QkNormRopeArgs& args, const int32_t* positions, int64_t T,
                          const RopeDeviceTable& table, cudaStream_t stream);

}  // namespace bx::cuda
