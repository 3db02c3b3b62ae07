// On-policy: the sampler's logprobs against the trainer's. N requests (random prompts, temperature
// 1, request i seeded with seed * 1000003 + i, up to --max-tokens tokens, ending at EOS) are
// sampled with logprobs under concurrent load (client threads, random arrival delays); then a
// fresh engine scores each prompt + sampled tokens by teacher forcing (Engine::score, again from
// client threads), as a trainer recomputes the policy's logprobs.
//
// For each sampled token, delta = logprob_sampler - logprob_trainer. The tokens were drawn from the
// sampler's distribution p (temperature 1, no truncation), so mean(delta) estimates KL(p || q)
// per token (the k1 estimator) and mean(exp(-delta) - 1 + delta) is the k3 estimator (never
// negative). In invariant mode both views are the same computation: every delta is exactly 0.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>

#include "cli/experiment.h"

namespace bx::cli::experiment {
namespace {

// |delta| histogram: bin 0 counts exact zeros; then decades 1e-10 .. 1e1, 4 bins a decade.
constexpr int kBinsPerDecade = 4;
constexpr int kFirstDecade = -10, kLastDecade = 1;

std::vector<std::vector<float>> score_all(Engine& engine, const std::vector<Job>& jobs,
                                          const std::vector<JobResult>& samples, int clients) {
  std::vector<std::vector<float>> scored(jobs.size());
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  const auto client = [&] {
    try {
      for (size_t i = next++; i < jobs.size(); i = next++) {
        if (samples[i].tokens.empty()) continue;
        scored[i] = engine.score(jobs[i].request.prompt, samples[i].tokens).score_logprobs;
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      next = jobs.size();
    }
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) threads.emplace_back(client);
  for (std::thread& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  return scored;
}

nlohmann::json run_mode(const Flags& f, const std::string& mode) {
  LoadOptions load;
  EngineOptions engine_options;
  LoadedModel model = load_for_mode(f, mode, load, engine_options);
  std::mt19937_64 rng(f.seed);
  std::vector<Job> jobs;
  for (int i = 0; i < f.requests; ++i) {
    Job j;
    j.request.prompt = random_prompt(model, rng, f.max_prompt_tokens);
    j.request.max_tokens = f.max_tokens;
    j.request.sampling.temperature = 1.0f;
    j.request.sampling.seed = f.seed * 1000003ull + static_cast<uint64_t>(i);
    j.delay_us = uniform_int(rng, 0, f.max_delay_us);
    j.measured = true;
    jobs.push_back(std::move(j));
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<JobResult> samples;
  StepLog steps;
  {
    Engine engine(model, engine_options);
    steps.attach(engine);
    engine.start();
    samples = run_clients(engine, jobs, f.clients);
    engine.stop();
  }
  const double sample_wall = seconds_since(start);
  const auto score_start = std::chrono::steady_clock::now();
  std::vector<std::vector<float>> scored;
  {
    Engine engine(model, engine_options);  // the trainer: a fresh engine, no shared cache
    engine.start();
    scored = score_all(engine, jobs, samples, f.clients);
    engine.stop();
  }
  const double score_wall = seconds_since(score_start);

  int64_t tokens = 0, tokens_differ = 0, sequences_differ = 0;
  double sum_k1 = 0, sum_k3 = 0, max_abs = 0;
  const int bins = (kLastDecade - kFirstDecade) * kBinsPerDecade;
  std::vector<int64_t> histogram(static_cast<size_t>(bins) + 1, 0);
  for (size_t i = 0; i < jobs.size(); ++i) {
    bool differs = false;
    for (size_t t = 0; t < samples[i].tokens.size(); ++t) {
      const float sampler = samples[i].logprobs[t], trainer = scored[i].at(t);
      const double delta = static_cast<double>(sampler) - static_cast<double>(trainer);
      ++tokens;
      if (bits(sampler) != bits(trainer)) {
        ++tokens_differ;
        differs = true;
      }
      sum_k1 += delta;
      sum_k3 += std::expm1(-delta) + delta;
      max_abs = std::max(max_abs, std::fabs(delta));
      if (delta == 0) {
        ++histogram[0];
      } else {
        const double bin =
            std::floor((std::log10(std::fabs(delta)) - kFirstDecade) * kBinsPerDecade);
        histogram[1 + static_cast<size_t>(std::clamp(bin, 0.0, bins - 1.0))]++;
      }
    }
    sequences_differ += differs;
  }

  nlohmann::json j;
  j["mode"] = mode;
  j["fingerprint"] = model.system_fingerprint();
  j["backend"] = model.backend->name();
  j["sequences"] = jobs.size();
  j["tokens"] = tokens;
  j["tokens_with_different_bits"] = tokens_differ;
  j["sequences_with_different_bits"] = sequences_differ;
  j["kl_k1_per_token"] = tokens > 0 ? sum_k1 / static_cast<double>(tokens) : 0.0;
  j["kl_k3_per_token"] = tokens > 0 ? sum_k3 / static_cast<double>(tokens) : 0.0;
  j["max_abs_delta_logprob"] = max_abs;
  j["delta_histogram"] = {{"zero", histogram[0]},
                          {"first_decade", kFirstDecade},
                          {"bins_per_decade", kBinsPerDecade},
                          {"counts", std::vector<int64_t>(histogram.begin() + 1, histogram.end())}};
  j["sample_wall_seconds"] = sample_wall;
  j["score_wall_seconds"] = score_wall;
  j["engine_steps_sampling"] = steps.summary();
  std::printf(
      "on-policy %s: %lld tokens in %zu sequences, %lld tokens differ, KL k1 %.3g, k3 "
      "%.3g, max |delta| %.3g\n",
      mode.c_str(), static_cast<long long>(tokens), jobs.size(),
      static_cast<long long>(tokens_differ), j["kl_k1_per_token"].get<double>(),
      j["kl_k3_per_token"].get<double>(), max_abs);
  std::fflush(stdout);
  return j;
}

std::string scientific(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

}  // namespace

void run_on_policy(const Flags& f) {
  nlohmann::json report = report_header("on-policy", f);
  report["modes"] = nlohmann::json::array();
  std::string rows;
  for (const std::string& mode : modes(f)) {
    nlohmann::json j = run_mode(f, mode);
    rows += "| " + mode + " | `" + j["fingerprint"].get<std::string>() + "` | " +
            j["sequences"].dump() + " | " + j["tokens"].dump() + " | " +
            j["tokens_with_different_bits"].dump() + " | " +
            j["sequences_with_different_bits"].dump() + " | " +
            scientific(j["kl_k1_per_token"].get<double>()) + " | " +
            scientific(j["kl_k3_per_token"].get<double>()) + " | " +
            scientific(j["max_abs_delta_logprob"].get<double>()) + " |\n";
    report["modes"].push_back(std::move(j));
  }
  add_machine_end(report);
  std::string md = markdown_header("On-policy: sampler logprobs vs teacher-forced scoring", report);
  md +=
      "| mode | fingerprint | sequences | tokens | tokens whose logprob bits differ | sequences "
      "that differ | KL per token (k1) | KL per token (k3) | max abs delta logprob |\n"
      "|---|---|---|---|---|---|---|---|---|\n" +
      rows;
  md += "\nSampling: temperature 1, seeded, up to " + std::to_string(f.max_tokens) +
        " tokens, random prompts of 1.." + std::to_string(f.max_prompt_tokens) + " tokens from " +
        std::to_string(f.clients) +
        " client threads. Scoring: Engine::score on a fresh engine (teacher forcing). delta = "
        "sampler logprob - trainer logprob; k1 = mean(delta), k3 = mean(exp(-delta) - 1 + "
        "delta).\n";
  write_report(f, "on-policy", report, md);
}

}  // namespace bx::cli::experiment
