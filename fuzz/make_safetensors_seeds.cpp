// Writes a small seed corpus for safetensors_fuzz with tests/support/safetensors_writer.h: every
// dtype, metadata, scalars and empty tensors, an unpadded header, a header with escapes, and a
// small model-shaped file. Standalone (the writer is header-only):
//   g++ -std=c++20 -O1 -Isrc -Itests fuzz/make_safetensors_seeds.cpp -o /tmp/make_safetensors_seeds
//   /tmp/make_safetensors_seeds /tmp/safetensors-corpus
#include <cstdio>
#include <string>
#include <vector>

#include "support/safetensors_writer.h"

using bx::test::SafetensorsWriter;

namespace {

std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(static_cast<int>(i % 17) - 8) * 0.37f;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  try {
    for (const char* dtype : {"F32", "F16", "BF16"}) {
      SafetensorsWriter w;
      w.add_metadata("format", "pt");
      w.add_tensor("model.layers.0.mlp.up_proj.weight", {4, 8}, ramp(32), dtype);
      w.add_tensor("model.norm.weight", {8}, ramp(8), dtype);
      w.write(dir + "/tensors_" + dtype + ".safetensors");
    }

    SafetensorsWriter all;
    all.add_metadata("format", "pt");
    all.add_metadata("note", "quote \" backslash \\ tab \t");
    for (const char* dtype : {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "I32", "U32",
                              "F64", "I64", "U64"}) {
      const size_t size = std::string(dtype).find("64") != std::string::npos   ? 8
                          : std::string(dtype).find("32") != std::string::npos ? 4
                          : std::string(dtype).find("16") != std::string::npos ? 2
                                                                               : 1;
      all.add_raw_tensor(std::string("t.") + dtype, dtype, {3}, std::vector<std::byte>(3 * size));
    }
    all.add_tensor("scalar", {}, ramp(1));
    all.add_tensor("empty", {0, 5}, {});
    all.write(dir + "/every_dtype.safetensors");

    SafetensorsWriter::write_bytes(dir + "/empty_header.safetensors",
                                   SafetensorsWriter::assemble("{}", {}, false));

    SafetensorsWriter unpadded;
    unpadded.add_tensor("x", {2, 2}, ramp(4));
    SafetensorsWriter::write_bytes(
        dir + "/unpadded.safetensors",
        SafetensorsWriter::assemble(unpadded.header(), unpadded.data(), false));

    SafetensorsWriter model;
    model.add_metadata("format", "pt");
    model.add_tensor("model.embed_tokens.weight", {16, 8}, ramp(128), "BF16");
    for (int l = 0; l < 2; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      model.add_tensor(p + "input_layernorm.weight", {8}, ramp(8), "BF16");
      model.add_tensor(p + "self_attn.q_proj.weight", {8, 8}, ramp(64), "BF16");
      model.add_tensor(p + "self_attn.q_proj.bias", {8}, ramp(8), "BF16");
      model.add_tensor(p + "self_attn.q_norm.weight", {4}, ramp(4), "BF16");
    }
    model.write(dir + "/model.safetensors");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_safetensors_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
