// Element types of tensors, as stored in model files and in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bx {

enum class DType : uint8_t {
  f32,
  f16,
  bf16,
  q8_0,
  q4_0,
  q4_1,
  q5_0,
  q5_1,
  q2_k,
  q3_k,
  q4_k,
  q5_k,
  q6_k,
  iq4_nl,
  iq4_xs
};

std::string_view dtype_name(DType t);

}  // namespace bx
