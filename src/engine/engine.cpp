#include "engine/engine.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <string>
#include <thread>

#include "core/error.h"
#include "engine/kv_sizing.h"

namespace bx {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

size_t ceil_div(size_t a, size_t b) {
  return (a + b - 1) / b;
}

int64_t default_kv_tokens(const LoadedModel& m, const EngineOptions& o) {
  const Backend& backend = *m.backend;
  const int64_t context = m.config.context_length;
  const int64_t available = backend.kv_memory_available();
  if (available < 0) {
    return kv_tokens_for_host(context, o.max_seqs, kv_bytes_per_token(m.kv_shape, 4));
  }
  return kv_tokens_for_memory(available, o.kv_memory_fraction,
                              kv_bytes_per_token(m.kv_shape, backend.kv_element_bytes()),
                              m.kv_shape.block_size, context, o.max_seqs);
}

// The options with every automatic 0 resolved against the model; throws bx::Error for limits
// beyond what the model was loaded for.
EngineOptions resolve(const LoadedModel& model, EngineOptions o) {
  const LlamaModel& m = *model.model;
  if (o.max_batch_tokens <= 0) o.max_batch_tokens = m.max_batch_tokens();
  if (o.max_seqs <= 0) o.max_seqs = m.max_logit_rows();
  if (o.prefill_chunk <= 0) o.prefill_chunk = o.max_batch_tokens;
  check(o.max_batch_tokens <= m.max_batch_tokens(), "max batch tokens " +
                                                        std::to_string(o.max_batch_tokens) +
                                                        " exceeds what the model was loaded for (" +
                                                        std::to_string(m.max_batch_tokens()) + ")");
  check(o.max_seqs <= m.max_logit_rows(), "max sequences " + std::to_string(o.max_seqs) +
                                              " exceeds what the model was loaded for (" +
                                              std::to_string(m.max_logit_rows()) + ")");
  if (o.kv_cache_tokens <= 0) o.kv_cache_tokens = default_kv_tokens(model, o);
  check(o.sampler_threads >= 0,
        "sampler threads is " + std::to_string(o.sampler_threads) + ", expected >= 0");
  if (o.sampler_threads == 0) {
    o.sampler_threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  }
  return o;
}

SchedulerLimits scheduler_limits(const LoadedModel& model, const EngineOptions& o) {
  SchedulerLimits limits;
  limits.max_batch_tokens = o.max_batch_tokens;
  limits.max_seqs = o.max_seqs;
  limits.max_logit_rows = model.model->max_logit_rows();
  limits.prefill_chunk = o.prefill_chunk;
  limits.prefix_cache = o.prefix_cache;
  return limits;
}

int64_t kv_blocks(const LoadedModel& model, const EngineOptions& o) {
  const int block_size = model.kv_shape.block_size;
  return (o.kv_cache_tokens + block_size - 1) / block_size;
}

ModelRunnerOptions runner_options(const LoadedModel& model, const EngineOptions& o) {
  ModelRunnerOptions r;
  r.max_batch_tokens = o.max_batch_tokens;
  r.max_logit_rows = model.model->max_logit_rows();
  r.device_greedy = o.device_greedy;
  r.device_sampling = o.device_sampling;
  r.sampler_threads = o.sampler_threads;
  return r;
}

}  // namespace

Engine::Engine(LoadedModel& model, EngineOptions options)
    : model_(model),
      options_(resolve(model, options)),
      scheduler_(scheduler_limits(model, options_), kv_blocks(model, options_),
                 model.kv_shape.block_size),
      runner_(model, runner_options(model, options_)),
      output_(model.config) {
  model_.reserve_kv_blocks(scheduler_.pool().total_blocks());
  publish_gauges();
}

Engine::~Engine() {
  stop();
}

// ---- submission ----

