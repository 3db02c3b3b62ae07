// Uniqueness: N completions of one prompt at temperature 0, each served while other requests
// (random prompts of other lengths, other output lengths, random arrival times) load the engine,
// so every completion sees other batches. Counts distinct completions — by token ids, and by
// token ids plus logprob bits — and the first token index where any two differ. Then runs the
// prompt alone on an idle engine and counts the completions equal to it.
//
// Published reference (Thinking Machines, "Defeating Nondeterminism in LLM Inference", 2025):
// 1000 completions on default vLLM gave 80 distinct ones, diverging first at token 103; with
// batch-invariant kernels, 1.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>

#include "cli/experiment.h"
#include "core/error.h"

namespace bx::cli::experiment {
namespace {

// How many distinct prefixes of length t + 1 the completions have, for every t. With
// `with_bits`, two tokens are the same only if their logprobs have the same bits too; a finished
// completion continues with an end marker.
std::vector<int64_t> distinct_prefixes(const std::vector<JobResult>& c, bool with_bits) {
  size_t longest = 0;
  for (const JobResult& r : c) longest = std::max(longest, r.tokens.size());
  std::vector<uint32_t> group(c.size(), 0);
  std::vector<int64_t> counts;
  for (size_t t = 0; t < longest; ++t) {
    std::map<std::tuple<uint32_t, int64_t, uint32_t>, uint32_t> ids;
    for (size_t i = 0; i < c.size(); ++i) {
      const bool has = t < c[i].tokens.size();
      const std::tuple<uint32_t, int64_t, uint32_t> key{
          group[i], has ? c[i].tokens[t] : -1, has && with_bits ? bits(c[i].logprobs[t]) : 0u};
      const auto [it, inserted] = ids.emplace(key, static_cast<uint32_t>(ids.size()));
      group[i] = it->second;
    }
    counts.push_back(static_cast<int64_t>(ids.size()));
  }
  return counts;
}

// The first index whose prefix count exceeds 1, or null.
nlohmann::json first_divergence(const std::vector<int64_t>& prefixes) {
  for (size_t t = 0; t < prefixes.size(); ++t) {
    if (prefixes[t] > 1) return t;
  }
  return nullptr;
}

bool same_bits(const JobResult& a, const JobResult& b) {
  if (a.tokens != b.tokens || a.logprobs.size() != b.logprobs.size()) return false;
  for (size_t t = 0; t < a.logprobs.size(); ++t) {
    if (bits(a.logprobs[t]) != bits(b.logprobs[t])) return false;
  }
  return true;
}

std::vector<Job> make_jobs(const LoadedModel& model, const Flags& f, const EngineRequest& target) {
  std::mt19937_64 rng(f.seed);
  const int load = f.load_requests < 0 ? f.requests : f.load_requests;
  std::vector<Job> jobs;
  for (int i = 0; i < f.requests; ++i) jobs.push_back({target, 0, true});
  for (int i = 0; i < load; ++i) {
    Job j;
    j.request.prompt = random_prompt(model, rng, f.max_prompt_tokens);
    j.request.max_tokens = uniform_int(rng, 1, 2 * f.max_tokens);
    j.request.sampling.temperature = 0.8f;
    j.request.sampling.seed = rng();
    jobs.push_back(std::move(j));
  }
  // Interleave targets and load in a seeded order, each after a random delay.
  for (size_t i = jobs.size(); i > 1; --i) {
    std::swap(jobs[i - 1], jobs[static_cast<size_t>(uniform_int(rng, 0, static_cast<int>(i - 1)))]);
  }
  for (Job& j : jobs) j.delay_us = uniform_int(rng, 0, f.max_delay_us);
  return jobs;
}

struct ModeResult {
  nlohmann::json json;
  std::string row;  // Markdown table row
};

ModeResult run_mode(const Flags& f, const std::string& mode) {
  LoadOptions load;
  EngineOptions engine_options;
  LoadedModel model = load_for_mode(f, mode, load, engine_options);

  EngineRequest target;
  if (model.tokenizer != nullptr) {
    target.prompt = model.tokenizer->encode(f.prompt, /*add_special=*/true);
  } else {
    std::mt19937_64 prompt_rng(f.seed ^ 0x9e3779b97f4a7c15ull);
    target.prompt = random_prompt(model, prompt_rng, f.max_prompt_tokens);
  }
  target.max_tokens = f.max_tokens;
  target.sampling.temperature = 0.0f;
  target.ignore_eos = !f.stop_at_eos;
  const std::vector<Job> jobs = make_jobs(model, f, target);

  std::vector<JobResult> all;
  StepLog steps;
  EngineStats stats;
  const auto start = std::chrono::steady_clock::now();
  {
    Engine engine(model, engine_options);
    steps.attach(engine);
    engine.start();
    all = run_clients(engine, jobs, f.clients);
    engine.stop();
    stats = engine.stats();
  }
  const double wall = seconds_since(start);

  // The reference: the prompt alone on an idle engine.
  JobResult alone;
  {
    Engine engine(model, engine_options);
    engine.start();
    alone = run_clients(engine, {Job{target, 0, true}}, 1).at(0);
    engine.stop();
  }

  std::vector<JobResult> completions;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].measured) completions.push_back(std::move(all[i]));
  }

  std::map<std::vector<int32_t>, int64_t> by_tokens;
  int64_t equal_alone_tokens = 0, equal_alone_bits = 0;
  for (const JobResult& c : completions) {
    ++by_tokens[c.tokens];
    equal_alone_tokens += c.tokens == alone.tokens;
    equal_alone_bits += same_bits(c, alone);
  }
  std::vector<int64_t> frequencies;
  for (const auto& [tokens, count] : by_tokens) frequencies.push_back(count);
  std::sort(frequencies.rbegin(), frequencies.rend());
  const std::vector<int64_t> prefixes = distinct_prefixes(completions, false);
  const std::vector<int64_t> prefixes_bits = distinct_prefixes(completions, true);
  const int64_t distinct_bits = prefixes_bits.empty() ? 1 : prefixes_bits.back();

  nlohmann::json j;
  j["mode"] = mode;
  j["fingerprint"] = model.system_fingerprint();
  j["backend"] = model.backend->name();
  j["prompt_tokens"] = target.prompt.size();
  j["completions"] = completions.size();
  j["load_requests"] = jobs.size() - completions.size();
  j["wall_seconds"] = wall;
  j["distinct_completions"] = by_tokens.size();
  j["distinct_with_logprob_bits"] = distinct_bits;
  j["first_divergence_token"] = first_divergence(prefixes);
  j["first_logprob_divergence_token"] = first_divergence(prefixes_bits);
  j["most_common_count"] = frequencies.front();
  j["equal_to_alone_tokens"] = equal_alone_tokens;
  j["equal_to_alone_bits"] = equal_alone_bits;
  j["completion_frequencies"] = frequencies;
  j["distinct_prefixes"] = prefixes;
  j["distinct_prefixes_with_logprob_bits"] = prefixes_bits;
  j["engine_steps"] = steps.summary();
  j["preemptions"] = stats.preemptions;

  const auto or_dash = [](const nlohmann::json& v) { return v.is_null() ? "-" : v.dump(); };
  ModeResult r;
  r.json = j;
  r.row = "| " + mode + " | `" + j["fingerprint"].get<std::string>() + "` | " +
          std::to_string(completions.size()) + " | " + std::to_string(by_tokens.size()) + " | " +
          or_dash(j["first_divergence_token"]) + " | " + std::to_string(distinct_bits) + " | " +
          or_dash(j["first_logprob_divergence_token"]) + " | " + std::to_string(equal_alone_bits) +
          " | " + fixed(wall, 1) + " |\n";
  std::printf(
      "uniqueness %s: %zu completions, %zu distinct (first divergence at token %s), %lld "
      "distinct with logprob bits, %lld equal to the prompt alone, %.1f s\n",
      mode.c_str(), completions.size(), by_tokens.size(),
      or_dash(j["first_divergence_token"]).c_str(), static_cast<long long>(distinct_bits),
      static_cast<long long>(equal_alone_bits), wall);
  std::fflush(stdout);
  return r;
}

}  // namespace

