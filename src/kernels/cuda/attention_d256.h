// Paged attention for head_dim in (128, 256] (Gemma 3 1B / 4B / 12B: 256): the contract of
// attention.h with Dp = 256, on mma.sync m16n8k16 (bf16 operands, f32 accumulation).
//
// One kernel family computes every query of these shapes, prefill tiles and single tokens alike,
// so a query's bits depend only on its q, its position and its sequence's cache:
//   prefill blocks  (tile, head): 4 warps, warp w holds the tile's tokens 16 w .. 16 w + 15
//   decode blocks   (single token, KV head x 4 group tiles [, split]): warp w holds 16 query
//                   heads of the group; with split partials each block computes one split and a
//                   combine kernel merges the splits in position order, else the block walks them
// The threads of a block copy each 64-position chunk of K and V into shared memory (cp.async,
// three stages of 64 KB); q, scaled and rounded to bf16, waits in shared memory in fragment
// order (the O accumulator, 128 floats a thread, takes the registers). A walking block merges
// its splits into the output rows (each thread its own elements) and divides by L at the end.
// Chunks wholly before the window of every row of a block are not visited and splits wholly
// before it not computed: the contract gives them no effect on a row's bits (R11).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/attention.h"

namespace bx::cuda {

// Query rows of a warp of this kernel (the split-path rule counts the walking warps).
inline constexpr int kAttentionWideRows = 16;

// attention() for kv.head_dim > 128 (it checks the arguments first). split_path: single tokens
// compute their splits in separate blocks into args.workspace (attention_uses_split_partials).
void attention_d256(const AttentionArgs& args, bool split_path, cudaStream_t stream);

}  // namespace bx::cuda
