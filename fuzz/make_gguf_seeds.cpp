// Writes a small seed corpus for gguf_fuzz with tests/support/gguf_writer.h: every metadata value
// type, nested arrays, every loadable tensor type (the block formats the writer cannot quantize,
// Q5_0 / Q5_1, the K-quants and IQ4_NL / IQ4_XS, as patterned raw blocks), custom alignment,
// known-but-unsupported types. Standalone (the writer is header-only):
//   g++ -std=c++20 -O1 -Isrc -Itests fuzz/make_gguf_seeds.cpp -o /tmp/make_gguf_seeds
//   /tmp/make_gguf_seeds /tmp/gguf-corpus
#include <cstdio>
#include <string>
#include <vector>

#include "support/gguf_writer.h"

using bx::gguf::Array;
using bx::gguf::GgmlType;
using bx::gguf::Value;
using bx::gguf::ValueType;
using bx::test::GgufWriter;

namespace {

std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(static_cast<int>(i % 17) - 8) * 0.37f;
  return v;
}

std::string name(GgmlType t) {  // gguf.h's ggml_type_name lives in the library; stay standalone
  switch (t) {
    case GgmlType::F32:
      return "F32";
    case GgmlType::F16:
      return "F16";
    case GgmlType::BF16:
      return "BF16";
    case GgmlType::Q8_0:
      return "Q8_0";
    case GgmlType::Q4_0:
      return "Q4_0";
    case GgmlType::Q4_1:
      return "Q4_1";
    default:
      return "other";
  }
}

// The block formats the writer cannot quantize: type, elements and bytes per block.
struct RawBlockType {
  GgmlType type;
  const char* name;
  int64_t block, bytes;
};
constexpr RawBlockType kRawBlockTypes[] = {
    {GgmlType::Q5_0, "Q5_0", 32, 22},       {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q2_K, "Q2_K", 256, 84},      {GgmlType::Q3_K, "Q3_K", 256, 110},
    {GgmlType::Q4_K, "Q4_K", 256, 144},     {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},     {GgmlType::IQ4_NL, "IQ4_NL", 32, 18},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136},
};

// `blocks` blocks of patterned bytes (every bit field varies; the f16 scales among them are
// finite or not, as the pattern falls).
std::vector<std::byte> raw_blocks(const RawBlockType& t, int64_t blocks) {
  std::vector<std::byte> out(static_cast<size_t>(blocks * t.bytes));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>((i * 97 + 13) & 0xff);
  return out;
}

GgufWriter every_metadata_type() {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u8("u8", 7);
  w.add_i8("i8", -7);
  w.add_u16("u16", 700);
  w.add_i16("i16", -700);
  w.add_u32("llama.block_count", 2);
  w.add_i32("i32", -70000);
  w.add_u64("u64", 1ull << 40);
  w.add_i64("i64", -(1ll << 40));
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_f64("f64", 0.125);
  w.add_bool("b", true);
  w.add_array_string("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>",
                                               "\xe2\x96\x81"
                                               "a"});
  w.add_array_f32("tokenizer.ggml.scores", {0.0f, -1.0f, -2.0f, -3.5f});
  w.add_array_i32("tokenizer.ggml.token_type", {2, 3, 3, 1});
  w.add_array_u32("u32s", {1, 2});
  Value inner{ValueType::array, Array{ValueType::uint16, {Value{ValueType::uint16, uint64_t{9}}}}};
  w.add_value("nested", Value{ValueType::array, Array{ValueType::array, {inner, inner}}});
  w.add_value("bools", Value{ValueType::array,
                             Array{ValueType::boolean, {Value{ValueType::boolean, false}}}});
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  try {
    every_metadata_type().write(dir + "/metadata.gguf");

    const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16,
                              GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1};
    for (GgmlType t : types) {
      GgufWriter w;
      w.add_string("general.architecture", "llama");
      w.add_tensor("blk.0.w", {64, 2}, ramp(128), t);
      w.add_tensor("blk.0.v", {32}, ramp(32), t);
      w.write(dir + "/tensor_" + name(t) + ".gguf");
    }

    for (const RawBlockType& t : kRawBlockTypes) {
      GgufWriter w;
      w.add_string("general.architecture", "llama");
      w.add_raw_tensor("blk.0.w", {t.block * 2, 2}, t.type, raw_blocks(t, 4));
      w.add_raw_tensor("blk.0.v", {t.block}, t.type, raw_blocks(t, 1));
      w.write(dir + "/tensor_" + std::string(t.name) + ".gguf");
    }

    GgufWriter all = every_metadata_type();
    for (GgmlType t : types) all.add_tensor("t." + name(t), {32}, ramp(32), t);
    for (const RawBlockType& t : kRawBlockTypes) {
      all.add_raw_tensor("t." + std::string(t.name), {t.block}, t.type, raw_blocks(t, 1));
    }
    all.write(dir + "/all.gguf");

    GgufWriter aligned;
    aligned.set_alignment(8);
    aligned.add_tensor("a", {3}, {1.0f, 2.0f, 3.0f});
    aligned.add_tensor("b", {32}, ramp(32), GgmlType::Q8_0);
    aligned.write(dir + "/align8.gguf");

    GgufWriter unsupported;
    unsupported.add_raw_tensor("q8k", {256}, GgmlType::Q8_K, std::vector<std::byte>(292));
    unsupported.add_raw_tensor("iq2", {256}, GgmlType::IQ2_XXS, std::vector<std::byte>(66));
    unsupported.write(dir + "/unsupported.gguf");

    GgufWriter v2 = every_metadata_type();
    v2.set_version(2);
    v2.add_tensor("x", {4}, {1.0f, -1.0f, 0.5f, 2.0f}, GgmlType::F16);
    v2.write(dir + "/v2.gguf");

    GgufWriter empty;
    empty.write(dir + "/empty.gguf");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_gguf_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
