#include "tokenizer/gguf_bpe_tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace bx {

namespace {

constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace

BpeTokenizerParts gguf_bpe_parts(const gguf::File& file) {
  const std::string& path = file.path();
  BpeTokenizerParts parts;
  const std::vector<std::string> tokens = file.get_string_array("tokenizer.ggml.tokens");
  BX_CHECK(!tokens.empty(), path + ": tokenizer.ggml.tokens is empty; expected the vocabulary");
  std::vector<int64_t> types(tokens.size(), 1);
  if (file.has("tokenizer.ggml.token_type")) {
    types = file.get_int_array("tokenizer.ggml.token_type");
    BX_CHECK(types.size() == tokens.size(),
             path + ": tokenizer.ggml.token_type has " + std::to_string(types.size()) +
                 " entries; expected " + std::to_string(tokens.size()) + " (one per token)");
  }
  BX_CHECK(file.has("tokenizer.ggml.merges"),
           path + ": tokenizer.ggml.model is gpt2 but there is no tokenizer.ggml.merges");
  const std::vector<std::string> merges = file.get_string_array("tokenizer.ggml.merges");

  parts.model.vocab.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    const auto i = static_cast<int32_t>(id);
    parts.model.vocab.emplace_back(tokens[id], i);
    const int64_t type = types[id];
    BX_CHECK(type >= 1 && type <= 6, path + ": tokenizer.ggml.token_type[" + std::to_string(id) +
                                         "] is " + std::to_string(type) +
                                         "; expected 1 (normal) .. 6 (byte)");
    if (type == 2 || type == 3 || type == 4) {
      AddedToken t;
      t.id = i;
      t.content = tokens[id];
      t.special = type != 4;
      parts.added_tokens.push_back(std::move(t));
    }
  }
  parts.model.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& line = merges[i];
    const size_t space = line.find(' ', 1);  // a token never is empty; "  " splits as " ", " "
    BX_CHECK(space != std::string::npos && space + 1 < line.size(),
             path + ": tokenizer.ggml.merges[" + std::to_string(i) + "] is \"" + line +
                 "\"; expected two tokens separated by a space");
    parts.model.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }

  const std::string pre =
      file.has("tokenizer.ggml.pre") ? file.get_string("tokenizer.ggml.pre") : "default";
  bool add_bos = false;
  if (pre == "default" || pre == "gpt2") {
    parts.pre_tokenizer.add_byte_level(false, true);
  } else if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe") {
    parts.pre_tokenizer.add_split(TextPattern::regex(kLlama3Pattern),
                                  PreTokenizer::Behavior::isolated, false);
    parts.pre_tokenizer.add_byte_level(false, false);
    parts.model.ignore_merges = true;
    add_bos = true;
  } else if (pre == "qwen2") {
    parts.normalizer = Normalizer::from_json(nlohmann::json{{"type", "NFC"}});
    parts.pre_tokenizer.add_split(TextPattern::regex(kQwen2Pattern),
                                  PreTokenizer::Behavior::isolated, false);
    parts.pre_tokenizer.add_byte_level(false, false);
  } else if (pre == "smollm") {
    parts.pre_tokenizer.add_digits(true);
    parts.pre_tokenizer.add_byte_level(false, true);
  } else {
    throw Error(path + ": unsupported pre-tokenizer type tokenizer.ggml.pre = '" + pre +
                "'; supported: default, gpt2, llama3, llama-v3, llama-bpe, qwen2, smollm");
  }
  parts.decoder.add_byte_level();

  auto read_id = [&](const std::string& key) -> int32_t {
    if (!file.has(key)) return -1;
    const int64_t id = file.get_int(key);
    if (id == -1 || id == 0xFFFFFFFFll) return -1;
    BX_CHECK(id >= 0 && static_cast<uint64_t>(id) < tokens.size(),
             path + ": " + key + " is " + std::to_string(id) + "; expected an id in [0, " +
                 std::to_string(tokens.size()) + ")");
    return static_cast<int32_t>(id);
  };
  parts.bos_id = read_id("tokenizer.ggml.bos_token_id");
  parts.eos_id = read_id("tokenizer.ggml.eos_token_id");
  if (file.has("tokenizer.ggml.add_bos_token")) {
    add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  }
  const bool add_eos =
      file.has("tokenizer.ggml.add_eos_token") && file.get_bool("tokenizer.ggml.add_eos_token");
  if (add_bos && parts.bos_id >= 0) parts.special_prefix.push_back(parts.bos_id);
  if (add_eos && parts.eos_id >= 0) parts.special_suffix.push_back(parts.eos_id);
  return parts;
}

}  // namespace bx
