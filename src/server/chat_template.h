// Chat messages -> prompt text. The chat endpoint takes the renderer as a plain function: `serve`
// plugs in the model's own Jinja template (src/template) when the model has one, or a built-in
// format named on the command line (as llama.cpp's --chat-template chatml); with neither,
// /v1/chat/completions answers 400 naming the missing template.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace bx::server {

struct ChatTemplate {
  std::string name;
  // messages: [{"role": string, "content": string}] (openai_request.h); returns the prompt text,
  // ending with the assistant's turn opened when add_generation_prompt.
  std::function<std::string(const nlohmann::json& messages, bool add_generation_prompt)> render;
  bool add_bos = true;  // whether the tokenizer's BOS goes before the rendered text
};

// Built-in formats by name: "chatml" (<|im_start|>role\ncontent<|im_end|>\n ...). nullopt for an
// unknown name.
std::optional<ChatTemplate> builtin_chat_template(std::string_view name);

}  // namespace bx::server
