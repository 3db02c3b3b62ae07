// Causal attention over a paged bf16 KV cache on the GPU, on tensor cores (wgmma m64nNk16 or
// mma.sync m16n8k16, bf16 operands, f32 accumulation): the contract of kernels/attention.h (R4)
// with the GPU's own arithmetic (its own fingerprint).
//
// K and V of every token in the batch are written to the cache first (rounded to bf16), and
// attention reads them back from the cache only, so prefill, chunked prefill and decode see the
// same values. Query token t at position p, head h, attends to positions lo..p of its own
// sequence through KV head g = h / (n_heads / n_kv_heads); lo = 0, or with a sliding window of
// W positions lo = max(0, p - W + 1) (R11: the window only masks, the chunks and splits stay).
//
// Positions are cut into splits of S = split positions (default kAttentionSplit; a multiple of
// the chunk), [s*S, (s+1)*S), and each split into chunks of C = kAttentionChunk = 64 positions,
// [c*C, (c+1)*C), all aligned to absolute positions. With Dp = head_dim rounded up to 64, 128 or
// 256 (the padding dims are zero in q, K and V; above 128: attention_d256.h), for one query row:
//
//   qb[d]  = bf16_rn(q[d] * (scale * log2(e)))                  (the f32 product, then rounded)
//   per split s:  m = -inf, l = +0, o[d] = +0, then per chunk c of the split, in order:
//     s_j  = mma chain over d in steps of 16, d increasing, from +0: s_j = mma(qb, k_j, s_j)
//            (for positions j > p or j < lo: s_j = -inf; positions beyond the batch's keys read
//            as zero). A chunk wholly before lo leaves the row's (m, l, o) as they are (alpha =
//            1, p_j = 0), and a split wholly before lo is skipped by the combine, so the row's
//            bits are those of visiting only the chunks and splits from lo's on.
//     m_c  = max_j s_j;  m' = max(m, m_c);  alpha = ex2(m - m');  p_j = ex2(s_j - m')
//     l    = l * alpha + rowsum(p_j)
//            rowsum: lane c of the row's quad sums its columns 8i + 2c, 8i + 2c + 1 for
//            i = 0..7 in that order from +0, then x = x + shfl_xor(x, 1); x = x + shfl_xor(x, 2)
//     o[d] = mma chain over j in steps of 16, j increasing, starting from o[d] * alpha:
//            o = mma(bf16_rn(p_j), v_j, o)
//   combine the splits s = 0, 1, ... in position order (M = -inf, L = +0, O[d] = +0 first):
//     M' = max(M, m_s); a = ex2(M - M'); b = ex2(m_s - M')
//     L = L * a + l_s * b;  O[d] = O[d] * a + o_s[d] * b          (products, then add)
//   out[d] = O[d] / L
// ex2 is ex2.approx.ftz.f32 and max is fmaxf (NaN scores are skipped by the max); every other
// step is the IEEE f32 operation written (the project builds with --fmad=false).
//
// A query's arithmetic is the same whichever kernel computes it. Prefill tiles hold up to 64
// consecutive positions of one sequence that lie in one 64-aligned group (so they need the same
// chunks and splits), as the 64 rows of a wgmma warpgroup (or the 16-row tiles of four mma.sync
// warps); single tokens (decode) put up to 64 (mma.sync: 16) query heads of a KV group in one
// tile, and either walk the splits in order or compute each split on its own and combine them in
// a second kernel. wgmma m64nNk16 and mma m16n8k16 give an element the same bits from the same
// row of A, column of B and accumulator, and that result depends on nothing else (tested), so a
// query's bits depend only on its q, its position and its sequence's cache: never on the batch,
// the chunking of the prompt, its row in a tile, or the kernel. A chunk masked for every row in
// its tile is never visited.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_check.h"

namespace bx::cuda {

inline constexpr int kAttentionChunk = 64;
inline constexpr int kAttentionSplit = 512;
// The opt-in order (AttentionArgs::k3; kernel version cuda-k3): splits of 128 positions.
inline constexpr int kAttentionSplitK3 = 128;
// head_dim up to kAttentionMaxHeadDim runs on this file's kernels, head_dim in (128, 256] on
// attention_d256.h's; either way a multiple of 8.
inline constexpr int kAttentionMaxHeadDim = 128;
inline constexpr int kAttentionWideMaxHeadDim = 256;

// One layer's cache: k and v are [n_blocks, block_size, n_kv_heads, head_dim] bf16, device.
struct PagedKv {
  uint16_t* k = nullptr;
  uint16_t* v = nullptr;
  int64_t n_blocks = 0;
  int block_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// The batch's token positions and block tables, on the device: token t at positions[t] reads
// block ids tables[table_offsets[t] + b] for b = 0 .. positions[t] / block_size. Every id must
// be in [0, n_blocks) (the caller checks when it builds the tables). Tokens of one sequence
// share one table offset.
struct DeviceBatch {
  const int32_t* positions = nullptr;      // [T]
  const int32_t* table_offsets = nullptr;  // [T]
  const int32_t* tables = nullptr;         // flat block ids
  int64_t T = 0;
};

// Whether BITEXACT_ATTENTION_K3=1 is set (read once): the default of AttentionArgs::k3, and the
// CUDA backend's choice of the 128-position split (kernel version cuda-k3).
bool attention_k3_enabled();

// How single tokens (decode) run their splits: by batch size (split partials while the walking
// jobs are fewer than the SMs, attention_uses_split_partials), or always one way (benchmarks).
// Only a speed choice: every path gives the same bits.
enum class DecodePath { by_batch, split_partials, walk };

// How the batch's queries are tiled (only a speed choice: every tiling gives the same bits).
// tiles: (first token, count) pairs of runs of count >= 2 tokens with one table offset and
// consecutive positions in one 64-aligned group; singles: every other token.
struct AttentionPlan {
  const int32_t* tiles = nullptr;    // [2 * n_tiles], device
  const int32_t* singles = nullptr;  // [n_singles], device
  int64_t n_tiles = 0, n_singles = 0;
  int64_t T = 0;             // tokens planned (must be the batch's T)
  int32_t max_position = 0;  // over the batch
};

// Builds the plan on the host from host copies of positions and table offsets and keeps it on
// the device (the buffers grow, never shrink; the copies are ordered on `stream`, so kernels
// launched on it after build see this plan). The host copies stay valid until the next build.
class AttentionPlanner {
 public:
  // Sizes the plan's arrays for batches of up to max_tokens tokens (at least what is held), so
  // that build() allocates nothing for them.
  void reserve(int64_t max_tokens, cudaStream_t stream = nullptr);
  // Batches beyond the reserved size reserve more first.
  const AttentionPlan& build(const int32_t* positions, const int32_t* table_offsets, int64_t T,
                             cudaStream_t stream = nullptr);
  const AttentionPlan& plan() const { return plan_; }
  // Device buffers allocated so far.
  int64_t allocation_count() const { return allocations_; }

