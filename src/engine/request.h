// What a client gives the engine and what it gets back.
//
// A request is generated (max_tokens > 0) and/or scored (score_ids, prompt_logprobs). Its n
// samples are separate sequences; sample i draws with seed sample_seed(seed, i), so sample 0 of
// n > 1 is the same as the request with n = 1. Every reported logprob is log_softmax of the
// model's unmodified logits at the chosen (or given) token, so generation and scoring of the
// same tokens report the same bits (INVARIANCE.md promise 3).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sampling/sampler.h"

namespace bx {

struct EngineRequest {
  std::vector<int32_t> prompt;  // token ids, at least one (e.g. BOS)
  SamplingParams sampling;
  int n = 1;  // samples of this prompt, 1..kMaxSamples
  // Generated tokens per sample. A sequence also ends when it fills the model's context
  // (finish reason length): max_tokens beyond the context is allowed and means "until full".
  int max_tokens = 16;
  int min_tokens = 0;  // EOS and stop token ids are not chosen before this many
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop;  // stop strings: output text ends before the first one
  // Scoring: logprobs of these ids given the prompt (teacher forcing), and of every prompt
  // token after the first given what precedes it.
  std::vector<int32_t> score_ids;
  bool prompt_logprobs = false;
  // With prompt_logprobs, the prompt_top_logprobs most likely ids of each of those prompt
  // positions' rows (the row the prompt token's logprob comes from), 0..kMaxTopLogprobs.
  int prompt_top_logprobs = 0;
  // With each generated token, the top_logprobs most likely ids of the same unmodified
  // log_softmax row the token's logprob comes from (0 = none), 0..kMaxTopLogprobs.
  int top_logprobs = 0;

  static constexpr int kMaxSamples = 64;
  static constexpr int kMaxTopLogprobs = 20;
};

// One alternative of a token: an id and its logprob.
struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
};

// The k ids of a logprob row with the largest values, largest first, ties to the lower id; NaN
// ranks below every number. k is clamped to the row length.
std::vector<TokenLogprob> top_logprobs(std::span<const float> logprobs, int k);

uint64_t sample_seed(uint64_t seed, int sample_index);

// aborted: ended by a weight update that aborts requests in flight (Engine::run_exclusive,
// InFlight::abort); its tokens so far all come from the old weights. Named "abort" (as vLLM).
enum class FinishReason { stop, length, cancelled, aborted };
std::string_view finish_reason_name(FinishReason reason);

// One event of a request's stream. Each sample sends its tokens in order, then one finished
// event; a request that was scored first sends one scored event (sample 0) before any token.
struct EngineEvent {
  enum class Kind { token, finished, scored };
  Kind kind = Kind::token;
  int sample = 0;
  // token: the chosen id, its logprob and the text it completes (stop strings held back).
  int32_t token = -1;
  float logprob = 0.0f;
  std::string text;  // token: the new text; finished: any text held back until the end
  std::vector<TokenLogprob> top_logprobs;  // token: EngineRequest::top_logprobs alternatives
  // finished
  FinishReason finish = FinishReason::length;
  std::optional<std::string> stop_reason;  // the stop string or "token:ID" that ended it
  // scored: logprobs of prompt tokens 1.. (if asked) and of score_ids, in order
  std::vector<float> prompt_logprobs;
  std::vector<float> score_logprobs;
  std::vector<std::vector<TokenLogprob>> prompt_top_logprobs;  // [prompt_logprobs.size()] if asked
};

// The client's end of a request: a queue of events the engine fills and the client drains,
// from any thread. cancel() may be called at any moment; the engine then frees the request's
// KV blocks at its next step and ends each unfinished sample with FinishReason::cancelled.
class RequestStream {
 public:
  explicit RequestStream(int n_samples) : unfinished_(n_samples) {}

  // Blocks until an event is there; nullopt once every sample has finished and the queue is empty.
  std::optional<EngineEvent> next();
  // Non-blocking: an event if one is queued.
  std::optional<EngineEvent> try_next();
  // Blocks up to timeout until next() would not block; true if it would not.
  bool wait_for(std::chrono::milliseconds timeout);
  // Blocks up to timeout until every sample has finished (its events stay queued for next());
  // true if they have. A thread waiting here is woken by a sample's last event only, not by each
  // token: a thousand non-streaming server requests woken on every engine step would cost the
  // engine thread a thousand futex wakes a step.
  bool wait_finished_for(std::chrono::milliseconds timeout);
  bool done() const;
  void cancel();
  bool cancelled() const;

  // The weights_version (LoadedModel) every token and score of this request was computed with:
  // set when the engine takes the request, which then finishes before the weights change.
  uint64_t weights_version() const { return weights_version_; }

  // Engine side.
  void push(EngineEvent event);
  void set_weights_version(uint64_t version) { weights_version_ = version; }

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<EngineEvent> events_;
  int unfinished_;
  int event_waiters_ = 0;  // threads in next() or wait_for(): woken by every event
  bool cancelled_ = false;
  std::atomic<uint64_t> weights_version_{0};
};

}  // namespace bx
