// Chat templates: turns a conversation (OpenAI-style message objects) into the prompt text a
// model was trained on, by rendering the model's Jinja chat template the way transformers'
// apply_chat_template does.
//
// The template sees: messages (the array as given), tools and documents (None unless `extra`
// has them), add_generation_prompt, the special-token strings bos_token, eos_token, unk_token
// and pad_token (each only when the model has it: empty means absent, as transformers leaves
// out tokens that are None), then every key of `extra` (which may override the above, e.g.
// enable_thinking, tools, date_string).
//
// Sources: a tokenizer directory's tokenizer_config.json `chat_template` (a string, or a list
// of {name, template} from which "default" is used), or its chat_template.jinja file; or a GGUF
// file's `tokenizer.chat_template`, with the special tokens looked up in tokenizer.ggml.tokens
// by tokenizer.ggml.bos_token_id / eos_token_id. Special tokens in tokenizer_config.json may be
// plain strings or AddedToken objects ({"content": ...}).
// Message and tool objects keep their key order (nlohmann::ordered_json), so `tojson` prints
// them in the order the client sent, as Python's json would.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "template/template.h"

namespace bx {

namespace gguf {
class File;
}

class ChatTemplate {
 public:
  struct SpecialTokens {
    std::string bos_token;  // each: empty when the model has none (then left undefined)
    std::string eos_token;
    std::string unk_token;
    std::string pad_token;
  };

  // Parses `source` (a bx::Error "template:LINE:COL: ..." on a syntax error).
  ChatTemplate(std::string_view source, SpecialTokens tokens);

  // From a directory holding tokenizer_config.json (and possibly chat_template.jinja).
  static ChatTemplate from_tokenizer_dir(const std::string& dir);
  // From a parsed tokenizer_config.json; `where` names it in error messages.
  static ChatTemplate from_tokenizer_config(const nlohmann::ordered_json& config,
                                            const std::string& where);
  // From a GGUF file's metadata (the tensors are not read).
  static ChatTemplate from_gguf(const gguf::File& file);
  // The template of a model path (a GGUF file, or a directory with tokenizer_config.json), or
  // nullopt when the model has none (a random: spec never has one). A template that is there
  // but broken is a bx::Error.
  static std::optional<ChatTemplate> of_model(const std::string& path);

  // Renders the conversation. `messages` must be an array of objects; `extra` an object (or
  // null). Throws bx::Error for bad input and for template errors (with line and column).
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra = nullptr,
                     const tmpl::RenderOptions& options = {}) const;

  const SpecialTokens& special_tokens() const { return tokens_; }

 private:
  tmpl::Template template_;
  SpecialTokens tokens_;
};

}  // namespace bx
