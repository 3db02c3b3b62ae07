// bitexact render-chat: renders a conversation with a model's chat template and prints the
// prompt text exactly (nothing appended).
//
// --messages FILE holds a JSON array of messages, or an object {"messages": [...], ...} whose
// other keys (tools, documents, enable_thinking, ...) become template variables.
// --model takes a GGUF file (only its metadata is read) or a tokenizer directory;
// --tokenizer takes a directory with tokenizer_config.json.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "model/gguf.h"
#include "template/chat_template.h"

namespace bx::cli {
namespace {

struct RenderChatFlags {
  std::optional<std::string> model;
  std::optional<std::string> tokenizer;
  std::string messages_path;
  bool add_generation_prompt = false;
};

nlohmann::ordered_json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read messages file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::ordered_json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error("messages file '" + path + "' is not valid JSON: " + e.what());
  }
}

ChatTemplate load_template(const RenderChatFlags& f) {
  check(f.model.has_value() != f.tokenizer.has_value(),
        "give exactly one of --model PATH or --tokenizer DIR");
  const std::string path = f.model ? *f.model : *f.tokenizer;
  if (std::filesystem::is_directory(path)) return ChatTemplate::from_tokenizer_dir(path);
  check(f.model.has_value(), "--tokenizer '" + path + "' is not a directory");
  return ChatTemplate::from_gguf(gguf::File::open(path));
}

void run_render_chat(const RenderChatFlags& f) {
  const nlohmann::ordered_json input = read_json_file(f.messages_path);
  nlohmann::ordered_json messages;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  if (input.is_object()) {
    check(input.contains("messages"), "messages file '" + f.messages_path +
                                          "' is an object without \"messages\"; expected an "
                                          "array of messages or {\"messages\": [...], ...}");
    for (const auto& [key, value] : input.items()) {
      if (key == "messages") {
        messages = value;
      } else {
        extra[key] = value;
      }
    }
  } else {
    messages = input;
  }
  const ChatTemplate chat_template = load_template(f);
  const std::string text = chat_template.render(messages, f.add_generation_prompt, extra);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void register_render_chat(CLI::App& app) {
  auto flags = std::make_shared<RenderChatFlags>();
  CLI::App* cmd = app.add_subcommand(
      "render-chat", "Render a conversation with the model's chat template and print it exactly");
  cmd->add_option("--model", flags->model, "GGUF model file (metadata only) or tokenizer dir");
  cmd->add_option("--tokenizer", flags->tokenizer, "Directory with tokenizer_config.json");
  cmd->add_option("--messages", flags->messages_path,
                  "JSON file: an array of messages, or {\"messages\": [...], \"tools\": ...}")
      ->required();
  cmd->add_flag("--add-generation-prompt", flags->add_generation_prompt,
                "End with the header that starts the assistant's reply");
  cmd->callback([flags] { run_render_chat(*flags); });
}

}  // namespace bx::cli
