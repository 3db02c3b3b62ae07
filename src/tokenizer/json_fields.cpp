#include "tokenizer/json_fields.h"

#include "core/error.h"

namespace bx::json_fields {

std::string type_of(const nlohmann::json& spec, const std::string& what) {
  BX_CHECK(spec.is_object() && spec.contains("type") && spec["type"].is_string(),
           "tokenizer.json: a " + what + " is not an object with a string \"type\"; got " +
               spec.dump().substr(0, 80));
  return spec["type"].get<std::string>();
}

const nlohmann::json& array(const nlohmann::json& spec, const std::string& key,
                            const std::string& what) {
  BX_CHECK(spec.contains(key) && spec[key].is_array(),
           "tokenizer.json: " + what + " has no array \"" + key + "\"");
  return spec[key];
}

std::string string(const nlohmann::json& spec, const std::string& key, const std::string& what) {
  BX_CHECK(spec.contains(key) && spec[key].is_string(),
           "tokenizer.json: " + what + " has no string \"" + key + "\"");
  return spec[key].get<std::string>();
}

bool boolean(const nlohmann::json& spec, const std::string& key, const std::string& what,
             bool fallback) {
  if (!spec.contains(key) || spec[key].is_null()) return fallback;
  BX_CHECK(spec[key].is_boolean(),
           "tokenizer.json: " + what + " field \"" + key + "\" is not true or false");
  return spec[key].get<bool>();
}

int64_t integer(const nlohmann::json& spec, const std::string& key, const std::string& what,
                int64_t fallback) {
  if (!spec.contains(key) || spec[key].is_null()) return fallback;
  BX_CHECK(spec[key].is_number_integer(),
           "tokenizer.json: " + what + " field \"" + key + "\" is not an integer");
  return spec[key].get<int64_t>();
}

TextPattern pattern(const nlohmann::json& spec, const std::string& what) {
  BX_CHECK(spec.contains("pattern") && spec["pattern"].is_object(),
           "tokenizer.json: " + what + " has no \"pattern\" object");
  const nlohmann::json& p = spec["pattern"];
  if (p.contains("String") && p["String"].is_string()) {
    return TextPattern::literal(p["String"].get<std::string>());
  }
  if (p.contains("Regex") && p["Regex"].is_string()) {
    return TextPattern::regex(p["Regex"].get<std::string>());
  }
  throw Error("tokenizer.json: " + what + " pattern is " + p.dump().substr(0, 80) +
              "; expected {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace bx::json_fields
