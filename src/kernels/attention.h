// Causal attention of new tokens over a paged KV cache (f32 on the CPU).
//
// Contract (INVARIANCE.md R4): the keys and values of every token in the batch are written to the
// cache first; attention then reads them back from the cache only. Query token t of a sequence,
// at absolute position p, attends to positions lo..p of its own sequence, lo = 0 (full causal
// attention) or, with a sliding window of W positions, lo = max(0, p - W + 1). Head h reads KV head
// h / (n_heads / n_kv_heads) (GQA). The positions are visited in chunks aligned to absolute
// positions, [c*C, (c+1)*C) with C = kAttentionChunk, combined in position order. A window only
// removes positions (INVARIANCE.md R11): the chunks are the same absolute ones, the first chunk
// visited is the one holding lo, and positions below lo are skipped inside it:
//
//   s_j  = dot(q, k_j) * scale                    canonical dot over head_dim (lanes.h)
//   m_c  = max of s_j over the chunk, j increasing: m_c = -inf, then m_c = s_j if s_j > m_c
//   p_j  = exp_f32(s_j - m_c)
//   l_c  = sum of p_j, j increasing, from +0.0f
//   o_c  = sum of p_j * v_j, j increasing, as o_c[d] = fma(p_j, v_j[d], o_c[d]), from +0.0f
//   M' = (m_c > M ? m_c : M);  a = exp_f32(M - M');  b = exp_f32(m_c - M')
//   L  = L * a + l_c * b;   O[d] = O[d] * a + o_c[d] * b               (products, then add)
//   out[d] = O[d] / L                          (M = -inf, L = +0.0f, O[d] = +0.0f at the start)
//
// Non-finite scores are not special-cased; the formulas decide: a NaN score is skipped by the
// max and then reaches the output through p_j; a score of +inf gives NaN (inf - inf).
//
// So a token's output depends only on its query, its position and the cache contents of its own
// sequence: never on the other tokens in the batch, on whether it is prefilled or decoded, on
// the chunking of the prompt or on the thread count.
#pragma once

#include <cstdint>

namespace bx {

class ThreadPool;

inline constexpr int kAttentionChunk = 64;
inline constexpr int kAttentionMaxHeadDim = 512;  // the largest head_dim accepted

// One layer's cache: k and v are [n_blocks, block_size, n_kv_heads, head_dim].
struct KvLayerView {
  float* k = nullptr;
  float* v = nullptr;
  int64_t n_blocks = 0;
  int block_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

struct AttentionArgs {
  const float* q = nullptr;  // [T, n_heads * head_dim], row stride q_stride
  int64_t q_stride = 0;
  float* out = nullptr;  // [T, n_heads * head_dim], row stride out_stride
  int64_t out_stride = 0;
  const int32_t* positions = nullptr;            // [T] absolute position in its sequence
  const int32_t* const* block_tables = nullptr;  // [T] the block table of each token's sequence
  int64_t T = 0;
  int n_heads = 0;
  float scale = 0.0f;  // usually 1 / sqrt(head_dim)
  int window = 0;      // W > 0: token at p attends to positions (p - W, p]; 0: to 0..p
  KvLayerView kv;
};

// Writes k and v rows [T, n_kv_heads * head_dim] into the cache slots of (block table, position):
// the slot of position p is row p % block_size of block block_table[p / block_size].
// Throws bx::Error for a negative position or a block id outside [0, n_blocks).
void kv_cache_write(const KvLayerView& kv, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, const int32_t* positions, const int32_t* const* block_tables,
                    int64_t T);

// Fast path (threads over tokens x heads; query heads that share a KV head share its row loads)
// and the plain scalar reference of the same contract; both give the same bits. The caller writes
// the batch's k and v first (kv_cache_write), and every block a token reads (positions 0..p) must
// be in its block table. Throws bx::Error if head_dim exceeds kAttentionMaxHeadDim, n_heads is
// not a multiple of n_kv_heads, a position is < 0 or a block id read is outside [0, n_blocks).
void attention(const AttentionArgs& args, ThreadPool& pool);
void attention_reference(const AttentionArgs& args);

}  // namespace bx
