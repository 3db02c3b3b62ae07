// Generated weights on the device (generate.h).
#include "core/counter_hash.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/generate.h"

namespace bx::cuda {
namespace {

// core/half.h f32_to_bf16, for device code: round to nearest even, NaN kept quiet.
__device__ __forceinline__ uint16_t to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

template <typename T>
__global__ void generate_kernel(T* out, int64_t rows, int64_t cols, int64_t stride,
                                uint64_t stream_key, float offset, float scale) {
  const int64_t n = rows * cols;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t r = i / cols, c = i - r * cols;
    const float v = hash_weight(stream_key, static_cast<uint64_t>(i), offset, scale);
    if constexpr (sizeof(T) == 2) {
      out[r * stride + c] = to_bf16(v);
    } else {
      out[r * stride + c] = v;
    }
  }
}

template <typename T>
void generate(T* out, int64_t rows, int64_t cols, int64_t stride, uint64_t stream_key, float offset,
              float scale, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  const int64_t blocks = (n + 255) / 256;
  generate_kernel<T><<<static_cast<unsigned>(blocks < 8192 ? blocks : 8192), 256, 0, stream>>>(
      out, rows, cols, stride, stream_key, offset, scale);
  check_launch("generate_kernel");
}

}  // namespace

void generate_weights_bf16(uint16_t* out, int64_t rows, int64_t cols, int64_t stride,
                           uint64_t stream_key, float offset, float scale, cudaStream_t stream) {
  generate(out, rows, cols, stride, stream_key, offset, scale, stream);
}

void generate_weights_f32(float* out, int64_t rows, int64_t cols, int64_t stride,
                          uint64_t stream_key, float offset, float scale, cudaStream_t stream) {
  generate(out, rows, cols, stride, stream_key, offset, scale, stream);
}

}  // namespace bx::cuda
