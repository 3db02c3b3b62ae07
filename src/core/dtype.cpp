#include "core/dtype.h"

namespace bx {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "F32";
    case DType::f16:
      return "F16";
    case DType::bf16:
      return "BF16";
    case DType::q8_0:
      return "Q8_0";
    case DType::q4_0:
      return "Q4_0";
    case DType::q4_1:
      return "Q4_1";
    case DType::q5_0:
      return "Q5_0";
    case DType::q5_1:
      return "Q5_1";
    case DType::q2_k:
      return "Q2_K";
    case DType::q3_k:
      return "Q3_K";
    case DType::q4_k:
      return "Q4_K";
    case DType::q5_k:
      return "Q5_K";
    case DType::q6_k:
      return "Q6_K";
    case DType::iq4_nl:
      return "IQ4_NL";
    case DType::iq4_xs:
      return "IQ4_XS";
  }
  return "?";
}

}  // namespace bx
