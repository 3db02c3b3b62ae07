// Optional second reference for the SentencePiece fixture: tokenizes every text of
// tests/data/spm_stories260k_fixture.jsonl with llama.cpp itself and counts the lines whose ids
// differ from the fixture's (which come from the `sentencepiece` library). Not built by CMake.
//
// llama.cpp's source ships in the PyPI sdist of llama-cpp-python (vendor/llama.cpp):
//   pip download llama-cpp-python --no-deps --no-binary :all: -d /tmp/lcp
//   tar xzf /tmp/lcp/llama_cpp_python-*.tar.gz -C /tmp/lcp
//   L=$(echo /tmp/lcp/llama_cpp_python-*/vendor/llama.cpp)
//   cmake -S $L -B /tmp/lcp/build -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF \
//     -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
//     -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_COMMON=OFF && cmake --build /tmp/lcp/build --target llama
//   B=/tmp/lcp/build; g++ -std=c++17 -O1 -I$L/include -I$L/ggml/include \
//     tests/ref/llama_cpp_tokenize.cpp -o /tmp/lcp/llama_cpp_tokenize $B/src/libllama.a \
//     $B/ggml/src/libggml.a $B/ggml/src/libggml-cpu.a $B/ggml/src/libggml-base.a -lpthread -ldl
//   /tmp/lcp/llama_cpp_tokenize ../shared/models/stories260K.gguf \
//     tests/data/spm_stories260k_fixture.jsonl
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: llama_cpp_tokenize MODEL.gguf FIXTURE.jsonl\n";
    return 2;
  }
  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_backend_init();
  llama_model_params params = llama_model_default_params();
  params.vocab_only = true;
  llama_model* model = llama_model_load_from_file(argv[1], params);
  if (model == nullptr) {
    std::cerr << "cannot load " << argv[1] << "\n";
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);

  std::ifstream in(argv[2]);
  std::string line;
  int lines = 0, differ = 0;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    const std::string text = j.at("text").get<std::string>();
    const std::vector<int32_t> expected = j.at("ids").get<std::vector<int32_t>>();
    std::vector<llama_token> ids(text.size() * 4 + 16);
    const int32_t n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()),
                                     ids.data(), static_cast<int32_t>(ids.size()),
                                     /*add_special=*/false, /*parse_special=*/false);
    ids.resize(n < 0 ? 0 : static_cast<size_t>(n));
    ++lines;
    if (n < 0 || ids != expected) {
      ++differ;
      std::cout << "differs: " << nlohmann::json(text).dump() << "\n";
    }
  }
  std::cout << lines << " lines, " << differ << " differ from llama.cpp\n";
  llama_model_free(model);
  return differ == 0 ? 0 : 1;
}
