// libFuzzer target for the server's request parser (src/server/openai_request.h): the input is
// a request body, parsed as JSON (depth-limited) and then as each route's request. An ApiError
// is an accepted outcome, and its message must stay short (messages never echo unbounded input)
// and its status be 400 with a code. A request that parses must hold the documented ranges.
// Anything else escaping, a crash (such as a stack overflow on deep nesting) or a sanitizer
// report is a finding. Build and run: fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/api_error.h"
#include "server/openai_request.h"

namespace {

using bx::server::ApiError;

void check_error(const ApiError& e) {
  if (e.status() != 400 || std::string(e.what()).size() > 1024) __builtin_trap();
  if (e.to_json()["error"]["code"].is_null()) __builtin_trap();
}

template <class F>
void parse_as(const nlohmann::json& body, F f) {
  try {
    f(body);
  } catch (const ApiError& e) {
    check_error(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bx::server;
  const std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json body;
  try {
    body = parse_json_object(text);
  } catch (const ApiError& e) {
    check_error(e);
    return 0;
  }
  parse_as(body, [](const nlohmann::json& b) {
    const CompletionRequest r = parse_completion_request(b);
    if (r.prompts.empty() || r.prompts.size() > static_cast<size_t>(kMaxPrompts)) __builtin_trap();
    if (r.options.n < 1 || r.options.n > 64 || r.options.top_logprobs > 20) __builtin_trap();
    if (r.options.stop.size() > static_cast<size_t>(kMaxStopStrings)) __builtin_trap();
  });
  parse_as(body, [](const nlohmann::json& b) {
    const ChatRequest r = parse_chat_request(b);
    if (!r.messages.is_array() || r.messages.empty()) __builtin_trap();
  });
  parse_as(body, [](const nlohmann::json& b) {
    const ScoreRequest r = parse_score_request(b);
    if (r.continuation.empty()) __builtin_trap();
  });
  parse_as(body, [](const nlohmann::json& b) { (void)parse_tokenize_request(b); });
  parse_as(body, [](const nlohmann::json& b) { (void)parse_detokenize_request(b); });
  return 0;
}
