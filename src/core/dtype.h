// Element types of tensors, as stored in model files and in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bx {

enum class DType : uint8_t { f32, f16, bf16, q8_0, q4_0, q4_1 };

std::string_view dtype_name(DType t);

}  // namespace bx
