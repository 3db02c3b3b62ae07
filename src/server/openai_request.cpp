#include "server/openai_request.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "server/api_error.h"

namespace bx::server {
namespace {

using nlohmann::json;

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// At most kShownChars characters of v as JSON, for error messages. Iterative (an explicit stack
// of container iterators), so no value, however deep, recurses here.
std::string shown(const json& v) {
  constexpr size_t kShownChars = 60;
  std::string out;
  const auto scalar = [&](const json& x) {
    if (x.is_string() && x.get_ref<const std::string&>().size() > kShownChars) {
      out += json(x.get_ref<const std::string&>().substr(0, kShownChars))
                 .dump(-1, ' ', false, json::error_handler_t::replace);
    } else {
      out += x.dump(-1, ' ', false, json::error_handler_t::replace);
    }
  };
  struct Frame {
    json::const_iterator at, end;
    bool object, first;
  };
  std::vector<Frame> stack;
  const auto open = [&](const json& x) {
    if (!x.is_structured()) return scalar(x);
    out += x.is_object() ? '{' : '[';
    stack.push_back({x.cbegin(), x.cend(), x.is_object(), true});
  };
  open(v);
  while (!stack.empty() && out.size() <= kShownChars) {
    Frame& f = stack.back();
    if (f.at == f.end) {
      out += f.object ? '}' : ']';
      stack.pop_back();
      continue;
    }
    if (!f.first) out += ',';
    f.first = false;
    const json::const_iterator item = f.at++;
    if (f.object)
      out += json(item.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ':';
    open(*item);  // may push: f is not used after this
  }
  if (out.size() > kShownChars) out = out.substr(0, kShownChars - 3) + "...";
  return out;
}

// The deepest nesting of arrays and objects in a JSON text (brackets outside strings), in one
// pass without recursion. Exact for valid JSON; for the error message of parse_json_object.
size_t nesting_depth(const std::string& text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// Typed, range-checked access to the fields of one JSON object.
class Fields {
 public:
  explicit Fields(const json& object) : object_(object) {}

  const json* get(const char* key) const {
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::optional<double> number(const char* key, double lo, double hi, bool lo_open = false) const {
    const json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) throw wrong_type(key, *v, "a number");
    const double x = v->get<double>();
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi)) {
      throw invalid_field(key, std::string(key) + " is " + shown(*v) + ", expected a number in " +
                                   (lo_open ? "(" : "[") + fmt(lo) + ", " + fmt(hi) + "]");
    }
    return x;
  }

  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) const {
    const json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) throw wrong_type(key, *v, "an integer");
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
      throw out_of_range(key, *v, lo, hi);
    }
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) throw out_of_range(key, *v, lo, hi);
    return x;
  }

  std::optional<bool> boolean(const char* key) const {
    const json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) throw wrong_type(key, *v, "a boolean");
    return v->get<bool>();
  }

  std::optional<std::string> string(const char* key) const {
    const json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) throw wrong_type(key, *v, "a string");
    return v->get<std::string>();
  }

  static ApiError wrong_type(const std::string& key, const json& v, const char* expected) {
    return invalid_field(key,
                         key + " is " + type_name(v) + " (" + shown(v) + "), expected " + expected);
  }

 private:
  static std::string fmt(double x) {
    std::string s = std::to_string(x);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  static ApiError out_of_range(const std::string& key, const json& v, int64_t lo, int64_t hi) {
    std::string range = hi == std::numeric_limits<int64_t>::max()
                            ? ">= " + std::to_string(lo)
                            : std::to_string(lo) + " to " + std::to_string(hi);
    return invalid_field(key, key + " is " + shown(v) + ", expected an integer " + range);
  }

  const json& object_;
};

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();

std::vector<int32_t> token_ids(const json& v, const std::string& param) {
  if (!v.is_array()) throw Fields::wrong_type(param, v, "an array of token ids");
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (const json& id : v) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kIntMax) {
      throw invalid_field(
          param, param + " holds " + shown(id) + ", expected token ids (non-negative integers)");
    }
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return ids;
}

