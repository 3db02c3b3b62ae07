// Causal attention over a paged bf16 KV cache on the GPU: the contract of kernels/attention.h
// (R4), with K and V stored as bf16 and the GPU's expf.
//
// K and V of every token in the batch are written to the cache first (rounded to bf16), and
// attention reads them back from the cache only, so prefill, chunked prefill and decode see the
// same values. Query token t at position p, head h, attends to positions 0..p of its own
// sequence through KV head g = h / (n_heads / n_kv_heads). Positions are visited in chunks
// aligned to absolute positions, [c*C, (c+1)*C) with C = kAttentionChunk = 64 (the CPU's),
// combined in position order:
//
//   s_j = dot(q, k_j) * scale        dot: lane l of a warp sums d = l, l+32, ... with fmaf in
//                                    increasing d, then the butterfly of rows.h (16, 8, 4, 2, 1)
//   m_c = max_j s_j;  p_j = expf(s_j - m_c);  l_c = sum_j p_j (j increasing, from +0.0f)
//   o_c[d] = sum_j p_j * v_j[d], j increasing, o = fmaf(p_j, v_j[d], o), from +0.0f
//   M' = max(M, m_c); a = expf(M - M'); b = expf(m_c - M')
//   L = L * a + l_c * b;  O[d] = O[d] * a + o_c[d] * b       (products, then add)
//   out[d] = O[d] / L                                        (M = -inf, L = O = +0.0f first)
//
// One block per (token, query head) walks the chunks in order; every query is computed the same
// way whether it arrives in a prefill, a chunk of one, or a decode step, alone or in a batch.
// (The decode split over KV is one split of the whole sequence for now; a fixed split size
// combined in position order, shared with prefill, is the next step for long contexts.)
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

inline constexpr int kAttentionChunk = 64;
inline constexpr int kAttentionMaxHeadDim = 256;

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
// be in [0, n_blocks) (the caller checks when it builds the tables).
struct DeviceBatch {
  const int32_t* positions = nullptr;      // [T]
  const int32_t* table_offsets = nullptr;  // [T]
  const int32_t* tables = nullptr;         // flat block ids
  int64_t T = 0;
};

// cache slot of position p of token t <- bf16_rne(k[t]), bf16_rne(v[t]); k, v are
// [T, n_kv_heads * head_dim] f32 with row strides.
void kv_cache_write(const PagedKv& kv, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, const DeviceBatch& batch, cudaStream_t stream);

// out[t, h*Dh .. (h+1)*Dh) = attention of q[t, h*Dh ..) over the cache (the contract above).
// chunk other than kAttentionChunk (any value in [1, 64]) changes the order: the negative
// control of the tests, never used by the backend.
void attention(const float* q, int64_t q_stride, float* out, int64_t out_stride, int n_heads,
               float scale, const PagedKv& kv, const DeviceBatch& batch, cudaStream_t stream,
               int chunk = kAttentionChunk);

}  // namespace bx::cuda
