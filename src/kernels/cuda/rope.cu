// RoPE (rope.h): one block per token, one thread per (head, pair); the fused per-head RMSNorm +
// RoPE: one warp per (token, head), 8 a block.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/rope.h"

namespace bx::cuda {
namespace {

__global__ void rope_kernel(float* x, int64_t x_stride, const int32_t* positions, int n_heads,
                            RopeDeviceTable table) {
  const int half = table.head_dim / 2;
  const int64_t t = blockIdx.x;
  const int64_t p = positions[t];
  float* row = x + t * x_stride;
  for (int j = static_cast<int>(threadIdx.x); j < n_heads * half; j += blockDim.x) {
    const int h = j / half, i = j % half;
    float* head = row + static_cast<int64_t>(h) * table.head_dim;
    const int d0 = table.layout == RopeLayout::adjacent_pairs ? 2 * i : i;
    const int d1 = table.layout == RopeLayout::adjacent_pairs ? 2 * i + 1 : i + half;
    const float c = table.cos[p * half + i], s = table.sin[p * half + i];
    const float x0 = head[d0], x1 = head[d1];
    head[d0] = x0 * c - x1 * s;
    head[d1] = x0 * s + x1 * c;
  }
}

// Warp w of block b takes unit u = 8 b + w: token t = u / (n_heads + n_kv_heads), head j of the
// token's q heads then k heads. Lane l holds elements e = 32 c + l, c < kSlots = head_dim / 32.
template <int kSlots>
__global__ void __launch_bounds__(256)
    qk_norm_rope_kernel(QkNormRopeArgs a, const int32_t* positions, int64_t units,
                        RopeDeviceTable table) {
  const int64_t u = static_cast<int64_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (u >= units) return;  // a whole warp leaves; no barrier below
  const int heads = a.n_heads + a.n_kv_heads;
  const int64_t t = u / heads;
  const int j = static_cast<int>(u % heads);
  const bool is_q = j < a.n_heads;
  float* head = is_q ? a.q + t * a.q_stride + static_cast<int64_t>(j) * table.head_dim
                     : a.k + t * a.k_stride + static_cast<int64_t>(j - a.n_heads) * table.head_dim;
  const float* w = is_q ? a.q_norm : a.k_norm;
  const int lane = static_cast<int>(threadIdx.x & 31), D = table.head_dim;
  float v[kSlots];  // D = 32 kSlots
#pragma unroll
  for (int c = 0; c < kSlots; ++c) v[c] = head[32 * c + lane];
  if (w != nullptr) {
    // rows.h's order for a row of D <= 256: thread e accumulates element e alone; warp c of the
    // 256 butterflies; the 8 warp sums (those past D are +0) add left to right.
    float total = 0.0f;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      float acc = 0.0f;
      if (c < kSlots) acc = fmaf(v[c % kSlots], v[c % kSlots], acc);
#pragma unroll
      for (int o = 16; o >= 1; o /= 2) acc = acc + __shfl_xor_sync(0xffffffffu, acc, o);
      total = c == 0 ? acc : total + acc;
    }
    const float r = 1.0f / sqrtf(total / static_cast<float>(D) + a.eps);
#pragma unroll
    for (int c = 0; c < kSlots; ++c) v[c] = (v[c] * r) * w[32 * c + lane];
  }
  const int half = D / 2;
  const int64_t p = positions[t];
  if (table.layout == RopeLayout::half_split) {  // pairs (e, e + half): slots c and c + half / 32
#pragma unroll
    for (int c = 0; c < kSlots / 2; ++c) {
      const int i = 32 * c + lane;
      const float cs = table.cos[p * half + i], sn = table.sin[p * half + i];
      const float x0 = v[c], x1 = v[c + kSlots / 2];
      head[i] = x0 * cs - x1 * sn;
      head[i + half] = x0 * sn + x1 * cs;
    }
  } else {  // pairs (2i, 2i + 1): lanes l and l ^ 1 of one slot
#pragma unroll
    for (int c = 0; c < kSlots; ++c) {
      const int e = 32 * c + lane, i = e / 2;
      const float other = __shfl_xor_sync(0xffffffffu, v[c], 1);
      const float cs = table.cos[p * half + i], sn = table.sin[p * half + i];
      const float x0 = (lane & 1) ? other : v[c], x1 = (lane & 1) ? v[c] : other;
      head[e] = (lane & 1) ? x0 * sn + x1 * cs : x0 * cs - x1 * sn;
    }
  }
}

}  // namespace

void rope_inplace(float* x, int64_t x_stride, const int32_t* positions, int64_t T, int n_heads,
                  const RopeDeviceTable& table, cudaStream_t stream) {
  BX_CHECK(T >= 0 && n_heads > 0, "rope: T must be >= 0 and n_heads > 0");
  BX_CHECK(table.head_dim > 0 && table.head_dim % 2 == 0 && table.cos != nullptr,
           "rope: the table is not set (head_dim " + std::to_string(table.head_dim) + ")");
  if (T == 0) return;
  const int pairs = n_heads * table.head_dim / 2;
  const int threads = pairs < 256 ? (pairs + 31) / 32 * 32 : 256;
  rope_kernel<<<static_cast<unsigned>(T), static_cast<unsigned>(threads), 0, stream>>>(
      x, x_stride, positions, n_heads, table);
  check_launch("rope_kernel");
}

bool qk_norm_rope_fusable(const RopeDeviceTable& table) {
  const int D = table.head_dim;
  if (D != 32 && D != 64 && D != 128 && D != 256) return false;
  return table.layout == RopeLayout::adjacent_pairs || D >= 64;
}

void qk_norm_rope_inplace(const QkNormRopeArgs& args, const int32_t* positions, int64_t T,
                          const RopeDeviceTable& table, cudaStream_t stream) {
  BX_CHECK(T >= 0 && args.n_heads > 0 && args.n_kv_heads > 0,
           "qk_norm_rope: T must be >= 0 and both head counts > 0");
  BX_CHECK(table.cos != nullptr && qk_norm_rope_fusable(table),
           "qk_norm_rope: head_dim " + std::to_string(table.head_dim) +
               " must be 32, 64, 128 or 256 (not 32 for half_split), with the table set");
  if (T == 0) return;
  const int64_t units = T * (args.n_heads + args.n_kv_heads);
  const auto blocks = static_cast<unsigned>((units + 7) / 8);
  switch (table.head_dim / 32) {
    case 1:
      qk_norm_rope_kernel<1><<<blocks, 256, 0, stream>>>(args, positions, units, table);
      break;
    case 2:
      qk_norm_rope_kernel<2><<<blocks, 256, 0, stream>>>(args, positions, units, table);
      break;
    case 4:
      qk_norm_rope_kernel<4><<<blocks, 256, 0, stream>>>(args, positions, units, table);
      break;
    default:
      qk_norm_rope_kernel<8><<<blocks, 256, 0, stream>>>(args, positions, units, table);
  }
  check_launch("qk_norm_rope_kernel");
}

}  // namespace bx::cuda
