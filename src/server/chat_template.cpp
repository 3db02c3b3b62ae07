#include "server/chat_template.h"

namespace bx::server {

std::optional<ChatTemplate> builtin_chat_template(std::string_view name) {
  if (name == "chatml") {
    ChatTemplate t;
    t.name = "chatml";
    t.render = [](const nlohmann::json& messages, bool add_generation_prompt) {
      std::string out;
      for (const nlohmann::json& m : messages) {
        out += "<|im_start|>" + m.at("role").get<std::string>() + "\n" +
               m.at("content").get<std::string>() + "<|im_end|>\n";
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    };
    return t;
  }
  return std::nullopt;
}

}  // namespace bx::server
