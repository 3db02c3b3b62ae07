// bitexact generate: complete one prompt or a file of prompts, all run through the engine.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "engine/completion.h"

namespace bx::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  EngineFlags engine;
  std::optional<std::string> prompt;
  std::optional<std::string> prompts_file;
  std::optional<std::string> prompt_ids;  // "5,17,300": token ids, for models without tokenizer
  int max_tokens = 128;
  int min_tokens = 0;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  SamplingParams sampling;
  std::string seed = "0";  // parsed strictly: CLI11 would wrap "-1" into 2^64 - 1
  std::string format = "text";
};

std::vector<std::string> read_prompts_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read prompts file '" + path + "'");
  std::vector<std::string> prompts;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    prompts.push_back(line);
  }
  check(!in.bad(), "error while reading prompts file '" + path + "'");
  check(!prompts.empty(), "prompts file '" + path + "' has no lines; expected one prompt a line");
  return prompts;
}

// "5,17,300" (commas or spaces between ids) -> {5, 17, 300}.
std::vector<int32_t> parse_prompt_ids(const std::string& text) {
  std::vector<int32_t> ids;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    if (*p == ',' || *p == ' ') {
      ++p;
      continue;
    }
    int32_t id = 0;
    const auto [next, ec] = std::from_chars(p, end, id);
    check(ec == std::errc() && next != p && id >= 0,
          "--prompt-ids is '" + text + "', expected token ids >= 0 separated by commas");
    ids.push_back(id);
    p = next;
  }
  check(!ids.empty(), "--prompt-ids is empty, expected at least one token id");
  return ids;
}

void validate_flags(const GenerateFlags& f) {
  check(f.prompt.has_value() + f.prompts_file.has_value() + f.prompt_ids.has_value() == 1,
        "give exactly one of --prompt TEXT, --prompts-file FILE or --prompt-ids IDS");
  check(f.max_tokens >= 0,
        "--max-tokens is " + std::to_string(f.max_tokens) + ", expected a number >= 0");
  check(f.format == "text" || f.format == "json",
        "--format is '" + f.format + "', expected text or json");
  validate(f.sampling);
}

std::string json_line(const std::string& prompt, const Completion& c) {
  const auto escape = [](const std::string& s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  std::string out = "{\"prompt\": " + escape(prompt) + ", \"token_ids\": [";
  for (size_t i = 0; i < c.tokens.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(c.tokens[i]);
  }
  out += "], \"logprobs\": [";
  for (size_t i = 0; i < c.logprobs.size(); ++i) {
    out += (i ? ", " : "") + format_float(c.logprobs[i]);
  }
  out += "], \"text\": " + escape(c.text) + ", \"finish_reason\": \"" +
         std::string(finish_reason_name(c.finish)) + "\"}";
  return out;
}

void run_generate(GenerateFlags& f) {
  f.sampling.seed = parse_seed(f.seed);
  validate_flags(f);
  LoadOptions load_options;
  EngineOptions engine_options;
  apply_engine_flags(f.engine, load_options, engine_options);
  const std::vector<int32_t> prompt_ids =
      f.prompt_ids ? parse_prompt_ids(*f.prompt_ids) : std::vector<int32_t>{};
  const std::vector<std::string> prompts =
      f.prompt_ids ? std::vector<std::string>{*f.prompt_ids}
      : f.prompt   ? std::vector<std::string>{*f.prompt}
                   : read_prompts_file(*f.prompts_file);

  LoadedModel model = load_with_progress(f.model, load_options);
  const Tokenizer* tokenizer =
      f.prompt_ids ? nullptr : &require_tokenizer(model, "generate (text in, text out)");
  Engine engine(model, engine_options);

  std::vector<EngineRequest> requests(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EngineRequest& r = requests[i];
    r.prompt = tokenizer ? tokenizer->encode(prompts[i], /*add_bos=*/true) : prompt_ids;
    r.sampling = f.sampling;
    r.max_tokens = f.max_tokens;
    r.min_tokens = f.min_tokens;
    r.ignore_eos = f.ignore_eos;
    r.stop = f.stop;
  }
  // Every request is checked before anything is printed or queued.
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (EngineRequest& r : requests) streams.push_back(engine.submit(std::move(r)));

  // One prompt as text streams its completion as it is generated (ids: one line at the end).
  const bool stream = f.format == "text" && prompts.size() == 1 && tokenizer != nullptr;
  if (stream) std::cout << prompts[0] << std::flush;
  std::vector<Completion> completions(prompts.size());
  bool more = true;
  while (more) {
    more = engine.step();
    for (size_t i = 0; i < streams.size(); ++i) {
      while (std::optional<EngineEvent> e = streams[i]->try_next()) {
        const std::string& text = completions[i].apply(*e);
        if (stream) std::cout << text << std::flush;
      }
    }
  }
  if (stream) {
    std::cout << "\n";
    return;
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (f.format == "json") {
      std::cout << json_line(prompts[i], completions[i]) << "\n";
    } else if (tokenizer == nullptr) {  // token ids in, token ids out
      for (size_t t = 0; t < completions[i].tokens.size(); ++t) {
        std::cout << (t ? " " : "") << completions[i].tokens[t];
      }
      std::cout << "\n";
    } else {
      std::cout << prompts[i] << completions[i].text << "\n\n";
    }
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Complete prompts with the model");
  add_model_flags(*cmd, flags->model);
  cmd->add_option("--prompt", flags->prompt, "Prompt text (\"\" starts from BOS alone)");
  cmd->add_option("--prompts-file", flags->prompts_file,
                  "File with one prompt a line; all run through the engine together");
  cmd->add_option("--prompt-ids", flags->prompt_ids,
                  "Prompt as token ids (\"5,17,300\"): no tokenizer needed, e.g. for "
                  "--model random:qwen3-tiny; text output is the generated ids");
  cmd->add_option("--max-tokens", flags->max_tokens,
                  "Tokens to generate per prompt (128); generation also ends at the context size");
  cmd->add_option("--min-tokens", flags->min_tokens, "EOS and stop strings only after this many (0)");
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "Go on generating after EOS");
  cmd->add_option("--stop", flags->stop, "Stop string (repeatable); the output ends before it");
  cmd->add_option("--temperature", flags->sampling.temperature, "0 = greedy (1.0)");
  cmd->add_option("--top-k", flags->sampling.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", flags->sampling.top_p, "Nucleus sampling mass in (0, 1] (1.0)");
  cmd->add_option("--min-p", flags->sampling.min_p, "Drop tokens below min_p * p_max (0)");
  cmd->add_option("--seed", flags->seed, "Sampling seed, 0 to 2^64-1 (0)");
  cmd->add_option("--format", flags->format, "text or json (one object per prompt per line)");
  add_engine_flags(*cmd, flags->engine);
  cmd->callback([flags] { run_generate(*flags); });
}

}  // namespace bx::cli
