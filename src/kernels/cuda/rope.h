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

}  // namespace bx::cuda
