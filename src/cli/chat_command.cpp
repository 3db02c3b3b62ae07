// bitexact chat: an interactive conversation with a model through its own chat template,
// streaming each reply as it is generated.
//
// Each line read from stdin is one user message ("/reset" forgets the conversation, "/exit"
// or end of input quits). The whole conversation is rendered with the model's template
// (add_generation_prompt) and tokenized with special-token strings recognised; the reply runs
// through the engine until an EOS id of the model or --max-tokens. One engine serves every
// turn, so the prefix cache reuses the blocks of the conversation so far.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "template/chat_template.h"

namespace bx::cli {
namespace {

struct ChatFlags {
  ModelFlags model;
  EngineFlags engine;
  std::optional<std::string> system;
  int max_tokens = 512;
  SamplingParams sampling = {0.0f, 0, 1.0f, 0.0f, 0};  // greedy unless asked
  std::string seed = "0";
};

ChatTemplate load_chat_template(const std::string& path) {
  std::optional<ChatTemplate> t = ChatTemplate::of_model(path);
  check(t.has_value(), path + " has no chat template (tokenizer.chat_template in a GGUF file, " +
                           "chat_template in a folder's tokenizer_config.json); use generate");
  return std::move(*t);
}

void run_chat(ChatFlags& f) {
  f.sampling.seed = parse_seed(f.seed);
  validate(f.sampling);
  check(f.max_tokens > 0,
        "--max-tokens is " + std::to_string(f.max_tokens) + ", expected a positive number");
  LoadOptions load_options;
  EngineOptions engine_options;
  apply_engine_flags(f.engine, load_options, engine_options);
  const ChatTemplate chat_template =
      load_chat_template(f.model.tokenizer.empty() ? f.model.model_path : f.model.tokenizer);
  LoadedModel model = load_with_progress(f.model, load_options);
  const Tokenizer& tokenizer = require_tokenizer(model, "chat");
  Engine engine(model, engine_options);

  const bool interactive = isatty(STDIN_FILENO) != 0;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  const auto reset = [&] {
    messages = nlohmann::ordered_json::array();
    if (f.system) messages.push_back({{"role", "system"}, {"content", *f.system}});
  };
  reset();
  if (interactive) std::fprintf(stderr, "(one message a line; /reset forgets, /exit quits)\n");
  std::string line;
  while (true) {
    if (interactive) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line == "/reset") {
      reset();
      continue;
    }
    messages.push_back({{"role", "user"}, {"content", line}});
    const std::string prompt = chat_template.render(messages, /*add_generation_prompt=*/true);
    EngineRequest request;
    request.prompt = tokenizer.encode(prompt, /*add_special=*/false);
    request.sampling = f.sampling;
    request.max_tokens = f.max_tokens;
    const std::shared_ptr<RequestStream> stream = engine.submit(std::move(request));
    std::string reply;
    bool more = true;
    while (more) {
      more = engine.step();
      while (std::optional<EngineEvent> e = stream->try_next()) {
        reply += e->text;
        std::cout << e->text << std::flush;
      }
    }
    std::cout << "\n" << std::flush;
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
}

}  // namespace

void register_chat(CLI::App& app) {
  auto flags = std::make_shared<ChatFlags>();
  CLI::App* cmd =
      app.add_subcommand("chat", "Chat with the model through its chat template (stdin lines)");
  add_model_flags(*cmd, flags->model);
  cmd->add_option("--system", flags->system, "A system message to start the conversation");
  cmd->add_option("--max-tokens", flags->max_tokens, "Most tokens of one reply (512)");
  cmd->add_option("--temperature", flags->sampling.temperature, "0 = greedy (0)");
  cmd->add_option("--top-k", flags->sampling.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", flags->sampling.top_p, "Nucleus sampling mass in (0, 1] (1.0)");
  cmd->add_option("--min-p", flags->sampling.min_p, "Drop tokens below min_p * p_max (0)");
  cmd->add_option("--seed", flags->seed, "Sampling seed, 0 to 2^64-1 (0)");
  add_engine_flags(*cmd, flags->engine);
  cmd->callback([flags] { run_chat(*flags); });
}

}  // namespace bx::cli
