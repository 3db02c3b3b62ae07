// bitexact generate: complete one prompt or a file of prompts (all run together as one batch).
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
#include "generate/generator.h"

namespace bx::cli {
namespace {

struct GenerateFlags {
  ModelFlags model;
  std::optional<std::string> prompt;
  std::optional<std::string> prompts_file;
  int max_tokens = 128;
  SamplingParams sampling;
  std::string seed = "0";  // parsed strictly: CLI11 would wrap "-1" into 2^64 - 1
  std::string format = "text";
  int max_batch_tokens = 512;
  int max_seqs = 64;
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

uint64_t parse_seed(const std::string& text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  check(!text.empty() && ec == std::errc() && ptr == end,
        "--seed is '" + text + "', expected an integer from 0 to 18446744073709551615");
  return value;
}

void validate_flags(const GenerateFlags& f) {
  check(f.prompt.has_value() != f.prompts_file.has_value(),
        "give exactly one of --prompt TEXT or --prompts-file FILE");
  check(f.max_tokens >= 0,
        "--max-tokens is " + std::to_string(f.max_tokens) + ", expected a number >= 0");
  check(f.format == "text" || f.format == "json",
        "--format is '" + f.format + "', expected text or json");
  check(f.max_batch_tokens > 0, "--max-batch-tokens must be positive");
  check(f.max_seqs > 0, "--max-seqs must be positive");
  validate(f.sampling);
}

std::string json_line(const std::string& prompt, const GenerationResult& result,
                      const std::string& text) {
  const auto escape = [](const std::string& s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  std::string out = "{\"prompt\": " + escape(prompt) + ", \"token_ids\": [";
  for (size_t i = 0; i < result.tokens.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(result.tokens[i]);
  }
  out += "], \"logprobs\": [";
  for (size_t i = 0; i < result.logprobs.size(); ++i) {
    out += (i ? ", " : "") + format_float(result.logprobs[i]);
  }
  out += "], \"text\": " + escape(text) + ", \"finish_reason\": \"" +
         std::string(finish_reason_name(result.finish)) + "\"}";
  return out;
}

void run_generate(GenerateFlags& f) {
  f.sampling.seed = parse_seed(f.seed);
  validate_flags(f);
  const std::vector<std::string> prompts =
      f.prompt ? std::vector<std::string>{*f.prompt} : read_prompts_file(*f.prompts_file);

  LoadOptions options;
  options.max_batch_tokens = f.max_batch_tokens;
  options.max_logit_rows = f.max_seqs;
  LoadedModel model = load_with_progress(f.model, options);
  check(model.tokenizer != nullptr,
        model.path + ": its tokenizer (tokenizer.ggml.model gpt2) is not supported yet");
  const Tokenizer& tokenizer = *model.tokenizer;

  std::vector<GenerationRequest> requests(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    requests[i].prompt = tokenizer.encode(prompts[i], /*add_bos=*/true);
    requests[i].sampling = f.sampling;
    requests[i].max_tokens = f.max_tokens;
  }

  Generator generator(model, GeneratorOptions{f.max_batch_tokens, f.max_seqs});
  generator.validate_requests(requests);
  // One prompt as text streams its completion as it is generated.
  const bool stream = f.format == "text" && prompts.size() == 1;
  std::unique_ptr<StreamingDecoder> streamer;
  if (stream) {
    streamer = std::make_unique<StreamingDecoder>(tokenizer, requests[0].prompt);
    std::cout << prompts[0] << std::flush;
  }
  const auto on_token = [&](size_t, int32_t id, float) {
    if (id == tokenizer.eos_id()) return;
    std::cout << streamer->push(id) << std::flush;
  };
  const std::vector<GenerationResult> results =
      generator.run(requests, stream ? std::function<void(size_t, int32_t, float)>(on_token)
                                     : std::function<void(size_t, int32_t, float)>());
  if (stream) {
    std::cout << streamer->flush() << "\n";
    return;
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    StreamingDecoder decoder(tokenizer, requests[i].prompt);
    std::string text;
    for (int32_t id : results[i].tokens) {
      if (id != tokenizer.eos_id()) text += decoder.push(id);
    }
    text += decoder.flush();
    if (f.format == "json") {
      std::cout << json_line(prompts[i], results[i], text) << "\n";
    } else {
      std::cout << prompts[i] << text << "\n\n";
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
                  "File with one prompt a line; all run together as one batch");
  cmd->add_option("--max-tokens", flags->max_tokens, "Tokens to generate per prompt (128)");
  cmd->add_option("--temperature", flags->sampling.temperature, "0 = greedy (1.0)");
  cmd->add_option("--top-k", flags->sampling.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", flags->sampling.top_p, "Nucleus sampling mass in (0, 1] (1.0)");
  cmd->add_option("--min-p", flags->sampling.min_p, "Drop tokens below min_p * p_max (0)");
  cmd->add_option("--seed", flags->seed, "Sampling seed, 0 to 2^64-1 (0)");
  cmd->add_option("--format", flags->format, "text or json (one object per prompt per line)");
  cmd->add_option("--max-batch-tokens", flags->max_batch_tokens,
                  "Tokens per forward call (512); results do not depend on it");
  cmd->add_option("--max-seqs", flags->max_seqs,
                  "Sequences per forward call (64); results do not depend on it");
  cmd->callback([flags] { run_generate(*flags); });
}

}  // namespace bx::cli
