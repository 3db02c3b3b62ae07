// Paged attention over the bf16 KV cache (attention.h).
//
// Block (t, h) of kThreads = 128 threads: q in shared memory; per chunk, warp w scores the
// chunk's positions w, w + 4, ... (one warp per dot product), then every thread reads the scores
// from shared memory to form m_c and l_c in position order (each thread computes the same
// values), and thread i accumulates o_c for dims d = i, i + 128, ...
#include <cuda_bf16.h>

#include <cmath>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_check.h"

namespace bx::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kDimsPerThread = kAttentionMaxHeadDim / kThreads;

__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}

__device__ __forceinline__ int64_t slot_offset(const PagedKv& kv, const int32_t* table, int64_t pos,
                                               int g) {
  const int64_t block = table[pos / kv.block_size];
  const int64_t row = block * kv.block_size + pos % kv.block_size;
  return (row * kv.n_kv_heads + g) * kv.head_dim;
}

__global__ void kv_write_kernel(PagedKv kv, const float* k, int64_t k_stride, const float* v,
                                int64_t v_stride, DeviceBatch batch) {
  const int64_t t = blockIdx.x;
  const int32_t* table = batch.tables + batch.table_offsets[t];
  const int64_t pos = batch.positions[t];
  const int width = kv.n_kv_heads * kv.head_dim;
  const int64_t base = slot_offset(kv, table, pos, 0);
  for (int i = static_cast<int>(threadIdx.x); i < width; i += blockDim.x) {
    kv.k[base + i] = __bfloat16_as_ushort(__float2bfloat16_rn(k[t * k_stride + i]));
    kv.v[base + i] = __bfloat16_as_ushort(__float2bfloat16_rn(v[t * v_stride + i]));
  }
}

__global__ void __launch_bounds__(kThreads)
    attention_kernel(const float* q, int64_t q_stride, float* out, int64_t out_stride, int n_heads,
                     float scale, PagedKv kv, DeviceBatch batch, int chunk) {
  __shared__ float q_s[kAttentionMaxHeadDim];
  __shared__ float score[kAttentionChunk];
  const int64_t t = blockIdx.x;
  const int h = static_cast<int>(blockIdx.y);
  const int g = h / (n_heads / kv.n_kv_heads);
  const int Dh = kv.head_dim;
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int32_t* table = batch.tables + batch.table_offsets[t];
  const int64_t pos = batch.positions[t];
  for (int d = tid; d < Dh; d += kThreads) q_s[d] = q[t * q_stride + h * Dh + d];

  float M = -INFINITY, L = 0.0f;
  float O[kDimsPerThread];
#pragma unroll
  for (int i = 0; i < kDimsPerThread; ++i) O[i] = 0.0f;
  __syncthreads();

  for (int64_t c0 = 0; c0 <= pos; c0 += chunk) {
    const int n = static_cast<int>(pos + 1 - c0 < chunk ? pos + 1 - c0 : chunk);
    for (int j = warp; j < n; j += kWarps) {
      const uint16_t* key = kv.k + slot_offset(kv, table, c0 + j, g);
      float acc = 0.0f;
      for (int d = lane; d < Dh; d += 32) acc = fmaf(q_s[d], bf16_bits_to_float(key[d]), acc);
#pragma unroll
      for (int o = 16; o >= 1; o /= 2) acc = acc + __shfl_xor_sync(0xffffffffu, acc, o);
      if (lane == 0) score[j] = acc * scale;
    }
    __syncthreads();
    float m_c = -INFINITY;
    for (int j = 0; j < n; ++j) {
      if (score[j] > m_c) m_c = score[j];
    }
    float l_c = 0.0f;
    for (int j = 0; j < n; ++j) l_c = l_c + expf(score[j] - m_c);
    float o_c[kDimsPerThread];
#pragma unroll
    for (int i = 0; i < kDimsPerThread; ++i) o_c[i] = 0.0f;
    for (int j = 0; j < n; ++j) {
      const float p = expf(score[j] - m_c);
      const uint16_t* value = kv.v + slot_offset(kv, table, c0 + j, g);
#pragma unroll
      for (int i = 0; i < kDimsPerThread; ++i) {
        const int d = tid + i * kThreads;
        if (d < Dh) o_c[i] = fmaf(p, bf16_bits_to_float(value[d]), o_c[i]);
      }
    }
    const float M_new = m_c > M ? m_c : M;
    const float a = expf(M - M_new), b = expf(m_c - M_new);
    L = L * a + l_c * b;
#pragma unroll
    for (int i = 0; i < kDimsPerThread; ++i) O[i] = O[i] * a + o_c[i] * b;
    M = M_new;
    __syncthreads();  // the scores are overwritten by the next chunk
  }
#pragma unroll
  for (int i = 0; i < kDimsPerThread; ++i) {
    const int d = tid + i * kThreads;
    if (d < Dh) out[t * out_stride + h * Dh + d] = O[i] / L;
  }
}

void check_kv(const PagedKv& kv) {
  BX_CHECK(kv.k != nullptr && kv.v != nullptr, "cuda attention: the KV cache is not initialised");
  BX_CHECK(kv.head_dim > 0 && kv.head_dim <= kAttentionMaxHeadDim,
           "cuda attention: head_dim " + std::to_string(kv.head_dim) + " must be in [1, " +
               std::to_string(kAttentionMaxHeadDim) + "]");
}

}  // namespace

void kv_cache_write(const PagedKv& kv, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, const DeviceBatch& batch, cudaStream_t stream) {
  check_kv(kv);
  if (batch.T == 0) return;
  kv_write_kernel<<<static_cast<unsigned>(batch.T), 128, 0, stream>>>(kv, k, k_stride, v, v_stride,
                                                                      batch);
  check_launch("kv_write_kernel");
}

void attention(const float* q, int64_t q_stride, float* out, int64_t out_stride, int n_heads,
               float scale, const PagedKv& kv, const DeviceBatch& batch, cudaStream_t stream,
               int chunk) {
  check_kv(kv);
  BX_CHECK(chunk >= 1 && chunk <= kAttentionChunk,
           "cuda attention: chunk " + std::to_string(chunk) + " outside [1, 64]");
  BX_CHECK(n_heads > 0 && n_heads % kv.n_kv_heads == 0,
           "cuda attention: n_heads " + std::to_string(n_heads) +
               " must be a positive multiple of n_kv_heads " + std::to_string(kv.n_kv_heads));
  BX_CHECK(n_heads <= 65535, "cuda attention: too many heads");
  if (batch.T == 0) return;
  const dim3 grid(static_cast<unsigned>(batch.T), static_cast<unsigned>(n_heads));
  attention_kernel<<<grid, kThreads, 0, stream>>>(q, q_stride, out, out_stride, n_heads, scale, kv,
                                                  batch, chunk);
  check_launch("attention_kernel");
}

}  // namespace bx::cuda
