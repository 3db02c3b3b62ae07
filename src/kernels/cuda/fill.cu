// Device-side uniform fill (fill.h).
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"

namespace bx::cuda {
namespace {

__device__ __forceinline__ uint32_t mix(uint32_t h) {  // a 32-bit avalanche (murmur3 finaliser)
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

__device__ __forceinline__ float uniform(uint32_t seed, int64_t i, float lo, float hi) {
  const uint64_t u = static_cast<uint64_t>(i);
  const uint32_t h = mix(mix(static_cast<uint32_t>(u) ^ seed) ^ static_cast<uint32_t>(u >> 32));
  const float t = static_cast<float>(h >> 8) * (1.0f / 16777216.0f);  // [0, 1)
  return lo + (hi - lo) * t;
}

template <typename T>
__global__ void fill_kernel(T* out, int64_t n, uint32_t seed, float lo, float hi) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float v = uniform(seed, i, lo, hi);
    if constexpr (sizeof(T) == 2) {
      out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
    } else {
      out[i] = v;
    }
  }
}

template <typename T>
void fill(T* out, int64_t n, uint32_t seed, float lo, float hi, cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = (n + 255) / 256;
  fill_kernel<T><<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), 256, 0, stream>>>(
      out, n, seed, lo, hi);
  check_launch("fill_kernel");
}

}  // namespace

void fill_uniform_bf16(uint16_t* out, int64_t n, uint32_t seed, float lo, float hi,
                       cudaStream_t stream) {
  fill(out, n, seed, lo, hi, stream);
}
void fill_uniform_f32(float* out, int64_t n, uint32_t seed, float lo, float hi,
                      cudaStream_t stream) {
  fill(out, n, seed, lo, hi, stream);
}

}  // namespace bx::cuda
