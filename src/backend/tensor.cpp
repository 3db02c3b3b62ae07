#include <cstddef>

#include "backend/backend.h"
#include "core/error.h"

namespace bx {

namespace {
size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
    default: throw Error("tensor views of quantized types are not supported");
  }
}
}  // namespace

Tensor Tensor::rows_view(int64_t first, int64_t count) const {
  BX_CHECK(first >= 0 && count >= 0 && first + count <= rows,
        "tensor rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
            ") outside the " + std::to_string(rows) + " rows it has");
  Tensor view = *this;
  view.data = static_cast<std::byte*>(data) +
              static_cast<size_t>(first * stride) * element_size(dtype);
  view.rows = count;
  return view;
}

void Backend::add_bias(Tensor, const Tensor&) {
  throw Error("backend " + name() +
              " does not implement add_bias, which models with attention biases need");
}

}  // namespace bx
