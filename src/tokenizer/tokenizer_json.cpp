#include "tokenizer/tokenizer_json.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/json_fields.h"

namespace bx {

namespace {

BpeModelSpec parse_model(const nlohmann::json& model) {
  BX_CHECK(model.is_object(), "tokenizer.json: \"model\" is not an object");
  const std::string type = model.contains("type") ? json_fields::type_of(model, "model") : "BPE";
  BX_CHECK(type == "BPE",
           "tokenizer.json: unsupported tokenizer model type '" + type + "'; supported: BPE");
  BpeModelSpec spec;
  BX_CHECK(model.contains("vocab") && model["vocab"].is_object(),
           "tokenizer.json: the BPE model has no \"vocab\" object");
  spec.vocab.reserve(model["vocab"].size());
  for (const auto& [text, id] : model["vocab"].items()) {
    BX_CHECK(id.is_number_integer(), "tokenizer.json: vocab entry '" + text + "' has id " +
                                         id.dump() + "; expected an integer");
    spec.vocab.emplace_back(text, id.get<int32_t>());
  }
  const nlohmann::json& merges = json_fields::array(model, "merges", "the BPE model");
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const nlohmann::json& m = merges[i];
    if (m.is_string()) {
      const std::string line = m.get<std::string>();
      const size_t space = line.find(' ');
      BX_CHECK(space != std::string::npos && line.find(' ', space + 1) == std::string::npos,
               "tokenizer.json: merge " + std::to_string(i) + " is \"" + line +
                   "\"; expected two tokens separated by one space");
      spec.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw Error("tokenizer.json: merge " + std::to_string(i) + " is " + m.dump() +
                  "; expected \"a b\" or [\"a\", \"b\"]");
    }
  }
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    BX_CHECK(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0,
             "tokenizer.json: BPE dropout " + model["dropout"].dump() +
                 " is not supported; expected null or 0 (deterministic encoding)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null()) {
      BX_CHECK(model[key].is_string() && model[key].get<std::string>().empty(),
               std::string("tokenizer.json: BPE ") + key + " " + model[key].dump() +
                   " is not supported; expected null or \"\"");
    }
  }
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    spec.unk_token = json_fields::string(model, "unk_token", "the BPE model");
  }
  spec.fuse_unk = json_fields::boolean(model, "fuse_unk", "the BPE model", false);
  spec.byte_fallback = json_fields::boolean(model, "byte_fallback", "the BPE model", false);
  spec.ignore_merges = json_fields::boolean(model, "ignore_merges", "the BPE model", false);
  return spec;
}

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& tokenizer) {
  std::vector<AddedToken> out;
  if (!tokenizer.contains("added_tokens") || tokenizer["added_tokens"].is_null()) return out;
  for (const nlohmann::json& t : json_fields::array(tokenizer, "added_tokens", "tokenizer")) {
    AddedToken a;
    BX_CHECK(t.is_object() && t.contains("id") && t["id"].is_number_integer(),
             "tokenizer.json: an added token has no integer \"id\": " + t.dump().substr(0, 80));
    a.id = t["id"].get<int32_t>();
    a.content = json_fields::string(t, "content", "an added token");
    a.special = json_fields::boolean(t, "special", "an added token", false);
    a.normalized = json_fields::boolean(t, "normalized", "an added token", !a.special);
    a.lstrip = json_fields::boolean(t, "lstrip", "an added token", false);
    a.rstrip = json_fields::boolean(t, "rstrip", "an added token", false);
    a.single_word = json_fields::boolean(t, "single_word", "an added token", false);
    out.push_back(std::move(a));
  }
  return out;
}

// The id of a token string: added tokens first, then the model vocabulary; -1 if none.
int32_t find_id(const BpeTokenizerParts& parts, const std::string& text) {
  for (const AddedToken& t : parts.added_tokens) {
    if (t.content == text) return t.id;
  }
  for (const auto& [token, id] : parts.model.vocab) {
    if (token == text) return id;
  }
  return -1;
}

