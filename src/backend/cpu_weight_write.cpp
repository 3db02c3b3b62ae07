// CpuBackend's weight updates in place: rows written from host memory, converted as
// upload_matrix converts them.
#include <algorithm>
#include <cstring>

#include "backend/cpu_backend.h"
#include "core/half.h"

namespace bx {

void CpuBackend::write_rows(Tensor dst, int64_t dst_first, int64_t dst_step, int64_t count,
                            const void* src, DType src_dtype, bool src_on_device) {
  BX_CHECK(!src_on_device, "cpu backend: weights come from host memory, not a device");
  BX_CHECK(dst.dtype == DType::f32 || dst.dtype == DType::bf16,
           "cpu backend: write_rows writes F32 or BF16 tensors");
  BX_CHECK(src_dtype == DType::f32 || src_dtype == DType::bf16,
           "cpu backend: write_rows reads F32 or BF16");
  BX_CHECK(dst_first >= 0 && dst_step >= 1 && count >= 0 &&
               (count == 0 || dst_first + (count - 1) * dst_step < dst.rows),
           "cpu backend: write_rows outside the tensor");
  const size_t cols = static_cast<size_t>(dst.cols);
  const size_t dst_element = dst.dtype == DType::f32 ? 4 : 2;
  const size_t src_element = src_dtype == DType::f32 ? 4 : 2;
  const auto* in = static_cast<const unsigned char*>(src);
  auto* out = static_cast<unsigned char*>(dst.data);
  const size_t dst_row_bytes = static_cast<size_t>(dst.stride) * dst_element;
  if (src_dtype == dst.dtype && dst_step == 1 && dst.stride == dst.cols) {
    std::memcpy(out + static_cast<size_t>(dst_first) * dst_row_bytes, in,
                static_cast<size_t>(count) * cols * src_element);
    return;
  }
  for (int64_t k = 0; k < count; ++k) {
    const unsigned char* row_in = in + static_cast<size_t>(k) * cols * src_element;
    unsigned char* row_out = out + static_cast<size_t>(dst_first + k * dst_step) * dst_row_bytes;
    if (src_dtype == dst.dtype) {
      std::memcpy(row_out, row_in, cols * src_element);
    } else if (dst.dtype == DType::f32) {  // bf16 -> f32, exact
      const auto* h = reinterpret_cast<const uint16_t*>(row_in);
      auto* f = reinterpret_cast<float*>(row_out);
      for (size_t c = 0; c < cols; ++c) f[c] = bf16_to_f32(h[c]);
    } else {  // f32 -> bf16, to nearest even
      const auto* f = reinterpret_cast<const float*>(row_in);
      auto* h = reinterpret_cast<uint16_t*>(row_out);
      for (size_t c = 0; c < cols; ++c) h[c] = f32_to_bf16(f[c]);
    }
  }
}

void CpuBackend::free_tensor(const Tensor& t) {
  q8_0_tiled_.erase(t.data);
  const auto it = std::find_if(allocations_.begin(), allocations_.end(),
                               [&](const auto& a) { return a.get() == t.data; });
  if (it != allocations_.end()) allocations_.erase(it);
}

}  // namespace bx
