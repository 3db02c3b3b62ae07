// Writes a seed corpus for hf_json_fuzz: the config.json of each supported architecture (with
// head_dim, attention_bias, llama3 rope scaling, sliding windows, eos lists) and an index.
// Standalone (the test-support headers are header-only):
//   g++ -std=c++20 -O1 -Isrc -Itests fuzz/make_hf_json_seeds.cpp -o /tmp/make_hf_json_seeds
//   /tmp/make_hf_json_seeds /tmp/hf-json-corpus
#include <cstdio>
#include <string>

#include "support/random_hf_model.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  using bx::test::random_hf_config;
  using bx::test::write_text;
  try {
    int n = 0;
    for (const char* arch :
         {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}) {
      bx::test::RandomHfSpec s;
      s.architecture = arch;
      write_text(dir + "/config_" + std::to_string(n++) + ".json", random_hf_config(s).dump(2));
      s.attention_bias = true;
      s.llama3_scaling = true;
      s.head_dim = 32;
      s.tied_output = true;
      nlohmann::json c = random_hf_config(s);
      c["eos_token_id"] = {2, 5};
      c["sliding_window"] = 64;
      c["use_sliding_window"] = true;
      write_text(dir + "/config_" + std::to_string(n++) + ".json", c.dump());
    }
    nlohmann::json index;
    index["metadata"] = {{"total_size", 1234}};
    index["weight_map"] = {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                           {"lm_head.weight", "model-00002-of-00002.safetensors"}};
    write_text(dir + "/index.json", index.dump(2));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_hf_json_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
