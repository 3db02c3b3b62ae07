#include "template/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/gguf.h"
#include "model/random_model.h"

namespace bx {

ChatTemplate::ChatTemplate(std::string_view source, SpecialTokens tokens)
    : template_(source), tokens_(std::move(tokens)) {}

namespace {

// 'text' (built by appending: GCC 12 misreports "'" + s + "'" under -Wrestrict).
std::string quoted(const std::string& text) {
  std::string out = "'";
  out += text;
  out += '\'';
  return out;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read " + quoted(path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  check(!in.bad(), "error while reading " + quoted(path.string()));
  return text.str();
}

// A special token in tokenizer_config.json: a string, an AddedToken object, or null/absent.
std::string special_token(const nlohmann::ordered_json& config, const char* key,
                          const std::string& where) {
  if (!config.contains(key) || config[key].is_null()) return "";
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  check(v.is_object() && v.contains("content") && v["content"].is_string(),
        where + ": '" + key + "' is neither a string nor an object with a string 'content'");
  return v["content"].get<std::string>();
}

std::string pick_template(const nlohmann::ordered_json& value, const std::string& where) {
  if (value.is_string()) return value.get<std::string>();
  check(value.is_array(), where +
                              ": chat_template is neither a string nor a list of "
                              "{\"name\", \"template\"} objects");
  std::string names;
  for (const auto& entry : value) {
    check(entry.is_object() && entry.contains("name") && entry["name"].is_string() &&
              entry.contains("template") && entry["template"].is_string(),
          where + ": each chat_template list entry must be {\"name\": ..., \"template\": ...}");
    if (entry["name"] == "default") return entry["template"].get<std::string>();
    names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
  }
  throw Error(where + ": chat_template list has no template named 'default' (has: " + names + ")");
}

}  // namespace

ChatTemplate ChatTemplate::from_tokenizer_config(const nlohmann::ordered_json& config,
                                                 const std::string& where) {
  check(config.is_object(), where + ": expected a JSON object");
  check(config.contains("chat_template") && !config["chat_template"].is_null(),
        where + " has no chat_template");
  SpecialTokens tokens{
      special_token(config, "bos_token", where), special_token(config, "eos_token", where),
      special_token(config, "unk_token", where), special_token(config, "pad_token", where)};
  return ChatTemplate(pick_template(config["chat_template"], where), std::move(tokens));
}

ChatTemplate ChatTemplate::from_tokenizer_dir(const std::string& dir) {
  const std::filesystem::path root(dir);
  const std::filesystem::path config_path = root / "tokenizer_config.json";
  check(std::filesystem::is_regular_file(config_path),
        quoted(dir) + " has no tokenizer_config.json; expected a tokenizer directory");
  nlohmann::ordered_json config;
  try {
    config = nlohmann::ordered_json::parse(read_text_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(quoted(config_path.string()) + " is not valid JSON: " + e.what());
  }
  const std::filesystem::path jinja_path = root / "chat_template.jinja";
  const bool has_inline =
      config.is_object() && config.contains("chat_template") && !config["chat_template"].is_null();
  if (!has_inline && std::filesystem::is_regular_file(jinja_path)) {
    config["chat_template"] = read_text_file(jinja_path);
  }
  return from_tokenizer_config(config, quoted(config_path.string()));
}

std::optional<ChatTemplate> ChatTemplate::of_model(const std::string& path) {
  if (is_random_model_spec(path)) return std::nullopt;  // generated weights: no tokenizer either
  if (std::filesystem::is_directory(path)) {
    const std::filesystem::path root(path);
    const std::filesystem::path config_path = root / "tokenizer_config.json";
    if (!std::filesystem::is_regular_file(config_path)) return std::nullopt;
    nlohmann::ordered_json config;
    try {
      config = nlohmann::ordered_json::parse(read_text_file(config_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error(quoted(config_path.string()) + " is not valid JSON: " + e.what());
    }
    const bool has_inline =
        config.is_object() && config.contains("chat_template") && !config["chat_template"].is_null();
    if (!has_inline && !std::filesystem::is_regular_file(root / "chat_template.jinja")) {
      return std::nullopt;
    }
    return from_tokenizer_dir(path);
  }
  const gguf::File file = gguf::File::open(path);
  if (!file.has("tokenizer.chat_template")) return std::nullopt;
  return from_gguf(file);
}

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file) {
  const std::string where = quoted(file.path());
  check(file.has("tokenizer.chat_template"),
        where + " has no tokenizer.chat_template in its metadata");
  const std::string source = file.get_string("tokenizer.chat_template");
  SpecialTokens tokens;
  if (file.has("tokenizer.ggml.tokens")) {
    const std::vector<std::string> vocab = file.get_string_array("tokenizer.ggml.tokens");
    const auto token = [&](const char* key) -> std::string {
      if (!file.has(key)) return "";
      const uint64_t id = file.get_uint(key);
      check(id < vocab.size(), where + ": " + key + " is " + std::to_string(id) +
                                   ", outside the vocabulary of " + std::to_string(vocab.size()) +
                                   " tokens");
      return vocab[id];
    };
    tokens.bos_token = token("tokenizer.ggml.bos_token_id");
    tokens.eos_token = token("tokenizer.ggml.eos_token_id");
    tokens.unk_token = token("tokenizer.ggml.unknown_token_id");
    tokens.pad_token = token("tokenizer.ggml.padding_token_id");
  }
  return ChatTemplate(source, std::move(tokens));
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra,
                                 const tmpl::RenderOptions& options) const {
  check(messages.is_array(), "messages must be a JSON array of message objects, got " +
                                 std::string(messages.type_name()));
  for (size_t i = 0; i < messages.size(); ++i) {
    check(messages[i].is_object(), "messages[" + std::to_string(i) + "] is a " +
                                       std::string(messages[i].type_name()) +
                                       "; expected an object with role and content");
  }
  check(extra.is_null() || extra.is_object(),
        "extra template variables must be a JSON object, got " + std::string(extra.type_name()));
  tmpl::Dict context;
  context.set("messages", tmpl::from_json(messages));
  context.set("tools", tmpl::Value::none());
  context.set("documents", tmpl::Value::none());
  context.set("add_generation_prompt", tmpl::Value::from_bool(add_generation_prompt));
  // Like transformers' special_tokens_map, a token the model does not have is left undefined.
  const std::pair<const char*, const std::string*> specials[] = {{"bos_token", &tokens_.bos_token},
                                                                 {"eos_token", &tokens_.eos_token},
                                                                 {"unk_token", &tokens_.unk_token},
                                                                 {"pad_token", &tokens_.pad_token}};
  for (const auto& [name, value] : specials) {
    if (!value->empty()) context.set(name, tmpl::Value::from_string(*value));
  }
  if (extra.is_object()) {
    for (const auto& [key, value] : extra.items()) context.set(key, tmpl::from_json(value));
  }
  return template_.render(context, options);
}

}  // namespace bx
