// ggml type table (block size and bytes per block for every known type; the loadable block
// formats' sizes come from kernels/quant_blocks.h) and the conversion of loadable types to f32
// (block formats through kernels/quant.h's scalar reference).
#include <array>
#include <bit>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "kernels/quant.h"
#include "model/gguf.h"

static_assert(std::endian::native == std::endian::little,
              "GGUF reader assumes a little-endian host");

namespace bx::gguf {
namespace {

// Indexed by ggml type id; block_size 0 marks an id that is not a ggml type.
// Sizes from ggml's block structs (ggml-common.h): QK_K = 256 elements per super-block.
constexpr std::array<GgmlTypeTraits, 40> kTypes = {{
    {"F32", 1, 4},                                                                    // 0
    {"F16", 1, 2},                                                                    // 1
    {"Q4_0", quant::kBlockElements[quant::kQ4_0], quant::kBlockBytes[quant::kQ4_0]},  // 2
    {"Q4_1", quant::kBlockElements[quant::kQ4_1], quant::kBlockBytes[quant::kQ4_1]},  // 3
    {"", 0, 0},  // 4: removed (Q4_2)
    {"", 0, 0},  // 5: removed (Q4_3)
    {"Q5_0", quant::kBlockElements[quant::kQ5_0], quant::kBlockBytes[quant::kQ5_0]},        // 6
    {"Q5_1", quant::kBlockElements[quant::kQ5_1], quant::kBlockBytes[quant::kQ5_1]},        // 7
    {"Q8_0", quant::kBlockElements[quant::kQ8_0], quant::kBlockBytes[quant::kQ8_0]},        // 8
    {"Q8_1", 32, 36},                                                                       // 9
    {"Q2_K", quant::kBlockElements[quant::kQ2_K], quant::kBlockBytes[quant::kQ2_K]},        // 10
    {"Q3_K", quant::kBlockElements[quant::kQ3_K], quant::kBlockBytes[quant::kQ3_K]},        // 11
    {"Q4_K", quant::kBlockElements[quant::kQ4_K], quant::kBlockBytes[quant::kQ4_K]},        // 12
    {"Q5_K", quant::kBlockElements[quant::kQ5_K], quant::kBlockBytes[quant::kQ5_K]},        // 13
    {"Q6_K", quant::kBlockElements[quant::kQ6_K], quant::kBlockBytes[quant::kQ6_K]},        // 14
    {"Q8_K", 256, 292},                                                                     // 15
    {"IQ2_XXS", 256, 66},                                                                   // 16
    {"IQ2_XS", 256, 74},                                                                    // 17
    {"IQ3_XXS", 256, 98},                                                                   // 18
    {"IQ1_S", 256, 50},                                                                     // 19
    {"IQ4_NL", quant::kBlockElements[quant::kIQ4_NL], quant::kBlockBytes[quant::kIQ4_NL]},  // 20
    {"IQ3_S", 256, 110},                                                                    // 21
    {"IQ2_S", 256, 82},                                                                     // 22
    {"IQ4_XS", quant::kBlockElements[quant::kIQ4_XS], quant::kBlockBytes[quant::kIQ4_XS]},  // 23
    {"I8", 1, 1},                                                                           // 24
    {"I16", 1, 2},                                                                          // 25
    {"I32", 1, 4},                                                                          // 26
    {"I64", 1, 8},                                                                          // 27
    {"F64", 1, 8},                                                                          // 28
    {"IQ1_M", 256, 56},                                                                     // 29
    {"BF16", 1, 2},                                                                         // 30
    {"", 0, 0},          // 31: removed (Q4_0_4_4)
    {"", 0, 0},          // 32: removed (Q4_0_4_8)
    {"", 0, 0},          // 33: removed (Q4_0_8_8)
    {"TQ1_0", 256, 54},  // 34
    {"TQ2_0", 256, 66},  // 35
    {"", 0, 0},          // 36: removed (IQ4_NL_4_4)
    {"", 0, 0},          // 37: removed (IQ4_NL_4_8)
    {"", 0, 0},          // 38: removed (IQ4_NL_8_8)
    {"MXFP4", 32, 17},   // 39
}};

uint16_t load_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

const GgmlTypeTraits* ggml_type_traits(GgmlType t) {
  const auto id = static_cast<uint32_t>(t);
  if (id >= kTypes.size() || kTypes[id].block_size == 0) return nullptr;
  return &kTypes[id];
}

std::string ggml_type_name(GgmlType t) {
  if (const GgmlTypeTraits* traits = ggml_type_traits(t)) return std::string(traits->name);
  return "type " + std::to_string(static_cast<uint32_t>(t));
}

std::string supported_type_names() {
  return "F32, F16, BF16, " + quant::block_format_names();
}

std::optional<DType> to_dtype(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return DType::f32;
    case GgmlType::F16:
      return DType::f16;
    case GgmlType::BF16:
      return DType::bf16;
    case GgmlType::Q8_0:
      return DType::q8_0;
    case GgmlType::Q4_0:
      return DType::q4_0;
    case GgmlType::Q4_1:
      return DType::q4_1;
    case GgmlType::Q5_0:
      return DType::q5_0;
    case GgmlType::Q5_1:
      return DType::q5_1;
    case GgmlType::Q2_K:
      return DType::q2_k;
    case GgmlType::Q3_K:
      return DType::q3_k;
    case GgmlType::Q4_K:
      return DType::q4_k;
    case GgmlType::Q5_K:
      return DType::q5_k;
    case GgmlType::Q6_K:
      return DType::q6_k;
    case GgmlType::IQ4_NL:
      return DType::iq4_nl;
    case GgmlType::IQ4_XS:
      return DType::iq4_xs;
    default:
      return std::nullopt;
  }
}

void dequantize_to_f32(const TensorInfo& info, std::span<const std::byte> data, float* out) {
  if (!to_dtype(info.type)) {
    throw Error("tensor " + quote_name(info.name) + " has type " + ggml_type_name(info.type) +
                ", which cannot be dequantized: supported are " + supported_type_names());
  }
  const GgmlTypeTraits& traits = *ggml_type_traits(info.type);
  if (info.n_elements < 0 || info.n_elements % traits.block_size != 0) {
    throw Error("tensor " + quote_name(info.name) + " has " + std::to_string(info.n_elements) +
                " elements: expected a non-negative multiple of the " + std::string(traits.name) +
                " block size " + std::to_string(traits.block_size));
  }
  const int64_t n_blocks = info.n_elements / traits.block_size;
  // n_blocks * type_size cannot overflow when data.size() matches it; compare by division.
  if (data.size() % traits.type_size != 0 ||
      data.size() / traits.type_size != static_cast<uint64_t>(n_blocks)) {
    throw Error("tensor " + quote_name(info.name) + ": " + std::to_string(data.size()) +
                " bytes of data given, expected " + std::to_string(n_blocks) + " blocks of " +
                std::to_string(traits.type_size) + " bytes (" + std::string(traits.name) + ", " +
                std::to_string(info.n_elements) + " elements)");
  }
  if (n_blocks == 0) return;
  const std::byte* src = data.data();
  switch (info.type) {
    case GgmlType::F32:
      std::memcpy(out, src, data.size());
      break;
    case GgmlType::F16:
      for (int64_t i = 0; i < n_blocks; ++i) out[i] = f16_to_f32(load_u16(src + 2 * i));
      break;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n_blocks; ++i) out[i] = bf16_to_f32(load_u16(src + 2 * i));
      break;
    default:  // a block format: its one scalar reference (kernels/quant.h)
      quant::dequantize_row(*to_dtype(info.type), src, info.n_elements, out);
      break;
  }
}

}  // namespace bx::gguf
