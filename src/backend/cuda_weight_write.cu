// CudaBackend's weight updates in place: rows written into the BF16 matrices (stride padded to 8,
// padding left zero) and F32 vectors, from host or device memory. A device source never visits
// the host: the conversion runs on the device, with the bits of core/half.h's f32_to_bf16.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda_backend.h"
#include "core/error.h"
#include "kernels/cuda/cuda_check.h"

namespace bx {
namespace {

// f32 -> bf16, round to nearest even; NaN stays a quiet NaN (as core/half.h f32_to_bf16).
__device__ uint16_t to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// dst row (first + k * step), column c <- src[k * cols + c], converted to the dst dtype.
template <typename Src, typename Dst>
__global__ void write_rows_kernel(Dst* dst, int64_t dst_stride, int64_t first, int64_t step,
                                  const Src* src, int64_t count, int64_t cols) {
  const int64_t n = count * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t k = i / cols, c = i % cols;
    const Src v = src[i];
    Dst* out = dst + (first + k * step) * dst_stride + c;
    if constexpr (sizeof(Src) == sizeof(Dst)) {
      *out = v;
    } else if constexpr (sizeof(Dst) == 4) {  // bf16 -> f32, exact
      *out = __uint_as_float(uint32_t{v} << 16);
    } else {  // f32 -> bf16
      *out = to_bf16(v);
    }
  }
}

template <typename Src, typename Dst>
void launch(Dst* dst, int64_t dst_stride, int64_t first, int64_t step, const void* src,
            int64_t count, int64_t cols, cudaStream_t stream) {
  const int64_t n = count * cols;
  if (n == 0) return;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 65535);
  write_rows_kernel<Src, Dst><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
      dst, dst_stride, first, step, static_cast<const Src*>(src), count, cols);
  cuda::check_launch("write_rows_kernel");
}

}  // namespace

void CudaBackend::write_rows(Tensor dst, int64_t dst_first, int64_t dst_step, int64_t count,
                             const void* src, DType src_dtype, bool src_on_device) {
  BX_CHECK(dst.dtype == DType::f32 || dst.dtype == DType::bf16,
           "cuda backend: write_rows writes F32 or BF16 tensors");
  BX_CHECK(src_dtype == DType::f32 || src_dtype == DType::bf16,
           "cuda backend: write_rows reads F32 or BF16");
  BX_CHECK(dst_first >= 0 && dst_step >= 1 && count >= 0 &&
               (count == 0 || dst_first + (count - 1) * dst_step < dst.rows),
           "cuda backend: write_rows outside the tensor");
  auto stream = static_cast<cudaStream_t>(stream_handle());
  const size_t src_element = src_dtype == DType::f32 ? 4 : 2;
  const size_t bytes = static_cast<size_t>(count * dst.cols) * src_element;
  // A host source is copied to the device once, as it is; the conversion runs there.
  cuda::DeviceBuffer staged(src_on_device ? 0 : bytes);
  const void* device_src = src;
  if (!src_on_device && bytes > 0) {
    cuda::check_cuda(cudaMemcpyAsync(staged.get(), src, bytes, cudaMemcpyHostToDevice, stream),
                     "cudaMemcpyAsync (write_rows)");
    device_src = staged.get();
  }
  if (dst.dtype == DType::bf16) {
    auto* out = static_cast<uint16_t*>(dst.data);
    if (src_dtype == DType::bf16) {
      launch<uint16_t, uint16_t>(out, dst.stride, dst_first, dst_step, device_src, count, dst.cols,
                                 stream);
    } else {
      launch<float, uint16_t>(out, dst.stride, dst_first, dst_step, device_src, count, dst.cols,
                              stream);
    }
  } else {
    auto* out = static_cast<float*>(dst.data);
    if (src_dtype == DType::bf16) {
      launch<uint16_t, float>(out, dst.stride, dst_first, dst_step, device_src, count, dst.cols,
                              stream);
    } else {
      launch<float, float>(out, dst.stride, dst_first, dst_step, device_src, count, dst.cols,
                           stream);
    }
  }
  cuda::check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (write_rows)");
}

}  // namespace bx
