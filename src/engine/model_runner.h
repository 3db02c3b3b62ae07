// The model runner: a step's plan through the model, and the token each sampling row chooses.
//
// forward() turns the scheduler's chunks into the step's one ForwardBatch (tokens, positions,
// block tables, logit rows, built into vectors sized at construction) and runs the model. Each
// logit row comes back whole (scores, top logprobs, host sampling) or as the device's choice
// alone: greedy rows whose choice is the device argmax, and sampled rows the backend samples
// (BackendCapabilities::device_sampling), move only (id, logprob). sample() then makes the
// host choices with the Sampler, in parallel over the rows (each row's choice is a pure function
// of its row and its sequence, so the thread count changes no bit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "engine/output_processor.h"
#include "engine/scheduler.h"
#include "model/loader.h"
#include "sampling/sampler.h"

namespace bx {

struct ModelRunnerOptions {
  int max_batch_tokens = 0;     // T per step
  int max_logit_rows = 0;       // R per step
  bool device_greedy = true;    // EngineOptions::device_greedy
  bool device_sampling = true;  // EngineOptions::device_sampling
  int sampler_threads = 1;      // host threads of sample()
};

class ModelRunner {
 public:
  ModelRunner(LoadedModel& model, ModelRunnerOptions options);

  // Runs the chunks' tokens through the model: their K and V into the cache, their logit rows
  // out (whole or as the device's choice).
  void forward(std::span<const ScheduledChunk> chunks);
  // The choice of every sampling row of the last forward(); the results stay valid until the
  // next forward().
  StepResults sample();
  // Tokens of the last forward().
  size_t batch_tokens() const { return tokens_.size(); }

 private:
  // A sampling row of the step: the sequence's last token, whose logits choose the next.
  struct SampleRow {
    const Sequence* seq;
    size_t row;
  };
  void build_batch(std::span<const ScheduledChunk> chunks);
  // Greedy with nothing but the chosen id's logprob to report and no ids masked: the device's
  // argmax (ties to the lowest id) is exactly the Sampler's greedy choice.
  bool greedy_on_device(const Sequence& s) const;
  // Sampled likewise, on a backend whose sample_rows runs on its device: DeviceSampling gives
  // the Sampler's bits.
  bool sampled_on_device(const Sequence& s) const;
  // The Sampler's choice for s from host row `row`, masking EOS and stop ids before min_tokens.
  // Reads only the row and s; `masked` is scratch of V floats.
  Sampler::Choice choose(const Sequence& s, size_t row, Sampler& sampler,
                         std::vector<float>& masked) const;

  LoadedModel& model_;
  ModelRunnerOptions options_;
  size_t vocab_;

  // The step's batch: [T] tokens, positions, tables; [R] logit rows.
  std::vector<int32_t> tokens_, positions_, logit_rows_;
  std::vector<const int32_t*> tables_;
  std::vector<SampleRow> sample_rows_;         // the step's sampling rows
  std::vector<uint8_t> full_rows_;             // [R] 1: the row comes to the host whole
  std::vector<SamplingParams> device_params_;  // [R] sample_rows' parameters (greedy: T = 0)
  std::vector<uint64_t> token_indices_;        // [R] and token indices
  // The step's results: host rows [R, V], the device's choices [R], every sampling row's choice.
  std::vector<float> logits_, logprobs_;
  std::vector<int32_t> device_ids_;
  std::vector<float> device_logprobs_;
  std::vector<Sampler::Choice> choices_;
  std::vector<uint8_t> chosen_;  // [R] 1: choices_[row] is set this step

  Sampler sampler_;
  std::vector<float> masked_;                      // [V]
  std::unique_ptr<ThreadPool> sampler_pool_;       // sampler_threads workers
  std::vector<Sampler> thread_samplers_;           // one per pool thread
  std::vector<std::vector<float>> thread_masked_;  // [threads][V]
  std::vector<SampleRow> host_rows_;               // the sampling rows sample() chooses on the host
};

}  // namespace bx
