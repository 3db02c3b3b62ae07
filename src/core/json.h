// Strict JSON parsing for files read at load time (safetensors headers, config.json, index
// files): nlohmann::json, plus two checks its parser does not make itself.
//   - a key repeated inside one object is an error (JSON leaves it undefined; two readers of the
//     same file could otherwise see different values);
//   - objects and arrays nest at most max_depth levels (the top-level value is level 1), so a
//     hostile file cannot make the tree arbitrarily deep.
// Syntax errors, invalid UTF-8 and the checks above are one bx::Error: "<what>: <reason>".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace bx {

nlohmann::json parse_json_strict(std::string_view text, const std::string& what, int max_depth);

// The JSON type of a value, for messages: "object", "array", "string", "integer", "number",
// "boolean", "null".
std::string json_type_name(const nlohmann::json& value);

}  // namespace bx
