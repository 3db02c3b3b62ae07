#include "kernels/attention.h"

#include "core/fma_clones.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/lanes.h"
#include "kernels/math.h"
#include "kernels/matmul.h"

namespace bx {
namespace {

constexpr float kNegInf = -INFINITY;

// Offset of the cache row of (block table bt, position p): [block, row, kv head, head_dim].
int64_t slot_offset(const KvLayerView& kv, const int32_t* bt, int64_t p) {
  const int64_t block = bt[p / kv.block_size];
  const int64_t row = p % kv.block_size;
  return (block * kv.block_size + row) * kv.n_kv_heads * kv.head_dim;
}

// The first position a token at p attends to (attention.h): 0, or the window's start.
int64_t first_visible(int64_t p, int window) {
  return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
}

void check_args(const AttentionArgs& args) {
  const KvLayerView& kv = args.kv;
  BX_CHECK(args.window >= 0, "attention window " + std::to_string(args.window) +
                                 " is negative: expected 0 (none) or a window size");
  BX_CHECK(kv.head_dim > 0 && kv.head_dim <= kAttentionMaxHeadDim,
        "attention head_dim " + std::to_string(kv.head_dim) + " is out of range: expected 1 to " +
            std::to_string(kAttentionMaxHeadDim));
  BX_CHECK(kv.block_size > 0,
        "attention block_size " + std::to_string(kv.block_size) + " is invalid: expected > 0");
  BX_CHECK(kv.n_kv_heads > 0 && args.n_heads > 0 && args.n_heads % kv.n_kv_heads == 0,
        "attention n_heads " + std::to_string(args.n_heads) + " is not a multiple of n_kv_heads " +
            std::to_string(kv.n_kv_heads));
  for (int64_t t = 0; t < args.T; ++t) {
    const int64_t p = args.positions[t];
    BX_CHECK(p >= 0, "attention position " + std::to_string(p) + " of token " + std::to_string(t) +
                      " is negative");
    // Every block the token reads must be a block of the cache (cheap next to the attention).
    for (int64_t b = first_visible(p, args.window) / kv.block_size; b <= p / kv.block_size; ++b) {
      const int32_t id = args.block_tables[t][b];
      BX_CHECK(id >= 0 && id < kv.n_blocks,
            "attention block table entry " + std::to_string(b) + " of token " + std::to_string(t) +
                " is " + std::to_string(id) + ": expected 0 to " + std::to_string(kv.n_blocks - 1));
    }
  }
}

// o[i] = fma(p, v[i], o[i]). Compiled with the FMA instruction where the CPU has it, else with
// the C library's fmaf; one correctly rounded operation per element either way, so same bits.
BX_FMA_CLONES void fma_accumulate(float p, const float* v,
                                                                     float* o, int n) {
  for (int i = 0; i < n; ++i) o[i] = std::fma(p, v[i], o[i]);
}

// Cache rows of one KV head are n_kv_heads * head_dim floats apart, too far for the hardware
// prefetcher to follow; ask for the row a few positions ahead (a hint: no effect on results).
constexpr int kPrefetchRows = 4;
void prefetch_row(const float* row, int n) {
  for (int i = 0; i < n; i += 16) __builtin_prefetch(row + i);
}

// Per-worker scratch for attend_heads, kept across calls (sized on first use).
struct HeadScratch {
  std::vector<float> scores;                          // [heads, C]
  std::vector<float> o_chunk, o_run;                  // [heads, head_dim]
  std::vector<float> m_chunk, l_chunk, m_run, l_run;  // [heads]
};

// Query heads [0, n_q) of one token at absolute position p, all reading KV head kv_head, over
// cache positions lo..p (lo = first_visible(p, window)) in absolute chunks. q [n_q, head_dim] ->
// out [n_q, head_dim]. The heads share each K/V row load; each head keeps its own accumulators, in
// the contract's order.
void attend_heads(const float* q, int n_q, int64_t p, int window, const int32_t* bt, int kv_head,
                  float scale, const KvLayerView& kv, float* out, HeadScratch& s) {
  constexpr int C = kAttentionChunk;
  const int hd = kv.head_dim;
  const size_t n = static_cast<size_t>(n_q);
  s.scores.resize(n * C);
  s.o_chunk.resize(n * static_cast<size_t>(hd));
  s.o_run.assign(n * static_cast<size_t>(hd), 0.0f);
  s.m_chunk.resize(n);
  s.l_chunk.resize(n);
  s.m_run.assign(n, kNegInf);
  s.l_run.assign(n, 0.0f);
  const float* k_rows[C];
  const float* v_rows[C];
  const int64_t head_offset = static_cast<int64_t>(kv_head) * hd;
  const int64_t lo = first_visible(p, window);
  // Chunk [c0, c0 + C) visits positions j0 = max(c0, lo) .. min(c0 + C - 1, p).
  for (int64_t c0 = lo / C * C; c0 <= p; c0 += C) {
    const int64_t j0 = std::max(c0, lo);
    const int len = static_cast<int>(std::min<int64_t>(c0 + C, p + 1) - j0);
    for (int jj = 0; jj < len; ++jj) {
      const int64_t at = slot_offset(kv, bt, j0 + jj) + head_offset;
      k_rows[jj] = kv.k + at;
      v_rows[jj] = kv.v + at;
    }
    // s_j = dot(q, k_j) * scale;  m_c = max s_j
    std::fill(s.m_chunk.begin(), s.m_chunk.end(), kNegInf);
    for (int jj = 0; jj < len; ++jj) {
      if (jj + kPrefetchRows < len) prefetch_row(k_rows[jj + kPrefetchRows], hd);
      for (int g = 0; g < n_q; ++g) {
        const float sj = dot(q + g * hd, k_rows[jj], hd) * scale;
        s.scores[static_cast<size_t>(g * C + jj)] = sj;
        if (sj > s.m_chunk[g]) s.m_chunk[g] = sj;
      }
    }
    // p_j = exp(s_j - m_c);  l_c = sum p_j;  o_c = sum p_j v_j   (j increasing)
    std::fill(s.l_chunk.begin(), s.l_chunk.end(), 0.0f);
    std::fill(s.o_chunk.begin(), s.o_chunk.end(), 0.0f);
    for (int jj = 0; jj < len; ++jj) {
      if (jj + kPrefetchRows < len) prefetch_row(v_rows[jj + kPrefetchRows], hd);
      for (int g = 0; g < n_q; ++g) {
        const float pj = exp_f32(s.scores[static_cast<size_t>(g * C + jj)] - s.m_chunk[g]);
        s.l_chunk[g] = s.l_chunk[g] + pj;
        fma_accumulate(pj, v_rows[jj], s.o_chunk.data() + g * hd, hd);
      }
    }
    // Merge each head's chunk into its running (M, L, O).
    for (int g = 0; g < n_q; ++g) {
      const float m_new = s.m_chunk[g] > s.m_run[g] ? s.m_chunk[g] : s.m_run[g];
      const float a = exp_f32(s.m_run[g] - m_new);
      const float b = exp_f32(s.m_chunk[g] - m_new);
      s.l_run[g] = s.l_run[g] * a + s.l_chunk[g] * b;
      float* o_run = s.o_run.data() + g * hd;
      const float* o_chunk = s.o_chunk.data() + g * hd;
      for (int d = 0; d < hd; ++d) o_run[d] = o_run[d] * a + o_chunk[d] * b;
      s.m_run[g] = m_new;
    }
  }
  for (int g = 0; g < n_q; ++g) {
    const float* o_run = s.o_run.data() + g * hd;
    for (int d = 0; d < hd; ++d) out[g * hd + d] = o_run[d] / s.l_run[g];
  }
}

}  // namespace

void kv_cache_write(const KvLayerView& kv, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, const int32_t* positions, const int32_t* const* block_tables,
                    int64_t T) {
  BX_CHECK(kv.block_size > 0,
        "kv cache block_size " + std::to_string(kv.block_size) + " is invalid: expected > 0");
  const int64_t row_len = static_cast<int64_t>(kv.n_kv_heads) * kv.head_dim;
  const size_t row_bytes = static_cast<size_t>(row_len) * sizeof(float);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t p = positions[t];
    BX_CHECK(p >= 0, "kv cache position " + std::to_string(p) + " of token " + std::to_string(t) +
                      " is negative");
    const int64_t block = block_tables[t][p / kv.block_size];
    BX_CHECK(block >= 0 && block < kv.n_blocks,
          "kv cache block id " + std::to_string(block) + " for position " + std::to_string(p) +
              " is out of range: expected 0 to " + std::to_string(kv.n_blocks - 1));
    const int64_t at = slot_offset(kv, block_tables[t], p);
    std::memcpy(kv.k + at, k + t * k_stride, row_bytes);
    std::memcpy(kv.v + at, v + t * v_stride, row_bytes);
  }
}