void Engine::validate(const EngineRequest& r) const {
  const ModelConfig& c = model_.config;
  const auto n_str = [](auto v) { return std::to_string(v); };
  check(!r.prompt.empty(),
        "the prompt has no tokens; expected at least one (e.g. BOS, or non-empty text)");
  for (int32_t id : r.prompt) {
    check(id >= 0 && id < c.vocab_size, "prompt token id " + n_str(id) +
                                            " is outside the vocabulary [0, " +
                                            n_str(c.vocab_size) + ")");
  }
  for (int32_t id : r.score_ids) {
    check(id >= 0 && id < c.vocab_size, "score token id " + n_str(id) +
                                            " is outside the vocabulary [0, " +
                                            n_str(c.vocab_size) + ")");
  }
  for (int32_t id : r.stop_token_ids) {
    check(id >= 0 && id < c.vocab_size, "stop token id " + n_str(id) +
                                            " is outside the vocabulary [0, " +
                                            n_str(c.vocab_size) + ")");
  }
  for (const std::string& s : r.stop) check(!s.empty(), "a stop string is empty");
  const size_t given = r.prompt.size() + r.score_ids.size();
  const size_t context = static_cast<size_t>(c.context_length);
  check(given < context || (given == context && r.max_tokens == 0),
        "the prompt has " + n_str(given) + " tokens but the model's context holds " +
            n_str(context) + (r.max_tokens > 0 ? ", and generating needs room for one more" : ""));
  check(r.max_tokens >= 0, "max_tokens is " + n_str(r.max_tokens) + ", expected >= 0");
  check(r.min_tokens >= 0 && r.min_tokens <= r.max_tokens, "min_tokens is " + n_str(r.min_tokens) +
                                                               ", expected 0 to max_tokens (" +
                                                               n_str(r.max_tokens) + ")");
  check(r.n >= 1 && r.n <= EngineRequest::kMaxSamples,
        "n is " + n_str(r.n) + ", expected 1 to " + n_str(EngineRequest::kMaxSamples));
  check(r.top_logprobs >= 0 && r.top_logprobs <= EngineRequest::kMaxTopLogprobs,
        "top_logprobs is " + n_str(r.top_logprobs) + ", expected 0 to " +
            n_str(EngineRequest::kMaxTopLogprobs));
  check(r.prompt_top_logprobs >= 0 && r.prompt_top_logprobs <= EngineRequest::kMaxTopLogprobs &&
            (r.prompt_top_logprobs == 0 || r.prompt_logprobs),
        "prompt_top_logprobs is " + n_str(r.prompt_top_logprobs) + ", expected 0 to " +
            n_str(EngineRequest::kMaxTopLogprobs) + " and only with prompt_logprobs");
  check(r.score_ids.empty() || (r.max_tokens == 0 && r.n == 1),
        "scoring continuation ids needs max_tokens = 0 and n = 1");
  bx::validate(r.sampling);
  const size_t longest = std::min(given + static_cast<size_t>(r.max_tokens), context);
  const size_t blocks = ceil_div(longest, static_cast<size_t>(scheduler_.pool().block_size()));
  check(static_cast<int64_t>(blocks) <= scheduler_.pool().total_blocks(),
        "the request needs up to " + n_str(longest) + " tokens of KV cache (" + n_str(blocks) +
            " blocks) but the pool holds " + n_str(scheduler_.pool().total_blocks()) +
            " blocks; raise --kv-cache-tokens or lower max_tokens");
}

std::shared_ptr<RequestStream> Engine::submit(EngineRequest request) {
  validate(request);
  auto state = std::make_shared<RequestState>();
  state->stream = std::make_shared<RequestStream>(request.n);
  state->request = std::move(request);
  const EngineRequest& r = state->request;
  const size_t context = static_cast<size_t>(model_.config.context_length);

  std::vector<std::unique_ptr<Sequence>> samples;
  for (int i = 0; i < r.n; ++i) {
    auto s = std::make_unique<Sequence>();
    s->state = state;
    s->sample = i;
    s->sampling = r.sampling;
    s->sampling.seed = sample_seed(r.sampling.seed, i);
    s->tokens = r.prompt;
    s->tokens.insert(s->tokens.end(), r.score_ids.begin(), r.score_ids.end());
    s->prompt_length = s->tokens.size();
    s->max_length = std::min(s->prompt_length + static_cast<size_t>(r.max_tokens), context);
    if (i == 0 && (r.prompt_logprobs || !r.score_ids.empty())) {
      s->score_from = r.prompt_logprobs ? 0 : r.prompt.size() - 1;
      s->score_until = s->prompt_length - 1;
      s->scores.assign(s->score_until - s->score_from, 0.0f);
      if (r.prompt_top_logprobs > 0) s->prompt_top.resize(r.prompt.size() - 1);
      s->scores_sent = false;
    }
    if (model_.tokenizer) {
      s->decoder = std::make_unique<StreamingDecoder>(*model_.tokenizer, s->tokens);
    }
    s->stop_matcher = std::make_unique<StopStringMatcher>(r.stop);
    samples.push_back(std::move(s));
  }
  {
    std::lock_guard lock(inbox_mutex_);
    for (auto& s : samples) {
      s->arrival = next_arrival_++;
      inbox_.push_back(std::move(s));
    }
    waiting_count_ += static_cast<size_t>(r.n);
  }
  inbox_ready_.notify_one();
  return state->stream;
}

EngineEvent Engine::score(std::vector<int32_t> prompt, std::vector<int32_t> continuation,
                          bool prompt_logprobs) {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.score_ids = std::move(continuation);
  r.prompt_logprobs = prompt_logprobs;
  r.max_tokens = 0;
  r.sampling.temperature = 0.0f;
  const std::shared_ptr<RequestStream> stream = submit(std::move(r));
  if (!thread_.joinable()) run_until_idle();
  std::optional<EngineEvent> scored;
  while (std::optional<EngineEvent> e = stream->next()) {
    if (e->kind == EngineEvent::Kind::scored) scored = std::move(e);
  }
  check(scored.has_value(), "score: the request was cancelled before it was scored");
  return *scored;
}

