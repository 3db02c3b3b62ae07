#include "engine/output_processor.h"

#include <algorithm>
#include <optional>
#include <string>

namespace bx {

OutputProcessor::OutputProcessor(const ModelConfig& config) : eos_ids_(config.eos_token_ids) {}

bool OutputProcessor::commit(const ScheduledChunk& c, const StepResults& results) {
  Sequence& s = *c.seq;
  const size_t V = results.vocab;
  size_t row = c.first_row;
  std::optional<size_t> sample_row;
  for (size_t p = c.first; p < c.first + c.count; ++p) {
    if (!s.needs_row(p)) continue;
    if (!s.scores_sent && p >= s.score_from && p < s.score_until) {
      const std::span<const float> logprobs = results.logprobs.subspan(row * V, V);
      s.scores[p - s.score_from] = logprobs[static_cast<size_t>(s.tokens[p + 1])];
      if (p - s.score_from < s.prompt_top.size()) {  // a prompt position (score_from is 0)
        s.prompt_top[p - s.score_from] = top_logprobs(logprobs, s.request().prompt_top_logprobs);
      }
    }
    if (p + 1 == s.tokens.size() && s.generating()) sample_row = row;
    ++row;
  }

  if (!s.scores_sent && s.in_cache >= s.score_until) {
    EngineEvent e;
    e.kind = EngineEvent::Kind::scored;
    e.sample = s.sample;
    const size_t n_prompt = s.request().prompt_logprobs ? s.request().prompt.size() - 1 : 0;
    e.prompt_logprobs.assign(s.scores.begin(), s.scores.begin() + static_cast<ptrdiff_t>(n_prompt));
    e.score_logprobs.assign(s.scores.begin() + static_cast<ptrdiff_t>(n_prompt), s.scores.end());
    e.prompt_top_logprobs = std::move(s.prompt_top);
    s.state->stream->push(std::move(e));
    s.scores_sent = true;
  }
  if (sample_row) return append(s, *sample_row, results);
  if (s.pending() == 0 && !s.generating() && !s.finished) {
    finish(s, FinishReason::length);  // scored only (max_tokens 0)
    return true;
  }
  return false;
}

bool OutputProcessor::append(Sequence& s, size_t row, const StepResults& results) {
  const EngineRequest& r = s.request();
  const Sampler::Choice choice = results.choices[row];
  s.tokens.push_back(choice.id);
  s.generated += 1;

  EngineEvent e;
  e.sample = s.sample;
  e.token = choice.id;
  e.logprob = choice.logprob;
  if (r.top_logprobs > 0) {
    e.top_logprobs =
        top_logprobs(results.logprobs.subspan(row * results.vocab, results.vocab), r.top_logprobs);
  }
  std::optional<std::string> stop_reason;
  bool stopped = false;
  const bool stop_id = std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), choice.id) !=
                       r.stop_token_ids.end();
  const bool eos = std::find(eos_ids_.begin(), eos_ids_.end(), choice.id) != eos_ids_.end();
  if (eos && !r.ignore_eos) {
    stopped = true;
  } else if (stop_id) {
    stopped = true;
    stop_reason = "token:" + std::to_string(choice.id);
  } else if (s.decoder) {
    const std::string piece = s.decoder->push(choice.id);
    if (s.generated > r.min_tokens) {
      StopStringMatcher::Result m = s.stop_matcher->push(piece);
      e.text = std::move(m.text);
      if (m.stopped) {
        stopped = true;
        stop_reason = m.stop;
      }
    } else {
      e.text = piece;
    }
  }
  s.state->stream->push(std::move(e));

  if (!stopped && s.tokens.size() < s.max_length) return false;
  EngineEvent done;
  done.kind = EngineEvent::Kind::finished;
  done.sample = s.sample;
  done.finish = stopped ? FinishReason::stop : FinishReason::length;
  done.stop_reason = stop_reason;
  if (!stopped || !stop_reason || stop_reason->rfind("token:", 0) == 0) {
    // Nothing was cut: release what the decoder and the stop matcher still hold.
    if (s.decoder) done.text = s.stop_matcher->push(s.decoder->flush()).text;
    done.text += s.stop_matcher->flush();
  }
  s.finished = true;
  s.state->stream->push(std::move(done));
  return true;
}

void OutputProcessor::finish(Sequence& s, FinishReason reason) {
  s.finished = true;
  EngineEvent e;
  e.kind = EngineEvent::Kind::finished;
  e.sample = s.sample;
  e.finish = reason;
  s.state->stream->push(std::move(e));
}

}  // namespace bx
