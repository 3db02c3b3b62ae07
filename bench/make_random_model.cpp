// Writes a random Llama-shaped GGUF for benchmarks whose weights must not fit in the caches
// (stories260K is 1 MB, so its decode speed says nothing about the memory bound).
//
//   build/make_random_model OUT.gguf [--dim D] [--layers L] [--heads H] [--kv-heads K]
//                           [--ffn F] [--vocab V] [--type F32|BF16|Q8_0]
// Defaults: a 0.35 B-parameter shape (dim 2048, 8 layers, 32/4 heads, ffn 5632, vocab 1024;
// the random vocabulary has at most 1065 tokens).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "support/random_model.h"

int main(int argc, char** argv) {
  try {
    bx::check(argc >= 2, "usage: make_random_model OUT.gguf [--dim D] [--layers L] [--heads H] "
                         "[--kv-heads K] [--ffn F] [--vocab V] [--type F32|BF16|Q8_0]");
    bx::test::RandomLlamaSpec spec;
    spec.dim = 2048, spec.n_layers = 8, spec.n_heads = 32, spec.n_kv_heads = 4;
    spec.ffn_dim = 5632, spec.vocab_size = 1024, spec.context_length = 4096;
    spec.tied_output = false;
    for (int i = 2; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      const std::string value = argv[i + 1];
      if (flag == "--type") {
        if (value == "F32") spec.weight_type = bx::gguf::GgmlType::F32;
        else if (value == "BF16") spec.weight_type = bx::gguf::GgmlType::BF16;
        else if (value == "Q8_0") spec.weight_type = bx::gguf::GgmlType::Q8_0;
        else throw bx::Error("--type is '" + value + "', expected F32, BF16 or Q8_0");
        continue;
      }
      const int number = std::atoi(value.c_str());
      bx::check(number > 0, flag + " is '" + value + "', expected a positive integer");
      if (flag == "--dim") spec.dim = number;
      else if (flag == "--layers") spec.n_layers = number;
      else if (flag == "--heads") spec.n_heads = number;
      else if (flag == "--kv-heads") spec.n_kv_heads = number;
      else if (flag == "--ffn") spec.ffn_dim = number;
      else if (flag == "--vocab") spec.vocab_size = number;
      else throw bx::Error("unknown flag " + flag);
    }
    bx::test::write_random_llama(spec, argv[1]);
    std::printf("wrote %s\n", argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_random_model: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
