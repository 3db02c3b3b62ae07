#include "core/json.h"

#include <set>
#include <vector>

#include "core/error.h"

namespace bx {

nlohmann::json parse_json_strict(std::string_view text, const std::string& what, int max_depth) {
  using nlohmann::json;
  // One set of seen keys per open object, innermost last (arrays hold no keys directly).
  std::vector<std::set<std::string>> open_objects;
  const json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // depth counts the containers already open around this one (0 for the top level).
        if (depth + 1 > max_depth) {
          throw Error(what + ": JSON nests deeper than " + std::to_string(max_depth) +
                      " levels: expected at most " + std::to_string(max_depth));
        }
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.empty() && !open_objects.back().insert(key).second) {
          std::string shown = key.size() > 80 ? key.substr(0, 80) + "..." : key;
          throw Error(what + ": duplicate key \"" + shown + "\" in one JSON object: expected " +
                      "unique keys");
        }
        break;
      }
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
}

std::string json_type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      return "object";
    case nlohmann::json::value_t::array:
      return "array";
    case nlohmann::json::value_t::string:
      return "string";
    case nlohmann::json::value_t::boolean:
      return "boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "integer";
    case nlohmann::json::value_t::number_float:
      return "number";
    case nlohmann::json::value_t::null:
      return "null";
    default:
      return "unknown JSON value";
  }
}

}  // namespace bx
