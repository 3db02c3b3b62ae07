#include "engine/completion.h"

namespace bx {

const std::string& Completion::apply(const EngineEvent& e) {
  switch (e.kind) {
    case EngineEvent::Kind::token:
      tokens.push_back(e.token);
      logprobs.push_back(e.logprob);
      if (!e.top_logprobs.empty()) {
        top_logprobs.resize(tokens.size() - 1);
        top_logprobs.push_back(e.top_logprobs);
      }
      break;
    case EngineEvent::Kind::finished:
      finish = e.finish;
      stop_reason = e.stop_reason;
      finished = true;
      break;
    case EngineEvent::Kind::scored:
      prompt_logprobs = e.prompt_logprobs;
      score_logprobs = e.score_logprobs;
      break;
  }
  text += e.text;
  return e.text;
}

std::vector<Completion> collect(RequestStream& stream, int n) {
  std::vector<Completion> samples(static_cast<size_t>(n));
  while (std::optional<EngineEvent> e = stream.next()) {
    samples.at(static_cast<size_t>(e->sample)).apply(*e);
  }
  return samples;
}

}  // namespace bx
