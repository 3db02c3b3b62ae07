// The determinism experiments (`bitexact experiment NAME`): shared flags, the concurrent clients
// that load the engine, and the report each experiment writes.
//
// Each experiment runs the same workload once per mode (invariant, then fast) on a freshly
// loaded model, and writes OUT/NAME.json (settings, machine, every number) and OUT/NAME.md (a
// table). bench/experiment.sh wraps the command and renders OUT/NAME.png from the JSON
// (bench/experiments/plot.py).
//
//   uniqueness  N completions of one prompt at temperature 0, each served while other requests
//               of other lengths arrive at other times: distinct completions, first divergence.
//   throughput  N requests of about 100 output tokens: wall time and tokens/s per mode.
//   on-policy   sample with logprobs (temperature 1, seeded), then score the same tokens by
//               teacher forcing on a fresh engine: KL estimate and max |delta logprob|.
//
// Workloads are drawn from std::mt19937 seeded by --seed, so every run submits the same requests;
// only their timing (and so the batches) varies. Load prompts are random token ids, so the
// experiments run on models without a tokenizer too.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/common.h"
#include "engine/engine.h"

namespace bx::cli::experiment {

struct Flags {
  ModelFlags model;
  EngineFlags engine;
  bool mode_given = false;  // --mode named one mode: run only that one (else both)
  std::string out = "bench/results";
  int requests = 1000;  // the experiment's N
  int max_tokens = 100;
  int clients = 16;             // client threads submitting concurrently
  int load_requests = -1;       // uniqueness: other requests mixed in (-1 = as many as N)
  int max_delay_us = 2000;      // a client waits up to this long before each submission
  int max_prompt_tokens = 128;  // longest random prompt
  std::string prompt = "Tell me about Richard Feynman.";  // uniqueness (with a tokenizer)
  bool stop_at_eos = false;  // uniqueness: completions end at EOS (default: all max_tokens long)
  // throughput: also write the workload here as JSON ({"requests": [{"prompt": [ids],
  // "max_tokens": n}, ...]}), for an HTTP client to send the same requests
  // (bench/serve_throughput.py)
  std::string write_requests;
  uint64_t seed = 1;
};

// The modes to run, in order.
std::vector<std::string> modes(const Flags& f);

// The model loaded for one mode (--mode overridden), with its fingerprint.
LoadedModel load_for_mode(const Flags& f, const std::string& mode, LoadOptions& load,
                          EngineOptions& engine);

// Random token ids [0, vocab) of length uniform in [1, max_len], after the BOS if the model has
// one.
std::vector<int32_t> random_prompt(const LoadedModel& model, std::mt19937_64& rng, int max_len);
int uniform_int(std::mt19937_64& rng, int lo, int hi);  // [lo, hi], portable

// One request a client thread submits after waiting delay_us.
struct Job {
  EngineRequest request;
  int delay_us = 0;
  bool measured = false;  // one of the experiment's N (not load)
};

struct JobResult {
  std::vector<int32_t> tokens;  // sample 0
  std::vector<float> logprobs;
  FinishReason finish = FinishReason::length;
};

// Runs `jobs` on a started engine from `clients` threads: each takes the next job in order,
// waits its delay, submits it and drains its stream. Results in job order. Rethrows the first
// error a client met.
std::vector<JobResult> run_clients(Engine& engine, const std::vector<Job>& jobs, int clients);

// Per-step batch sizes seen by an engine (set as its step observer before start()).
struct StepLog {
  std::vector<uint32_t> step_tokens;
  void attach(Engine& engine);
  nlohmann::json summary() const;  // steps, min / mean / max tokens per step, distinct sizes
};

// The report of one experiment: header fields filled here, the experiment adds "modes" etc.
nlohmann::json report_header(const std::string& name, const Flags& f);
void add_machine_end(nlohmann::json& report);  // load average after the run
// Writes OUT/NAME.json and OUT/NAME.md (markdown given), creating OUT.
void write_report(const Flags& f, const std::string& name, const nlohmann::json& report,
                  const std::string& markdown);
// The header lines every Markdown report starts with (title, command, date, machine).
std::string markdown_header(const std::string& title, const nlohmann::json& report);

// The bits of a float, for exact comparisons.
uint32_t bits(float v);
double seconds_since(std::chrono::steady_clock::time_point start);
std::string fixed(double v, int digits);

void run_uniqueness(const Flags& f);
void run_throughput(const Flags& f);
void run_on_policy(const Flags& f);

}  // namespace bx::cli::experiment
