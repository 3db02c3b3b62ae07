// RoPE (rope.h): one block per token, one thread per (head, pair).
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

}  // namespace bx::cuda
