// The invariant bf16 GEMM (gemm.h) over groups of rows, each with its own weights, from a tile
// list on the device: the grouped GEMM of Mixture-of-Experts layers (kernels/cuda/moe.h).
//
// x holds the groups' rows back to back (rows of group g: [offsets[g], offsets[g + 1])), W holds
// the groups' weights back to back (group g: rows [g N, (g + 1) N), and w_up likewise). Row tile
// i of the list covers x rows [tile_row0[i], tile_row0[i] + tile_rows) of group tile_group[i];
// *n_tiles tiles are valid, at most max_tiles. For each row r of group g:
//   y[r, n] = chain(x[r], W[g N + n])            n < N   (gated: gemm.h's epilogue on the gate and
//                                                         up chains, into y_bf16 or y)
// Every element is gemm.h's chain, the same wgmma k16 steps from +0 in increasing k: the grouping
// decides which rows and weights meet, never the order of a sum. Rows of a tile past its group's
// end (the next group's rows, or zeros past M) are computed and not stored (or, with
// skip_idle_consumers on 128-row tiles, a consumer whose 64 rows all lie past the end skips them).
//
// args: x [M = all rows, K], w (and w_up) [count N, K], y or y_bf16 [M, N]; no accumulate, no
// output parts. Tiles of 64 rows run the 64x32 or 64x64 tile (the one streaming fewer W rows per
// block, gemm_pick_tile's rule at small M), of 128 rows the 128x256 tile. The list is
// read on the device after the previous kernel on the stream has finished, so it may be that
// kernel's output (with early_start, the launch overlaps its drain: gemm.cu's early start).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/gemm.h"

namespace bx::cuda {

struct GemmGroups {
  int count = 0;                        // groups: W holds count x N rows
  const int32_t* tile_group = nullptr;  // [max_tiles] device
  const int32_t* tile_row0 = nullptr;   // [max_tiles] device
  const int32_t* n_tiles = nullptr;     // [1] device
  const int32_t* offsets = nullptr;     // [count + 1] device
  int64_t max_tiles = 0;
  int tile_rows = 128;  // 64 or 128
  // 128-row tiles only: grouped row r of the GEMM is row x_rows[r] of x ([x_count, K], the rows
  // gathered on the fly by the producer threads instead of a gathered copy); null: row r of x.
  const int32_t* x_rows = nullptr;  // [M] device
  int64_t x_count = 0;
  // 128-row tiles: a consumer warpgroup whose 64 rows all lie past the group's end skips its
  // tensor work (the other's chains unchanged). Off by default (not yet run on a device).
  bool skip_idle_consumers = false;
  bool early_start = false;
};

void gemm_bf16_grouped(const GemmArgs& args, const GemmGroups& groups, cudaStream_t stream);

}  // namespace bx::cuda
