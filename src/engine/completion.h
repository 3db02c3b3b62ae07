// What one sample of a request produced, collected from its engine events: the generated ids,
// their logprobs (the engine's float32 values), top logprobs if asked, the text and how it ended.
// The CLI's generate and the Python package build their results with this.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"

namespace bx {

struct Completion {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;                          // [tokens]
  std::vector<std::vector<TokenLogprob>> top_logprobs;  // [tokens] when asked, else empty
  std::string text;
  FinishReason finish = FinishReason::length;
  std::optional<std::string> stop_reason;  // the stop string or "token:ID" that ended it
  bool finished = false;
  // A scored event's values (sample 0 of a scored request).
  std::vector<float> prompt_logprobs;
  std::vector<float> score_logprobs;

  // Applies one event of this sample; returns the text it adds.
  const std::string& apply(const EngineEvent& e);
};

// Drains `stream` (blocking) into one Completion per sample: [n].
std::vector<Completion> collect(RequestStream& stream, int n);

}  // namespace bx
