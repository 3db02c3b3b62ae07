// The output processor: what a step's results mean to each request.
//
// For each chunk of the step it records the logprobs a score asks for (and the scored event once
// the scored positions are all computed), appends the sampled token, detokenizes it, matches
// stop ids and stop strings, and pushes token and finished events to the request's stream. It
// reads the step's host logprob rows and the choice of each sampling row (ModelRunner) and
// writes only the sequences and their streams; the KV blocks of a sequence it finishes are the
// scheduler's to release.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/request.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "model/config.h"
#include "sampling/sampler.h"

namespace bx {

// What one step's forward and sampling produced, for its R logit rows.
struct StepResults {
  std::span<const float> logprobs;  // [R, V] host rows; valid for the rows that came back whole
  std::span<const Sampler::Choice> choices;  // [R]: the chosen token of each sampling row
  size_t vocab = 0;                          // V
};

class OutputProcessor {
 public:
  explicit OutputProcessor(const ModelConfig& config);

  // The chunk's results, after the scheduler has marked its positions computed. Returns true
  // when the sequence finished here.
  bool commit(const ScheduledChunk& chunk, const StepResults& results);
  // Ends s with `reason` (a finished event); s.finished is set.
  void finish(Sequence& s, FinishReason reason);

 private:
  // Appends the token chosen from `row`; true when s ends with it (stop or length).
  bool append(Sequence& s, size_t row, const StepResults& results);

  std::vector<int32_t> eos_ids_;
};

}  // namespace bx
