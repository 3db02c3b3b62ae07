// Generating from a batch of prompts at once: every step runs one forward call that mixes the
// decode tokens of running sequences with chunks of the prompts still being prefilled.
//
// This is the core's batch runner (the full engine with paging, prefix cache and preemption
// comes later). Because every kernel is batch-invariant, each request's tokens and logprobs are
// the same bits whether it runs alone or with any other requests, under any token budget.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/loader.h"
#include "sampling/sampler.h"

namespace bx {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, at least one (e.g. BOS)
  SamplingParams sampling;
  int max_tokens = 16;          // >= 0
  bool ignore_eos = false;
};

// stop: the model produced EOS. length: max_tokens reached, or the sequence filled the context.
enum class FinishReason { length, stop };
std::string_view finish_reason_name(FinishReason reason);

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (an EOS that stopped generation included)
  std::vector<float> logprobs;  // log p(token) under the model, one per generated id
  FinishReason finish = FinishReason::length;
};

struct GeneratorOptions {
  int max_batch_tokens = 0;  // tokens per forward call; 0 = the model's maximum
  int max_seqs = 0;          // sequences per forward call; 0 = the model's maximum logit rows
};

class Generator {
 public:
  Generator(LoadedModel& model, GeneratorOptions options);

  // Runs every request to completion. on_token(request index, token id, logprob) is called as
  // tokens are chosen (may be empty). Throws bx::Error for an empty prompt, a prompt that does
  // not fit the context, a token id outside the vocabulary or bad sampling parameters, before
  // any work is done.
  // The checks run() makes first, for callers that must know before they print anything.
  void validate_requests(std::span<const GenerationRequest> requests) const;

  std::vector<GenerationResult> run(
      std::span<const GenerationRequest> requests,
      const std::function<void(size_t, int32_t, float)>& on_token = {});

 private:
  LoadedModel& model_;
  GeneratorOptions options_;
  Sampler sampler_;
};

}  // namespace bx
