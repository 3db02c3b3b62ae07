// bitexact experiment uniqueness|throughput|on-policy: the determinism experiments, invariant
// mode against fast mode in one run (cli/experiment.h).
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>

#include "cli/commands.h"
#include "cli/experiment.h"
#include "core/error.h"

namespace bx::cli {
namespace {

void check_flags(const experiment::Flags& f) {
  const auto positive = [](int v, const char* name) {
    check(v > 0, std::string(name) + " is " + std::to_string(v) + ", expected a positive number");
  };
  positive(f.requests, "--requests");
  positive(f.max_tokens, "--max-tokens");
  positive(f.clients, "--clients");
  positive(f.max_prompt_tokens, "--max-prompt-tokens");
  check(f.load_requests >= -1, "--load-requests is " + std::to_string(f.load_requests) +
                                   ", expected a number >= 0 (or -1 for as many as --requests)");
  check(f.max_delay_us >= 0,
        "--max-delay-us is " + std::to_string(f.max_delay_us) + ", expected a number >= 0");
  check(!f.out.empty(), "--out is empty, expected a folder");
}

void add_experiment(CLI::App& parent, const std::string& name, const std::string& description,
                    int default_requests, std::function<void(const experiment::Flags&)> run) {
  auto flags = std::make_shared<experiment::Flags>();
  flags->requests = default_requests;
  CLI::App* cmd = parent.add_subcommand(name, description);
  add_model_flags(*cmd, flags->model);
  add_engine_flags(*cmd, flags->engine);
  cmd->add_option("--out", flags->out, "Folder for NAME.json and NAME.md (bench/results)");
  cmd->add_option("--requests", flags->requests,
                  "N: the experiment's requests (" + std::to_string(default_requests) + ")");
  cmd->add_option("--max-tokens", flags->max_tokens, "Output tokens per request (100)");
  cmd->add_option("--clients", flags->clients, "Client threads submitting concurrently (16)");
  cmd->add_option("--max-delay-us", flags->max_delay_us,
                  "A client waits a random 0..this many microseconds before each submission");
  cmd->add_option("--max-prompt-tokens", flags->max_prompt_tokens,
                  "Random prompts have 1..this many tokens (128)");
  cmd->add_option("--seed", flags->seed, "Seed of the workload (prompts, lengths, delays)");
  if (name == "uniqueness") {
    cmd->add_option("--load-requests", flags->load_requests,
                    "Other requests mixed in as load (default: as many as --requests)");
    cmd->add_option("--prompt", flags->prompt,
                    "The prompt every completion answers (BOS added; random ids without a "
                    "tokenizer)");
    cmd->add_flag("--stop-at-eos", flags->stop_at_eos,
                  "End completions at EOS (default: every completion is --max-tokens long)");
  }
  if (name == "throughput") {
    cmd->add_option("--write-requests", flags->write_requests,
                    "Also write the workload (each request's prompt ids and max_tokens) to this "
                    "JSON file, for an HTTP client to send the same requests");
  }
  cmd->footer("Runs invariant mode, then fast mode, unless --mode names one. Writes OUT/" + name +
              ".json and OUT/" + name + ".md; bench/experiment.sh also renders OUT/" + name +
              ".png.");
  cmd->callback([cmd, flags, run] {
    flags->mode_given = cmd->count("--mode") > 0;
    check_flags(*flags);
    run(*flags);
  });
}

}  // namespace

void register_experiment(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "experiment", "Determinism experiments: invariant vs fast mode (tables in --out)");
  cmd->require_subcommand(1);
  add_experiment(*cmd, "uniqueness",
                 "N greedy completions of one prompt under concurrent load: distinct completions "
                 "and the first token where they diverge",
                 1000, experiment::run_uniqueness);
  add_experiment(*cmd, "throughput",
                 "N requests of --max-tokens outputs (90%-110%): wall time and tokens/s", 1000,
                 experiment::run_throughput);
  add_experiment(*cmd, "on-policy",
                 "Sample with logprobs (temperature 1), score the same tokens by teacher "
                 "forcing: KL estimate and max |delta logprob|",
                 1000, experiment::run_on_policy);
}

}  // namespace bx::cli
