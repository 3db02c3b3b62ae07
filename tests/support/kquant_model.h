// A small random llama GGUF whose matrices are K-quant, Q5 and IQ4 blocks (Q4_K, Q6_K, Q5_K, Q2_K,
// Q3_K, Q5_0, Q5_1, IQ4_NL, IQ4_XS in turn), written by the `gguf` package (tests/ref/make_kquant_gguf.py) over
// the metadata and norm weights of an F32 random model (support/random_model.h). The matrices'
// rows are 256 or 512 elements, whole super-blocks.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "support/python_runner.h"
#include "support/random_model.h"

namespace bx::test {

// dim 256 (4 heads of 64, 2 KV heads), ffn 512, 2 layers, 320 tokens, an output.weight of its own.
inline RandomLlamaSpec kquant_llama_spec(uint32_t seed) {
  RandomLlamaSpec spec;
  spec.dim = 256;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.ffn_dim = 512;
  spec.n_layers = 2;
  spec.vocab_size = 320;
  spec.tied_output = false;
  spec.seed = seed;
  return spec;
}

class KQuantLlamaFile {
 public:
  // Writes the file with `python` (the interpreter of test::python_interpreter()); ok() says
  // whether the script succeeded.
  KQuantLlamaFile(const std::string& name, const std::string& python, uint32_t seed)
      : source_(name + "-f32", kquant_llama_spec(seed)),
        path_((std::filesystem::temp_directory_path() /
               ("bitexact-" + name + "-" + std::to_string(::getpid()) + ".gguf"))
                  .string()) {
    ok_ = run_python(python, "tests/ref/make_kquant_gguf.py",
                     {source_.path(), path_, std::to_string(seed)}) == 0;
  }
  ~KQuantLlamaFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  KQuantLlamaFile(const KQuantLlamaFile&) = delete;
  KQuantLlamaFile& operator=(const KQuantLlamaFile&) = delete;

  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  RandomLlamaFile source_;
  std::string path_;
  bool ok_ = false;
};

}  // namespace bx::test