 private:
  std::vector<int32_t> tiles_, singles_;  // [2 T], [T]
  DeviceBuffer tiles_dev_, singles_dev_;
  int64_t reserved_tokens_ = 0;
  int64_t allocations_ = 0;
  AttentionPlan plan_;
};

struct AttentionArgs {
  const float* q = nullptr;  // [T, n_heads * head_dim] f32, row stride q_stride
  int64_t q_stride = 0;
  float* out = nullptr;  // [T, n_heads * head_dim] f32, row stride out_stride
  int64_t out_stride = 0;
  int n_heads = 0;
  float scale = 0.0f;
  int window = 0;  // > 0: a sliding window of that many positions (attention.h above)
  PagedKv kv;
  DeviceBatch batch;
  AttentionPlan plan;
  // Split partials of single tokens (attention_uses_split_partials); otherwise single tokens
  // walk their splits in one job (a speed choice: the same bits).
  float* workspace = nullptr;
  int64_t workspace_floats = 0;
  DecodePath decode_path = DecodePath::by_batch;
  // Split partials on the wgmma kernel: more jobs than warpgroups of one block an SM stream
  // through those warpgroups (false: a block per job pair). A speed choice: the same bits.
  bool stream_split_jobs = true;
  // Prefill on the wgmma kernel with the 128-position split: the two warpgroups of a block that
  // read the same chunks take turns on the tensor cores (false: side by side). A speed choice:
  // the same bits.
  bool ping_pong = true;
  // The opt-in kernels of attention_k3.cu (default: BITEXACT_ATTENTION_K3=1 in the environment;
  // not yet run on a device): the fields above (decode_path too) take effect only with them.
  bool k3 = attention_k3_enabled();
  // The split size S, a positive multiple of kAttentionChunk. Any value other than
  // kAttentionSplit changes the order (the negative control of the tests; fast mode).
  int split = kAttentionSplit;
  // The mma.sync kernels (prefill tiles, decode) instead of the wgmma one: the same bits (tests,
  // benchmarks). head_dim above 128 has one kernel family (attention_d256.h) and ignores it.
  bool mma_sync = false;
};

// Floats of workspace the split path needs for this plan.
int64_t attention_workspace_floats(const AttentionPlan& plan, int n_heads, int head_dim, int split);

// True when single tokens compute each split in its own job: the workspace holds the partials,
// and decode_path asks for them, or (by_batch) their walking jobs (one per token, KV head and 64
// query heads; mma.sync: 16) would be fewer than the SMs. Measured on the H100: walking is as
// fast or faster from there up.
bool attention_uses_split_partials(const AttentionArgs& args);

// cache slot of position p of token t <- bf16_rne(k[t]), bf16_rne(v[t]); k, v are
// [T, n_kv_heads * head_dim] f32 with row strides.
void kv_cache_write(const PagedKv& kv, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, const DeviceBatch& batch, cudaStream_t stream);

// out[t, h*Dh .. (h+1)*Dh) = attention of q[t, h*Dh ..) over the cache (the contract above).
// Asynchronous on stream. Throws bx::Error for a head_dim over kAttentionWideMaxHeadDim or not a
// multiple of 8, n_heads not a multiple of n_kv_heads, or a split that is not a positive multiple
// of kAttentionChunk.
void attention(const AttentionArgs& args, cudaStream_t stream);
// attention() and attention_uses_split_partials() with args.k3: attention_k3.cu's kernels.
void attention_k3(const AttentionArgs& args, cudaStream_t stream);
bool attention_k3_uses_split_partials(const AttentionArgs& args);

// Fast mode (R8, not invariant): a conventional split size that follows the batch, about two
// blocks per SM over the batch's single tokens (the split count grows as the batch shrinks).
int conventional_split(const AttentionPlan& plan, int n_kv_heads);

}  // namespace bx::cuda
