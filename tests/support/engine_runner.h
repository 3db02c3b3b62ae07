// Running requests through bx::Engine to completion and collecting what each one produced, for
// tests that compare results bit for bit. Test code only.
#pragma once

#include <bit>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace bx::test {

// One sample's output.
struct SampleResult {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::string text;
  FinishReason finish = FinishReason::length;
  std::optional<std::string> stop_reason;

  bool same_bits(const SampleResult& o) const {
    if (tokens != o.tokens || text != o.text || finish != o.finish ||
        stop_reason != o.stop_reason || logprobs.size() != o.logprobs.size()) {
      return false;
    }
    for (size_t i = 0; i < logprobs.size(); ++i) {
      if (std::bit_cast<uint32_t>(logprobs[i]) != std::bit_cast<uint32_t>(o.logprobs[i])) {
        return false;
      }
    }
    return true;
  }
};

// One request's output: its samples, and its scores if it asked for any.
struct RequestResult {
  std::vector<SampleResult> samples;
  std::vector<float> prompt_logprobs;
  std::vector<float> score_logprobs;
  bool scored = false;
};

// Drains whatever events a stream has queued into `out`.
inline void drain(RequestStream& stream, RequestResult& out) {
  while (std::optional<EngineEvent> e = stream.try_next()) {
    if (e->kind == EngineEvent::Kind::scored) {
      out.prompt_logprobs = e->prompt_logprobs;
      out.score_logprobs = e->score_logprobs;
      out.scored = true;
      continue;
    }
    if (out.samples.size() <= static_cast<size_t>(e->sample)) {
      out.samples.resize(static_cast<size_t>(e->sample) + 1);
    }
    SampleResult& s = out.samples[static_cast<size_t>(e->sample)];
    if (e->kind == EngineEvent::Kind::token) {
      s.tokens.push_back(e->token);
      s.logprobs.push_back(e->logprob);
    } else {
      s.finish = e->finish;
      s.stop_reason = e->stop_reason;
    }
    s.text += e->text;
  }
}

// Runs one request alone on a fresh engine (default options) to completion.
inline RequestResult run_alone(LoadedModel& model, const EngineRequest& request,
                               EngineOptions options = {}) {
  Engine engine(model, options);
  const std::shared_ptr<RequestStream> stream = engine.submit(request);
  engine.run_until_idle();
  RequestResult result;
  drain(*stream, result);
  return result;
}

// Submits every request at once to one fresh engine and runs it to completion; the results are
// in request order.
inline std::vector<RequestResult> run_together(LoadedModel& model,
                                               const std::vector<EngineRequest>& requests,
                                               EngineOptions options = {}) {
  Engine engine(model, options);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const EngineRequest& r : requests) streams.push_back(engine.submit(r));
  engine.run_until_idle();
  std::vector<RequestResult> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) drain(*streams[i], results[i]);
  return results;
}

// run_together, keeping each request's first sample.
inline std::vector<SampleResult> first_samples_together(LoadedModel& model,
                                                        const std::vector<EngineRequest>& requests,
                                                        EngineOptions options = {}) {
  std::vector<SampleResult> samples;
  for (const RequestResult& r : run_together(model, requests, options)) {
    samples.push_back(r.samples.at(0));
  }
  return samples;
}

// The number of (request, sample) pairs of `got` whose bits differ from `want` (a request with
// another sample count counts once).
inline int count_differences(const std::vector<RequestResult>& got,
                             const std::vector<RequestResult>& want) {
  int differ = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[i].samples.size() != want[i].samples.size()) {
      ++differ;
      continue;
    }
    for (size_t s = 0; s < want[i].samples.size(); ++s) {
      differ += got[i].samples[s].same_bits(want[i].samples[s]) ? 0 : 1;
    }
  }
  return differ;
}

// A schedule of the engine invariance matrix: engine limits, and whether submissions are
// staggered between steps (so requests join batches already running).
struct Schedule {
  std::string name;
  EngineOptions options;
  bool stagger = false;
};

// The matrix's five schedules: everything in one batch, one sequence a step, a 16-token budget,
// 7-token prefill chunks without the prefix cache, and a 24-block pool that forces preemption
// with staggered submissions.
inline std::vector<Schedule> matrix_schedules() {
  const auto opts = [](int budget, int seqs, int chunk, int64_t kv_tokens, bool prefix) {
    EngineOptions o;
    o.max_batch_tokens = budget;
    o.max_seqs = seqs;
    o.prefill_chunk = chunk;
    o.kv_cache_tokens = kv_tokens;
    o.prefix_cache = prefix;
    return o;
  };
  return {{"all together", opts(4096, 64, 512, 0, true)},
          {"max-seqs 1", opts(4096, 1, 512, 0, true)},
          {"budget 16", opts(16, 64, 512, 0, true)},
          {"prefill chunk 7, no prefix cache", opts(4096, 64, 7, 0, false)},
          {"24-block pool (preemption), staggered", opts(64, 8, 13, 24 * 16, true), true}};
}

// The matrix's requests: `count` prompts of ids (start + 37 t + t^2) % 1024 whose lengths cycle
// through `lengths`, the first `shared` starting alike (shared prefixes), the others at 3 i;
// 5-21 output tokens, ignore_eos, n = 2 for every seventh, greedy for every third and seeded
// top-p / plain sampling otherwise; the last request is a copy of request 4 (identical requests
// must give identical outputs).
inline std::vector<EngineRequest> matrix_requests(int count, std::span<const int> lengths,
                                                  int shared) {
  std::vector<EngineRequest> out;
  for (int i = 0; i + 1 < count; ++i) {
    EngineRequest r;
    const int length = lengths[static_cast<size_t>(i) % lengths.size()];
    const int start = i < shared ? 0 : 3 * i;
    for (int t = 0; t < length; ++t) r.prompt.push_back((start + t * 37 + t * t) % 1024);
    r.max_tokens = 5 + (i * 7) % 17;
    r.ignore_eos = true;
    r.n = i % 7 == 3 ? 2 : 1;
    if (i % 3 != 0) {
      r.sampling.temperature = 0.8f;
      r.sampling.top_p = i % 2 ? 0.9f : 1.0f;
      r.sampling.seed = 100 + static_cast<uint64_t>(i);
    }
    out.push_back(std::move(r));
  }
  out.push_back(out[4]);
  return out;
}

// Runs `requests` on a fresh engine under schedule `s` (staggered: 0-2 steps after each
// submission, from a fixed seed); results in request order, the engine's stats into `stats`.
inline std::vector<RequestResult> run_schedule(LoadedModel& model,
                                               const std::vector<EngineRequest>& requests,
                                               const Schedule& s, EngineStats* stats) {
  Engine engine(model, s.options);
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::mt19937 rng(5);
  for (const EngineRequest& r : requests) {
    streams.push_back(engine.submit(r));
    if (s.stagger) {
      for (int k = static_cast<int>(rng() % 3); k > 0; --k) engine.step();
    }
  }
  engine.run_until_idle();
  std::vector<RequestResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) drain(*streams[i], out[i]);
  if (stats != nullptr) *stats = engine.stats();
  return out;
}

}  // namespace bx::test
