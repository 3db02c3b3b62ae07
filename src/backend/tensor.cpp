// Tensor views (rows of a backend tensor).
#include <cstddef>

#include "backend/backend.h"
#include "core/error.h"
#include "kernels/quant.h"

namespace bx {

namespace {
// Bytes of `elements` consecutive elements (for block formats, a multiple of the block size).
size_t bytes_of(DType dtype, int64_t elements) {
  switch (dtype) {
    case DType::f32: return static_cast<size_t>(elements) * 4;
    case DType::f16:
    case DType::bf16: return static_cast<size_t>(elements) * 2;
    default: return static_cast<size_t>(quant::bytes_for(dtype, elements));
  }
}
}  // namespace

Tensor Tensor::rows_view(int64_t first, int64_t count) const {
  BX_CHECK(first >= 0 && count >= 0 && first + count <= rows,
        "tensor rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
            ") outside the " + std::to_string(rows) + " rows it has");
  Tensor view = *this;
  view.data = static_cast<std::byte*>(data) + bytes_of(dtype, first * stride);
  view.rows = count;
  return view;
}

}  // namespace bx