void run_uniqueness(const Flags& f) {
  nlohmann::json report = report_header("uniqueness", f);
  report["settings"]["prompt"] = f.prompt;
  report["settings"]["load_requests"] = f.load_requests < 0 ? f.requests : f.load_requests;
  report["settings"]["stop_at_eos"] = f.stop_at_eos;
  report["reference"] =
      "default vLLM: 80 distinct of 1000, first divergence at token 103; "
      "batch-invariant kernels: 1 distinct (Thinking Machines, 2025)";
  std::string rows;
  report["modes"] = nlohmann::json::array();
  for (const std::string& mode : modes(f)) {
    ModeResult r = run_mode(f, mode);
    report["modes"].push_back(std::move(r.json));
    rows += r.row;
  }
  add_machine_end(report);
  std::string md = markdown_header("Uniqueness: one prompt, " + std::to_string(f.requests) +
                                       " greedy completions under concurrent load",
                                   report);
  md +=
      "| mode | fingerprint | completions | distinct | first divergence (token) | distinct "
      "incl. logprob bits | first logprob divergence | equal to prompt alone (bits) | wall s "
      "|\n|---|---|---|---|---|---|---|---|---|\n" +
      rows;
  md += "\nEach completion: " + std::to_string(f.max_tokens) +
        " tokens at temperature 0, served while " + report["settings"]["load_requests"].dump() +
        " other requests (random prompts of 1.." + std::to_string(f.max_prompt_tokens) +
        " tokens, 1.." + std::to_string(2 * f.max_tokens) +
        " output tokens, temperature 0.8) arrive from " + std::to_string(f.clients) +
        " client threads after random delays of 0.." + std::to_string(f.max_delay_us) +
        " us. Token indices count from 0.\n\nReference: " + report["reference"].get<std::string>() +
        ".\n";
  write_report(f, "uniqueness", report, md);
}

}  // namespace bx::cli::experiment