void parse_post_processor(const nlohmann::json& spec, BpeTokenizerParts& parts) {
  if (spec.is_null()) return;
  const std::string type = json_fields::type_of(spec, "post-processor");
  if (type == "Sequence") {
    for (const nlohmann::json& inner : json_fields::array(spec, "processors", "post-processor")) {
      parse_post_processor(inner, parts);
    }
  } else if (type == "ByteLevel") {
    // Only trims offsets: no ids.
  } else if (type == "TemplateProcessing") {
    const nlohmann::json& single = json_fields::array(spec, "single", "TemplateProcessing");
    BX_CHECK(spec.contains("special_tokens") && spec["special_tokens"].is_object(),
             "tokenizer.json: TemplateProcessing has no \"special_tokens\" object");
    const nlohmann::json& specials = spec["special_tokens"];
    bool seen_sequence = false;
    std::vector<int32_t> prefix, suffix;
    for (const nlohmann::json& item : single) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken") && item["SpecialToken"].contains("id") &&
                 item["SpecialToken"]["id"].is_string()) {
        const std::string name = item["SpecialToken"]["id"].get<std::string>();
        BX_CHECK(specials.contains(name) && specials[name].contains("ids") &&
                     specials[name]["ids"].is_array(),
                 "tokenizer.json: TemplateProcessing uses special token '" + name +
                     "' that its \"special_tokens\" does not define");
        for (const nlohmann::json& id : specials[name]["ids"]) {
          BX_CHECK(id.is_number_integer(), "tokenizer.json: TemplateProcessing special token '" +
                                               name + "' has a non-integer id");
          (seen_sequence ? suffix : prefix).push_back(id.get<int32_t>());
        }
      } else {
        throw Error("tokenizer.json: TemplateProcessing item " + item.dump().substr(0, 80) +
                    " is neither a Sequence nor a SpecialToken");
      }
    }
    BX_CHECK(seen_sequence, "tokenizer.json: TemplateProcessing \"single\" has no $A sequence");
    parts.special_prefix = std::move(prefix);
    parts.special_suffix = std::move(suffix);
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto id_of = [&](const char* key) {
      BX_CHECK(spec.contains(key) && spec[key].is_array() && spec[key].size() == 2 &&
                   spec[key][1].is_number_integer(),
               "tokenizer.json: " + type + " has no [token, id] \"" + key + "\"");
      return spec[key][1].get<int32_t>();
    };
    parts.special_prefix = {id_of("cls")};
    parts.special_suffix = {id_of("sep")};
  } else {
    throw Error("tokenizer.json: unsupported post-processor type '" + type +
                "'; supported: TemplateProcessing, ByteLevel, RobertaProcessing, "
                "BertProcessing, Sequence");
  }
}

// tokenizer_config.json's bos_token / eos_token: a string, {"content": ...}, or null/missing.
std::string config_token(const nlohmann::json& config, const std::string& key) {
  if (!config.contains(key) || config[key].is_null()) return "";
  const nlohmann::json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  BX_CHECK(v.is_object() && v.contains("content") && v["content"].is_string(),
           "tokenizer_config.json: \"" + key + "\" is " + v.dump().substr(0, 80) +
               "; expected a string or {\"content\": ...}");
  return v["content"].get<std::string>();
}

}  // namespace

BpeTokenizerParts parse_tokenizer_json(const nlohmann::json& tokenizer,
                                       const nlohmann::json* config, const std::string& source) {
  try {
    BX_CHECK(tokenizer.is_object(), "tokenizer.json is not a JSON object");
    BX_CHECK(tokenizer.contains("model"), "tokenizer.json has no \"model\"");
    BpeTokenizerParts parts;
    parts.model = parse_model(tokenizer["model"]);
    const nlohmann::json null_json;
    auto field = [&](const char* key) -> const nlohmann::json& {
      return tokenizer.contains(key) ? tokenizer[key] : null_json;
    };
    parts.normalizer = Normalizer::from_json(field("normalizer"));
    parts.pre_tokenizer = PreTokenizer::from_json(field("pre_tokenizer"));
    parts.decoder = TokenDecoder::from_json(field("decoder"));
    parts.added_tokens = parse_added_tokens(tokenizer);
    parse_post_processor(field("post_processor"), parts);

    if (parts.special_prefix.size() == 1) parts.bos_id = parts.special_prefix[0];
    if (parts.special_suffix.size() == 1) parts.eos_id = parts.special_suffix[0];
    if (config != nullptr) {
      BX_CHECK(config->is_object(), "tokenizer_config.json is not a JSON object");
      for (const char* key : {"bos_token", "eos_token"}) {
        const std::string text = config_token(*config, key);
        if (text.empty()) continue;
        const int32_t id = find_id(parts, text);
        BX_CHECK(id >= 0, std::string("tokenizer_config.json: ") + key + " '" + text +
                              "' is not a token of tokenizer.json");
        (std::string(key) == "bos_token" ? parts.bos_id : parts.eos_id) = id;
      }
      const bool has_add_bos = config->contains("add_bos_token");
      const bool has_add_eos = config->contains("add_eos_token");
      if (has_add_bos || has_add_eos) {
        const bool add_bos =
            json_fields::boolean(*config, "add_bos_token", "tokenizer_config.json", false);
        const bool add_eos =
            json_fields::boolean(*config, "add_eos_token", "tokenizer_config.json", false);
        BX_CHECK(!add_bos || parts.bos_id >= 0,
                 "tokenizer_config.json: add_bos_token is true but there is no bos_token");
        BX_CHECK(!add_eos || parts.eos_id >= 0,
                 "tokenizer_config.json: add_eos_token is true but there is no eos_token");
        parts.special_prefix.clear();
        parts.special_suffix.clear();
        if (add_bos) parts.special_prefix.push_back(parts.bos_id);
        if (add_eos) parts.special_suffix.push_back(parts.eos_id);
      }
    }
    return parts;
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": " + e.what());
  }
}

}  // namespace bx
