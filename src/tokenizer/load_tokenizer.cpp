#include "tokenizer/load_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/gguf_bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer_json.h"

namespace bx {

namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  BX_CHECK(in.good(), "cannot read '" + path.string() + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path tokenizer_path = fs::path(dir) / "tokenizer.json";
  BX_CHECK(fs::is_directory(dir), "tokenizer directory '" + dir + "' does not exist");
  BX_CHECK(fs::exists(tokenizer_path), "'" + dir +
                                           "' has no tokenizer.json; expected a Hugging Face "
                                           "tokenizer directory");
  const nlohmann::json tokenizer = read_json(tokenizer_path);
  const fs::path config_path = fs::path(dir) / "tokenizer_config.json";
  nlohmann::json config;
  const bool has_config = fs::exists(config_path);
  if (has_config) config = read_json(config_path);
  try {
    return std::make_unique<BpeTokenizer>(
        parse_tokenizer_json(tokenizer, has_config ? &config : nullptr, tokenizer_path.string()));
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind(tokenizer_path.string(), 0) == 0) throw;
    throw Error(tokenizer_path.string() + ": " + what);
  }
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const gguf::File& file) {
  const std::string key = "tokenizer.ggml.model";
  BX_CHECK(file.has(key), file.path() + ": no " + key + "; expected \"llama\" or \"gpt2\"");
  const std::string model = file.get_string(key);
  if (model == "llama") return std::make_unique<SpmTokenizer>(SpmTokenizer::from_gguf(file));
  if (model == "gpt2") {
    try {
      return std::make_unique<BpeTokenizer>(gguf_bpe_parts(file));
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.rfind(file.path(), 0) == 0) throw;
      throw Error(file.path() + ": " + what);
    }
  }
  throw Error(file.path() + ": unsupported tokenizer model type " + key + " = '" + model +
              "'; supported: llama (SentencePiece-style BPE), gpt2 (byte-level BPE)");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (std::filesystem::is_directory(path)) return load_tokenizer_dir(path);
  const gguf::File file = gguf::File::open(path);
  return load_gguf_tokenizer(file);
}

}  // namespace bx