// ---- the step ----

bool Engine::step() {
  const Clock::time_point start = Clock::now();
  serve_exclusive();
  take_submissions();
  retire_cancelled();
  const uint64_t preempted_before = scheduler_.preemptions();
  const std::vector<ScheduledChunk>& plan = scheduler_.schedule();  // may preempt the newest
  const uint64_t preempted = scheduler_.preemptions() - preempted_before;
  if (plan.empty()) {
    if (preempted > 0) add_preemptions(preempted);
    publish_gauges();
    return false;
  }
  const Clock::time_point forward_start = Clock::now();
  runner_.forward(plan);  // KV written, logit rows out
  const Clock::time_point forward_end = Clock::now();
  const StepResults results = runner_.sample();  // the host choices, in parallel
  for (const ScheduledChunk& c : plan) {
    scheduler_.computed(c);  // in the cache; full blocks published
    if (output_.commit(c, results)) scheduler_.release(*c.seq);  // scores, tokens, stops, events
  }
  retire_finished();

  const Clock::time_point end = Clock::now();
  const size_t tokens = runner_.batch_tokens();
  {
    std::lock_guard lock(stats_mutex_);
    stats_.steps += 1;
    stats_.preemptions += preempted;
    stats_.batch_tokens += tokens;
    stats_.forward_seconds += seconds_between(forward_start, forward_end);
    stats_.schedule_seconds +=
        seconds_between(start, forward_start) + seconds_between(forward_end, end);
  }
  publish_gauges();
  if (step_observer_) step_observer_(seconds_between(start, end), tokens);
  return true;
}

void Engine::run_until_idle() {
  check(!thread_.joinable(), "run_until_idle: the engine runs on its own thread");
  while (step()) {
  }
}

// ---- queues ----

void Engine::take_submissions() {
  std::vector<std::unique_ptr<Sequence>> arrived;
  {
    std::lock_guard lock(inbox_mutex_);
    if (holding_submissions()) return;
    arrived.swap(inbox_);
  }
  for (auto& s : arrived) {
    Sequence& seq = *s;
    seq.state->stream->set_weights_version(model_.weights_version);
    sequences_.push_back(std::move(s));
    if (!seq.generating() && seq.scores_sent) {
      finish(seq, FinishReason::length);  // max_tokens = 0 and nothing to score
    } else {
      scheduler_.add(seq);
    }
  }
}

void Engine::retire_cancelled() {
  for (const auto& s : sequences_) {
    if (!s->finished && s->state->stream->cancelled()) finish(*s, FinishReason::cancelled);
  }
  retire_finished();
}

void Engine::retire_finished() {
  scheduler_.drop_finished();
  std::erase_if(sequences_, [](const auto& s) { return s->finished; });
  running_count_ = scheduler_.running();
  waiting_count_ = scheduler_.waiting() + [&] {
    std::lock_guard lock(inbox_mutex_);
    return inbox_.size();
  }();
}

void Engine::finish(Sequence& s, FinishReason reason) {
  scheduler_.release(s);
  output_.finish(s, reason);
}

// ---- the engine's thread ----

void Engine::start() {
  check(!thread_.joinable(), "the engine is already started");
  stop_requested_ = false;
  thread_ = std::thread([this] {
    while (!stop_requested_) {
      if (step()) continue;
      std::unique_lock lock(inbox_mutex_);
      inbox_ready_.wait_for(lock, std::chrono::milliseconds(50), [&] {
        return (!inbox_.empty() && !holding_submissions()) || exclusive_ != nullptr ||
               stop_requested_;
      });
    }
  });
}

void Engine::stop() {
  if (!thread_.joinable()) return;
  stop_requested_ = true;
  inbox_ready_.notify_all();
  thread_.join();
}

void Engine::add_preemptions(uint64_t n) {
  std::lock_guard lock(stats_mutex_);
  stats_.preemptions += n;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

void Engine::publish_gauges() {
  const BlockPool& pool = scheduler_.pool();
  PoolGauges g;
  g.total_blocks = pool.total_blocks();
  g.held_blocks = pool.held_blocks();
  g.cached_blocks = pool.cached_blocks();
  g.prefix_hits = pool.prefix_hits();
  g.prefix_lookups = pool.prefix_lookups();
  std::lock_guard lock(stats_mutex_);
  gauges_ = g;
}

PoolGauges Engine::pool_gauges() const {
  std::lock_guard lock(stats_mutex_);
  return gauges_;
}

size_t Engine::waiting_count() const {
  return waiting_count_;
}
size_t Engine::running_count() const {
  return running_count_;
}

}  // namespace bx