void reject_unsupported(const Fields& f) {
  const auto reject = [](const char* key, const std::string& why) {
    throw ApiError(400, "invalid_request_error",
                   std::string(key) + " is not supported by this server (" + why + ")", key,
                   "unsupported_parameter");
  };
  for (const char* key : {"frequency_penalty", "presence_penalty"}) {
    if (const auto x = f.number(key, -2.0, 2.0); x && *x != 0.0) reject(key, "only 0 is");
  }
  if (const json* v = f.get("repetition_penalty"); v && !(v->is_number() && *v == 1.0)) {
    reject("repetition_penalty", "only 1 is");
  }
  if (const json* v = f.get("logit_bias"); v && !(v->is_object() && v->empty())) {
    reject("logit_bias", "only an empty object is");
  }
  if (const json* v = f.get("suffix"); v && !(v->is_string() && v->get<std::string>().empty())) {
    reject("suffix", "only an empty suffix is");
  }
  for (const char* key : {"tools", "functions"}) {
    if (const json* v = f.get(key); v && !(v->is_array() && v->empty())) reject(key, "no tools");
  }
  if (const json* v = f.get("response_format");
      v && !(v->is_object() && v->value("type", "") == "text")) {
    reject("response_format", "only {\"type\": \"text\"} is");
  }
}

GenerationOptions parse_generation(const Fields& f, bool chat) {
  reject_unsupported(f);
  GenerationOptions o;
  o.model = f.string("model").value_or("");
  if (auto x = f.number("temperature", 0.0, 2.0)) o.sampling.temperature = static_cast<float>(*x);
  if (auto x = f.number("top_p", 0.0, 1.0, /*lo_open=*/true)) {
    o.sampling.top_p = static_cast<float>(*x);
  }
  if (auto x = f.integer("top_k", -1, kIntMax))
    o.sampling.top_k = static_cast<int32_t>(*x < 0 ? 0 : *x);
  if (auto x = f.number("min_p", 0.0, 1.0)) o.sampling.min_p = static_cast<float>(*x);
  if (const json* seed = f.get("seed")) {
    if (!seed->is_number_integer()) throw Fields::wrong_type("seed", *seed, "an integer");
    o.sampling.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                                 : static_cast<uint64_t>(seed->get<int64_t>());
  }
  if (auto x = f.integer("n", 1, 64)) o.n = static_cast<int>(*x);
  if (const auto best_of = f.integer("best_of", 1, 64); best_of && *best_of != o.n) {
    throw ApiError(400, "invalid_request_error",
                   "best_of is not supported by this server (only best_of = n is)", "best_of",
                   "unsupported_parameter");
  }
  const int64_t min_max_tokens = chat ? 1 : 0;
  if (auto x = f.integer("max_tokens", min_max_tokens, kIntMax))
    o.max_tokens = static_cast<int>(*x);
  if (chat) {
    if (auto x = f.integer("max_completion_tokens", 1, kIntMax)) {
      o.max_tokens = static_cast<int>(*x);
    }
  }
  if (auto x = f.integer("min_tokens", 0, kIntMax)) o.min_tokens = static_cast<int>(*x);
  if (o.max_tokens && o.min_tokens > *o.max_tokens) {
    throw invalid_field("min_tokens", "min_tokens is " + std::to_string(o.min_tokens) +
                                          ", expected at most max_tokens (" +
                                          std::to_string(*o.max_tokens) + ")");
  }
  o.ignore_eos = f.boolean("ignore_eos").value_or(false);
  if (const json* stop = f.get("stop")) {
    if (stop->is_string()) {
      o.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& s : *stop) {
        if (!s.is_string()) throw Fields::wrong_type("stop", s, "a string or an array of strings");
        o.stop.push_back(s.get<std::string>());
      }
    } else {
      throw Fields::wrong_type("stop", *stop, "a string or an array of strings");
    }
    if (o.stop.size() > static_cast<size_t>(kMaxStopStrings)) {
      throw invalid_field("stop", "stop has " + std::to_string(o.stop.size()) +
                                      " strings, expected at most " +
                                      std::to_string(kMaxStopStrings));
    }
    for (const std::string& s : o.stop) {
      if (s.empty()) throw invalid_field("stop", "stop holds an empty string");
    }
  }
  if (const json* ids = f.get("stop_token_ids"))
    o.stop_token_ids = token_ids(*ids, "stop_token_ids");
  o.return_token_ids = f.boolean("return_token_ids").value_or(false);
  o.stream = f.boolean("stream").value_or(false);
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) throw Fields::wrong_type("stream_options", *so, "an object");
    if (!o.stream) {
      throw invalid_field("stream_options", "stream_options is only allowed when stream is true");
    }
    o.include_usage = Fields(*so).boolean("include_usage").value_or(false);
  }
  if (chat) {
    o.logprobs = f.boolean("logprobs").value_or(false);
    if (auto x = f.integer("top_logprobs", 0, 20)) {
      if (!o.logprobs && *x > 0) {
        throw invalid_field("top_logprobs", "top_logprobs needs logprobs set to true");
      }
      o.top_logprobs = static_cast<int>(*x);
    }
  } else if (auto x = f.integer("logprobs", 0, 20)) {
    o.logprobs = true;
    o.top_logprobs = static_cast<int>(*x);
  }
  return o;
}

