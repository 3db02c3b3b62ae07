// Typed reads of tokenizer.json fields with one clear bx::Error for a missing or mistyped field,
// naming the field, the component it belongs to and the expected JSON type.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/unicode_regex.h"

namespace bx::json_fields {

// The "type" string of a component object (`what`: "normalizer", "pre-tokenizer", ...).
std::string type_of(const nlohmann::json& spec, const std::string& what);
const nlohmann::json& array(const nlohmann::json& spec, const std::string& key,
                            const std::string& what);
std::string string(const nlohmann::json& spec, const std::string& key, const std::string& what);
// A missing or null field gives `fallback`.
bool boolean(const nlohmann::json& spec, const std::string& key, const std::string& what,
             bool fallback);
int64_t integer(const nlohmann::json& spec, const std::string& key, const std::string& what,
                int64_t fallback);
// `pattern`: {"String": s} or {"Regex": r}.
TextPattern pattern(const nlohmann::json& spec, const std::string& what);

}  // namespace bx::json_fields
