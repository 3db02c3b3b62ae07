// libFuzzer target for the JSON files of a Hugging Face folder: the input is given to
// parse_hf_config (config.json) and to safetensors::parse_index (model.safetensors.index.json).
// A bx::Error is an accepted outcome for each. A config that parses must validate and name a
// supported architecture; an index that parses must map every tensor to a plain file name.
// Anything else escaping, a crash or a sanitizer report is a finding. Build and run:
// fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "model/hf_config.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const bx::ModelConfig c = bx::parse_hf_config(text, "fuzz/config.json");
    c.validate();  // must not throw: parse_hf_config validated it
    bool known = false;
    for (const auto& a : bx::supported_hf_architectures()) known = known || a == c.architecture;
    if (!known || c.rope_layout != bx::RopeLayout::half_split) __builtin_trap();
  } catch (const bx::Error&) {
  }
  try {
    for (const auto& [tensor, shard] : bx::safetensors::parse_index(text, "fuzz/index.json")) {
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos) {
        __builtin_trap();
      }
    }
  } catch (const bx::Error&) {
  }
  return 0;
}