const json& require_object(const json& body) {
  if (!body.is_object()) {
    throw ApiError(400, "invalid_request_error",
                   "the request body is " + type_name(body) + ", expected a JSON object", "body",
                   "invalid_json");
  }
  return body;
}

PromptInput parse_prompt(const json& v, const std::string& param) {
  PromptInput p;
  if (v.is_string()) {
    p.text = v.get<std::string>();
  } else {
    p.ids = token_ids(v, param);
    if (p.ids.empty()) throw invalid_field(param, param + " is an empty list of token ids");
  }
  return p;
}

}  // namespace

json parse_json_object(const std::string& body) {
  // The parser keeps its own stack (no recursion), and the callback stops it at the first array
  // or object that would nest deeper than kMaxJsonDepth, before any of it is built.
  struct TooDeep {};
  const json::parser_callback_t limit_depth = [](int depth, json::parse_event_t event, json&) {
    // depth: the number of containers around the one that starts here.
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth) {
      throw TooDeep{};
    }
    return true;
  };
  json parsed;
  try {
    parsed = json::parse(body, limit_depth, /*allow_exceptions=*/false);
  } catch (const TooDeep&) {
    throw ApiError(400, "invalid_request_error",
                   "the request body nests JSON arrays and objects " +
                       std::to_string(nesting_depth(body)) + " levels deep; expected at most " +
                       std::to_string(kMaxJsonDepth),
                   "body", "json_too_deep");
  }
  if (parsed.is_discarded()) {
    throw ApiError(400, "invalid_request_error",
                   "the request body is not valid JSON; expected a JSON object", "body",
                   "invalid_json");
  }
  require_object(parsed);
  return parsed;
}

CompletionRequest parse_completion_request(const json& body) {
  const Fields f(require_object(body));
  CompletionRequest r;
  r.options = parse_generation(f, /*chat=*/false);
  r.echo = f.boolean("echo").value_or(false);
  const json* prompt = f.get("prompt");
  if (prompt == nullptr) throw invalid_field("prompt", "prompt is missing");
  // A string, token ids, or a list of either.
  if (prompt->is_string() || (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number())) {
    r.prompts.push_back(parse_prompt(*prompt, "prompt"));
  } else if (prompt->is_array()) {
    if (prompt->empty()) throw invalid_field("prompt", "prompt is an empty list");
    for (const json& item : *prompt) {
      if (!item.is_string() && !item.is_array()) {
        throw Fields::wrong_type("prompt", item,
                                 "a string, token ids, or a list of strings or of token-id lists");
      }
      r.prompts.push_back(parse_prompt(item, "prompt"));
    }
  } else {
    throw Fields::wrong_type("prompt", *prompt,
                             "a string, token ids, or a list of strings or of token-id lists");
  }
  if (r.prompts.size() > static_cast<size_t>(kMaxPrompts)) {
    throw invalid_field("prompt", "prompt holds " + std::to_string(r.prompts.size()) +
                                      " prompts, expected at most " + std::to_string(kMaxPrompts));
  }
  return r;
}

