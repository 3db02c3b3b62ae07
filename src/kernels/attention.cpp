#include "kernels/attention.h"

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

void check_args(const AttentionArgs& args) {
  const KvLayerView& kv = args.kv;
  check(kv.head_dim > 0 && kv.head_dim <= kAttentionMaxHeadDim,
        "attention head_dim " + std::to_string(kv.head_dim) + " is out of range: expected 1 to " +
            std::to_string(kAttentionMaxHeadDim));
  check(kv.block_size > 0, "attention block_size " + std::to_string(kv.block_size) +
                               " is invalid: expected > 0");
  check(kv.n_kv_heads > 0 && args.n_heads > 0 && args.n_heads % kv.n_kv_heads == 0,
        "attention n_heads " + std::to_string(args.n_heads) + " is not a multiple of n_kv_heads " +
            std::to_string(kv.n_kv_heads));
  for (int64_t t = 0; t < args.T; ++t) {
    check(args.positions[t] >= 0, "attention position " + std::to_string(args.positions[t]) +
                                      " of token " + std::to_string(t) + " is negative");
  }
}

// o[i] = fma(p, v[i], o[i]). Compiled with the FMA instruction where the CPU has it, else with
// the C library's fmaf; one correctly rounded operation per element either way, so same bits.
__attribute__((target_clones("fma", "default"))) void fma_accumulate(float p, const float* v,
                                                                      float* o, int n) {
  for (int i = 0; i < n; ++i) o[i] = std::fma(p, v[i], o[i]);
}

// One query head at absolute position p over cache positions 0..p, in absolute chunks.
void attend_head(const float* q, int64_t p, const int32_t* bt, int kv_head, float scale,
                 const KvLayerView& kv, float* out) {
  const int hd = kv.head_dim;
  float scores[kAttentionChunk];
  float o_chunk[kAttentionMaxHeadDim];
  float o_run[kAttentionMaxHeadDim];
  std::fill(o_run, o_run + hd, 0.0f);
  float m_run = kNegInf;
  float l_run = 0.0f;
  const int64_t head_offset = static_cast<int64_t>(kv_head) * hd;
  for (int64_t j0 = 0; j0 <= p; j0 += kAttentionChunk) {
    const int64_t j1 = std::min<int64_t>(j0 + kAttentionChunk, p + 1);
    // s_j = dot(q, k_j) * scale;  m_c = max s_j
    float m_chunk = kNegInf;
    for (int64_t j = j0; j < j1; ++j) {
      const float s = dot(q, kv.k + slot_offset(kv, bt, j) + head_offset, hd) * scale;
      scores[j - j0] = s;
      if (s > m_chunk) m_chunk = s;
    }
    // p_j = exp(s_j - m_c);  l_c = sum p_j;  o_c = sum p_j v_j
    float l_chunk = 0.0f;
    std::fill(o_chunk, o_chunk + hd, 0.0f);
    for (int64_t j = j0; j < j1; ++j) {
      const float pj = exp_f32(scores[j - j0] - m_chunk);
      l_chunk = l_chunk + pj;
      fma_accumulate(pj, kv.v + slot_offset(kv, bt, j) + head_offset, o_chunk, hd);
    }
    // Merge the chunk into the running (M, L, O).
    const float m_new = m_chunk > m_run ? m_chunk : m_run;
    const float a = exp_f32(m_run - m_new);
    const float b = exp_f32(m_chunk - m_new);
    l_run = l_run * a + l_chunk * b;
    for (int d = 0; d < hd; ++d) o_run[d] = o_run[d] * a + o_chunk[d] * b;
    m_run = m_new;
  }
  for (int d = 0; d < hd; ++d) out[d] = o_run[d] / l_run;
}

}  // namespace

void kv_cache_write(const KvLayerView& kv, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, const int32_t* positions,
                    const int32_t* const* block_tables, int64_t T) {
  check(kv.block_size > 0, "kv cache block_size " + std::to_string(kv.block_size) +
                               " is invalid: expected > 0");
  const int64_t row_len = static_cast<int64_t>(kv.n_kv_heads) * kv.head_dim;
  const size_t row_bytes = static_cast<size_t>(row_len) * sizeof(float);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t p = positions[t];
    check(p >= 0, "kv cache position " + std::to_string(p) + " of token " + std::to_string(t) +
                      " is negative");
    const int64_t block = block_tables[t][p / kv.block_size];
    check(block >= 0 && block < kv.n_blocks,
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
  pool.parallel_for(args.T * args.n_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / args.n_heads;
      const int h = static_cast<int>(job % args.n_heads);
      attend_head(args.q + t * args.q_stride + static_cast<int64_t>(h) * hd, args.positions[t],
                  args.block_tables[t], h / group, args.scale, args.kv,
                  args.out + t * args.out_stride + static_cast<int64_t>(h) * hd);
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
    const int32_t* bt = args.block_tables[t];
    for (int h = 0; h < args.n_heads; ++h) {
      const float* q = args.q + t * args.q_stride + h * hd;
      const int kvh = h / group;
      float M = kNegInf;
      float L = 0.0f;
      for (int d = 0; d < hd; ++d) O[d] = 0.0f;
      for (int64_t c = 0; c * C <= p; ++c) {
        const int64_t first = c * C;
        const int64_t last = std::min(first + C - 1, p);
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