void attention(const AttentionArgs& args, ThreadPool& pool) {
  check_args(args);
  const int group = args.n_heads / args.kv.n_kv_heads;
  const int hd = args.kv.head_dim;
  // A job is (token, a run of query heads that share a KV head). Smaller runs only when there are
  // too few jobs for the threads; the grouping never changes any head's arithmetic.
  int heads_per_job = group;
  while (heads_per_job % 2 == 0 && args.T * (args.n_heads / heads_per_job) < 2 * pool.size()) {
    heads_per_job /= 2;
  }
  const int jobs_per_token = args.n_heads / heads_per_job;
  pool.parallel_for(args.T * jobs_per_token, 1, [&](int64_t begin, int64_t end) {
    thread_local HeadScratch scratch;
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / jobs_per_token;
      const int h0 = static_cast<int>(job % jobs_per_token) * heads_per_job;
      attend_heads(args.q + t * args.q_stride + static_cast<int64_t>(h0) * hd, heads_per_job,
                   args.positions[t], args.window, args.block_tables[t], h0 / group, args.scale,
                   args.kv, args.out + t * args.out_stride + static_cast<int64_t>(h0) * hd,
                   scratch);
    }
  });
}

// The contract of attention.h written out plainly: one token, one head, one position at a time.
void attention_reference(const AttentionArgs& args) {
  check_args(args);
  const KvLayerView& kv = args.kv;
  const int hd = kv.head_dim;
  const int group = args.n_heads / kv.n_kv_heads;
  const int64_t C = kAttentionChunk;
  std::vector<float> s(static_cast<size_t>(C));
  std::vector<float> o_c(static_cast<size_t>(hd));
  std::vector<float> O(static_cast<size_t>(hd));
  for (int64_t t = 0; t < args.T; ++t) {
    const int64_t p = args.positions[t];
    const int64_t lo = first_visible(p, args.window);
    const int32_t* bt = args.block_tables[t];
    for (int h = 0; h < args.n_heads; ++h) {
      const float* q = args.q + t * args.q_stride + h * hd;
      const int kvh = h / group;
      float M = kNegInf;
      float L = 0.0f;
      for (int d = 0; d < hd; ++d) O[d] = 0.0f;
      for (int64_t c = lo / C; c * C <= p; ++c) {
        const int64_t first = std::max(c * C, lo);
        const int64_t last = std::min(c * C + C - 1, p);
        float m_c = kNegInf;
        for (int64_t j = first; j <= last; ++j) {
          const float* k = kv.k + slot_offset(kv, bt, j) + kvh * hd;
          s[j - first] = lanes::dot_reference(q, k, hd) * args.scale;
          if (s[j - first] > m_c) m_c = s[j - first];
        }
        float l_c = 0.0f;
        for (int d = 0; d < hd; ++d) o_c[d] = 0.0f;
        for (int64_t j = first; j <= last; ++j) {
          const float* v = kv.v + slot_offset(kv, bt, j) + kvh * hd;
          const float pj = exp_f32(s[j - first] - m_c);
          l_c = l_c + pj;
          for (int d = 0; d < hd; ++d) o_c[d] = std::fma(pj, v[d], o_c[d]);
        }
        const float M_new = m_c > M ? m_c : M;
        const float a = exp_f32(M - M_new);
        const float b = exp_f32(m_c - M_new);
        L = L * a + l_c * b;
        for (int d = 0; d < hd; ++d) O[d] = O[d] * a + o_c[d] * b;
        M = M_new;
      }
      float* out = args.out + t * args.out_stride + h * hd;
      for (int d = 0; d < hd; ++d) out[d] = O[d] / L;
    }
  }
}

}  // namespace bx