ChatRequest parse_chat_request(const json& body) {
  const Fields f(require_object(body));
  ChatRequest r;
  r.options = parse_generation(f, /*chat=*/true);
  const json* messages = f.get("messages");
  if (messages == nullptr) throw invalid_field("messages", "messages is missing");
  if (!messages->is_array() || messages->empty()) {
    throw invalid_field("messages", "messages is " + type_name(*messages) +
                                        ", expected a non-empty array of messages");
  }
  r.messages = json::array();
  for (const json& m : *messages) {
    if (!m.is_object()) throw Fields::wrong_type("messages", m, "an object with role and content");
    const Fields mf(m);
    const std::optional<std::string> role = mf.string("role");
    if (!role || !(*role == "system" || *role == "developer" || *role == "user" ||
                   *role == "assistant" || *role == "tool")) {
      throw invalid_field("messages", "a message's role is " +
                                          (role ? shown(json(*role)) : "missing") +
                                          ", expected system, developer, user, assistant or tool");
    }
    std::string content;
    if (const json* c = mf.get("content")) {
      if (c->is_string()) {
        content = c->get<std::string>();
      } else if (c->is_array()) {
        for (const json& part : *c) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
              !part["text"].is_string()) {
            throw invalid_field("messages", "a content part is " + shown(part) +
                                                ", expected {\"type\": \"text\", \"text\": ...}");
          }
          content += part["text"].get<std::string>();
        }
      } else {
        throw Fields::wrong_type("messages", *c, "content as a string or an array of text parts");
      }
    } else if (*role != "assistant") {
      throw invalid_field("messages", "a " + *role + " message has no content");
    }
    r.messages.push_back({{"role", *role}, {"content", content}});
  }
  return r;
}

ScoreRequest parse_score_request(const json& body) {
  const Fields f(require_object(body));
  ScoreRequest r;
  r.model = f.string("model").value_or("");
  const json* prompt = f.get("prompt");
  if (prompt == nullptr) throw invalid_field("prompt", "prompt is missing");
  if (!prompt->is_string() && !prompt->is_array()) {
    throw Fields::wrong_type("prompt", *prompt, "a string or token ids");
  }
  r.prompt = parse_prompt(*prompt, "prompt");
  const json* continuation = f.get("continuation");
  if (continuation == nullptr) throw invalid_field("continuation", "continuation is missing");
  r.continuation = token_ids(*continuation, "continuation");
  if (r.continuation.empty()) {
    throw invalid_field("continuation", "continuation is empty, expected at least one token id");
  }
  r.prompt_logprobs = f.boolean("prompt_logprobs").value_or(false);
  return r;
}

TokenizeRequest parse_tokenize_request(const json& body) {
  const Fields f(require_object(body));
  TokenizeRequest r;
  r.model = f.string("model").value_or("");
  const std::optional<std::string> prompt = f.string("prompt");
  if (!prompt) throw invalid_field("prompt", "prompt is missing");
  r.prompt = *prompt;
  r.add_special_tokens = f.boolean("add_special_tokens").value_or(true);
  return r;
}

DetokenizeRequest parse_detokenize_request(const json& body) {
  const Fields f(require_object(body));
  DetokenizeRequest r;
  r.model = f.string("model").value_or("");
  const json* tokens = f.get("tokens");
  if (tokens == nullptr) throw invalid_field("tokens", "tokens is missing");
  r.tokens = token_ids(*tokens, "tokens");
  return r;
}

}  // namespace bx::server
