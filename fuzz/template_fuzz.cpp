// libFuzzer target for the template interpreter: the input is a template source; it is parsed
// and, if it parses, rendered with a small conversation (messages, tools, special tokens) under
// tight limits. A bx::Error (syntax, type or limit error) is an accepted outcome; anything else
// escaping, a crash, a hang or a sanitizer report is a finding. Seeds: tests/data/templates.
// Build and run: see fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "template/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "hi {{ x }}"},
    {"role": "assistant", "content": "<think>r</think>a", "tool_calls": [
      {"id": "call12345", "type": "function",
       "function": {"name": "f", "arguments": {"a": [1, 2.5, null, true]}}}]},
    {"role": "tool", "tool_call_id": "call12345", "name": "f", "content": "42"}
  ])");
  static const nlohmann::ordered_json extra = nlohmann::ordered_json::parse(R"({
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
      "parameters": {"type": "object", "properties": {"a": {"type": ["string", "null"]}}}}}]
  })");
  bx::tmpl::RenderOptions options;
  options.now = 0;
  options.max_output_bytes = 1 << 16;
  options.max_steps = 20000;
  options.max_work = 1 << 22;
  try {
    const bx::ChatTemplate t(std::string(reinterpret_cast<const char*>(data), size),
                             {"<s>", "</s>", "", ""});
    (void)t.render(messages, true, extra, options);
  } catch (const bx::Error&) {
  }
  return 0;
}
