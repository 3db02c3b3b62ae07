// bitexact score: the logprob of each given continuation token after a prompt, by teacher
// forcing. The numbers equal, bit for bit, the logprobs `generate` reports for the same tokens.
#include <CLI/CLI.hpp>
#include <charconv>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"

namespace bx::cli {
namespace {

struct ScoreFlags {
  ModelFlags model;
  EngineFlags engine;
  std::string prompt;
  std::string continuation_ids;
  std::string format = "json";
};

// "12,7,9" (spaces allowed around the commas) -> ids.
std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    size_t a = at, b = comma;
    while (a < b && text[a] == ' ') ++a;
    while (b > a && text[b - 1] == ' ') --b;
    int32_t id = 0;
    const auto [ptr, ec] = std::from_chars(text.data() + a, text.data() + b, id);
    check(a < b && ec == std::errc() && ptr == text.data() + b,
          "--continuation-ids is '" + text + "', expected token ids separated by commas");
    ids.push_back(id);
    at = comma + 1;
  }
  return ids;
}

void run_score(ScoreFlags& f) {
  check(f.format == "json" || f.format == "text",
        "--format is '" + f.format + "', expected json or text");
  const std::vector<int32_t> continuation = parse_ids(f.continuation_ids);
  LoadOptions load_options;
  EngineOptions engine_options;
  apply_engine_flags(f.engine, load_options, engine_options);
  LoadedModel model = load_with_progress(f.model, load_options);
  Engine engine(model, engine_options);
  const EngineEvent scored =
      engine.score(require_tokenizer(model, "score --prompt").encode(f.prompt, /*add_bos=*/true),
                   continuation);

  if (f.format == "text") {
    for (size_t i = 0; i < continuation.size(); ++i) {
      std::cout << continuation[i] << "\t" << format_float(scored.score_logprobs[i]) << "\n";
    }
    return;
  }
  std::string out = "{\"token_ids\": [";
  for (size_t i = 0; i < continuation.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(continuation[i]);
  }
  out += "], \"logprobs\": [";
  for (size_t i = 0; i < scored.score_logprobs.size(); ++i) {
    out += (i ? ", " : "") + format_float(scored.score_logprobs[i]);
  }
  std::cout << out << "]}\n";
}

}  // namespace

void register_score(CLI::App& app) {
  auto flags = std::make_shared<ScoreFlags>();
  CLI::App* cmd = app.add_subcommand(
      "score", "Logprobs of given continuation tokens after a prompt (teacher forcing)");
  add_model_flags(*cmd, flags->model);
  cmd->add_option("--prompt", flags->prompt, "Prompt text (BOS is added)")->required();
  cmd->add_option("--continuation-ids", flags->continuation_ids,
                  "Token ids to score, e.g. 12,7,9")
      ->required();
  cmd->add_option("--format", flags->format, "json (default) or text (id<TAB>logprob lines)");
  add_engine_flags(*cmd, flags->engine);
  cmd->callback([flags] { run_score(*flags); });
}

}  // namespace bx::cli
