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

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

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

}  // namespace

Engine::Engine(LoadedModel& model, EngineOptions options)
    : model_(model),
      options_(options),
      pool_(1, 1),
      max_logit_rows_(model.model->max_logit_rows()) {
  const LlamaModel& m = *model_.model;
  EngineOptions& o = options_;
  if (o.max_batch_tokens <= 0) o.max_batch_tokens = m.max_batch_tokens();
  if (o.max_seqs <= 0) o.max_seqs = m.max_logit_rows();
  if (o.prefill_chunk <= 0) o.prefill_chunk = o.max_batch_tokens;
  check(o.max_batch_tokens <= m.max_batch_tokens(),
        "max batch tokens " + std::to_string(o.max_batch_tokens) +
            " exceeds what the model was loaded for (" + std::to_string(m.max_batch_tokens()) +
            ")");
  check(o.max_seqs <= m.max_logit_rows(),
        "max sequences " + std::to_string(o.max_seqs) +
            " exceeds what the model was loaded for (" + std::to_string(m.max_logit_rows()) + ")");
  if (o.kv_cache_tokens <= 0) o.kv_cache_tokens = default_kv_tokens(model_, o);
  const int block_size = model_.kv_shape.block_size;
  const int64_t n_blocks = (o.kv_cache_tokens + block_size - 1) / block_size;
  pool_ = BlockPool(n_blocks, block_size);
  model_.reserve_kv_blocks(n_blocks);

  const size_t V = static_cast<size_t>(model_.config.vocab_size);
  logits_.resize(static_cast<size_t>(max_logit_rows_) * V);
  logprobs_.resize(logits_.size());
  masked_.resize(V);
  full_rows_.reserve(static_cast<size_t>(max_logit_rows_));
  choices_.resize(static_cast<size_t>(max_logit_rows_));
  chosen_.assign(static_cast<size_t>(max_logit_rows_), 0);
  check(o.sampler_threads >= 0,
        "sampler threads is " + std::to_string(o.sampler_threads) + ", expected >= 0");
  if (o.sampler_threads == 0) {
    o.sampler_threads =
        static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  }
  sampler_pool_ = std::make_unique<ThreadPool>(o.sampler_threads);
  thread_samplers_.resize(static_cast<size_t>(o.sampler_threads));
  thread_masked_.assign(static_cast<size_t>(o.sampler_threads), std::vector<float>(V));
  greedy_ids_.resize(static_cast<size_t>(max_logit_rows_));
  greedy_logprobs_.resize(static_cast<size_t>(max_logit_rows_));
  device_sampling_.reserve(static_cast<size_t>(max_logit_rows_));
  token_indices_.reserve(static_cast<size_t>(max_logit_rows_));
  publish_gauges();
}

Engine::~Engine() { stop(); }

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
  check(r.min_tokens >= 0 && r.min_tokens <= r.max_tokens,
        "min_tokens is " + n_str(r.min_tokens) + ", expected 0 to max_tokens (" +
            n_str(r.max_tokens) + ")");
  check(r.n >= 1 && r.n <= EngineRequest::kMaxSamples,
        "n is " + n_str(r.n) + ", expected 1 to " + n_str(EngineRequest::kMaxSamples));
  check(r.top_logprobs >= 0 && r.top_logprobs <= EngineRequest::kMaxTopLogprobs,
        "top_logprobs is " + n_str(r.top_logprobs) + ", expected 0 to " +
            n_str(EngineRequest::kMaxTopLogprobs));
  check(r.score_ids.empty() || (r.max_tokens == 0 && r.n == 1),
        "scoring continuation ids needs max_tokens = 0 and n = 1");
  bx::validate(r.sampling);
  const size_t longest =
      std::min(given + static_cast<size_t>(r.max_tokens), context);
  const size_t blocks = ceil_div(longest, static_cast<size_t>(pool_.block_size()));
  check(static_cast<int64_t>(blocks) <= pool_.total_blocks(),
        "the request needs up to " + n_str(longest) + " tokens of KV cache (" + n_str(blocks) +
            " blocks) but the pool holds " + n_str(pool_.total_blocks()) +
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
  const std::vector<Chunk> chunks = schedule();  // may preempt the newest sequences
  if (chunks.empty()) {
    publish_gauges();
    return false;
  }
  const Clock::time_point forward_start = Clock::now();
  run_forward(chunks);                           // KV written, logit rows out
  const Clock::time_point forward_end = Clock::now();
  precompute_choices(chunks);                    // host sampling of the step's rows, in parallel
  for (const Chunk& c : chunks) commit(c);       // cache bookkeeping, scores, sampling, stops
  retire_finished();

  const Clock::time_point end = Clock::now();
  {
    std::lock_guard lock(stats_mutex_);
    stats_.steps += 1;
    stats_.batch_tokens += tokens_.size();
    stats_.forward_seconds += seconds_between(forward_start, forward_end);
    stats_.schedule_seconds +=
        seconds_between(start, forward_start) + seconds_between(forward_end, end);
  }
  publish_gauges();
  if (step_observer_) step_observer_(seconds_between(start, end), tokens_.size());
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
      waiting_.push_back(&seq);
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
  const auto is_finished = [](const Sequence* s) { return s->finished; };
  std::erase_if(running_, is_finished);
  std::erase_if(waiting_, is_finished);
  std::erase_if(sequences_, [](const auto& s) { return s->finished; });
  running_count_ = running_.size();
  waiting_count_ = waiting_.size() + [&] {
    std::lock_guard lock(inbox_mutex_);
    return inbox_.size();
  }();
}

void Engine::finish(Sequence& s, FinishReason reason) {
  release_blocks(s);
  s.finished = true;
  EngineEvent e;
  e.kind = EngineEvent::Kind::finished;
  e.sample = s.sample;
  e.finish = reason;
  s.state->stream->push(std::move(e));
}

// ---- scheduling ----

std::vector<Engine::Chunk> Engine::schedule() {
  std::vector<Chunk> chunks;
  size_t tokens_left = static_cast<size_t>(options_.max_batch_tokens);
  size_t rows_left = static_cast<size_t>(max_logit_rows_);
  size_t rows_used = 0;
  const auto add = [&](Sequence& s, size_t n) {
    size_t rows = 0;
    for (size_t p = s.in_cache; p < s.in_cache + n; ++p) rows += s.needs_row(p) ? 1 : 0;
    chunks.push_back(Chunk{&s, s.in_cache, n, rows_used, rows});
    tokens_left -= n;
    rows_left -= rows;
    rows_used += rows;
  };
  const auto seqs_left = [&] { return chunks.size() < static_cast<size_t>(options_.max_seqs); };

  // Running sequences, oldest first. On a shortage the newest gives its blocks back.
  for (size_t i = 0; i < running_.size() && seqs_left(); ++i) {
    Sequence& s = *running_[i];
    const size_t n = chunk_length(s, tokens_left, rows_left);
    if (n == 0) continue;
    bool preempted_self = false;
    while (!reserve_blocks(s, s.in_cache + n)) {
      Sequence& victim = *running_.back();
      preempt(victim);
      if (&victim == &s) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) return chunks;  // no memory left for anyone newer either
    add(s, n);
  }
  // Waiting sequences in arrival order, while their next chunk fits.
  while (!waiting_.empty() && seqs_left()) {
    Sequence& s = *waiting_.front();
    attach_cached_prefix(s);
    const size_t n = chunk_length(s, tokens_left, rows_left);
    if (n == 0 || !reserve_blocks(s, s.in_cache + n)) {
      release_blocks(s);
      break;
    }
    waiting_.pop_front();
    running_.insert(std::upper_bound(running_.begin(), running_.end(), &s,
                                     [](const Sequence* a, const Sequence* b) {
                                       return a->arrival < b->arrival;
                                     }),
                    &s);
    add(s, n);
  }
  return chunks;
}

size_t Engine::chunk_length(const Sequence& s, size_t tokens_left, size_t rows_left) const {
  const size_t pending = s.pending();
  if (pending == 0) return 0;
  size_t n = std::min(pending, tokens_left);
  if (pending > 1) n = std::min(n, static_cast<size_t>(options_.prefill_chunk));
  // Fewer tokens if their logit rows would not fit this step.
  size_t rows = 0;
  size_t fit = 0;
  for (size_t p = s.in_cache; p < s.in_cache + n; ++p) {
    rows += s.needs_row(p) ? 1 : 0;
    if (rows > rows_left) break;
    fit = p - s.in_cache + 1;
  }
  return fit;
}

bool Engine::reserve_blocks(Sequence& s, size_t positions) {
  const size_t needed = ceil_div(positions, static_cast<size_t>(pool_.block_size()));
  while (s.blocks.size() < needed) {
    const std::optional<int32_t> block = pool_.allocate();
    if (!block) return false;
    s.blocks.push_back(*block);
  }
  return true;
}

// A fresh (or preempted) sequence takes the longest run of published blocks that matches its
// tokens. It leaves at least one position to compute (the logits of the last token are needed)
// and computes every position whose logits a score needs.
void Engine::attach_cached_prefix(Sequence& s) {
  if (!options_.prefix_cache || !s.blocks.empty()) return;
  const size_t bs = static_cast<size_t>(pool_.block_size());
  size_t limit = (s.tokens.size() - 1) / bs;
  if (!s.scores_sent) limit = std::min(limit, s.score_from / bs);
  BlockKey parent;
  for (size_t b = 0; b < limit; ++b) {
    const std::span<const int32_t> block_tokens(s.tokens.data() + b * bs, bs);
    const BlockKey key = block_key(parent, block_tokens);
    const std::optional<int32_t> block = pool_.find(key, parent, block_tokens);
    pool_.count_lookup(block.has_value());
    if (!block) break;
    pool_.retain(*block);
    s.blocks.push_back(*block);
    s.block_keys.push_back(key);
    parent = key;
  }
  s.in_cache = s.blocks.size() * bs;
}

void Engine::release_blocks(Sequence& s) {
  for (int32_t b : s.blocks) pool_.release(b);
  s.blocks.clear();
  s.block_keys.clear();
  s.in_cache = 0;
}

void Engine::preempt(Sequence& s) {
  release_blocks(s);
  std::erase(running_, &s);
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), &s,
                                   [](const Sequence* a, const Sequence* b) {
                                     return a->arrival < b->arrival;
                                   }),
                  &s);
  std::lock_guard lock(stats_mutex_);
  ++stats_.preemptions;
}

// ---- forward and its results ----

void Engine::run_forward(const std::vector<Chunk>& chunks) {
  tokens_.clear(), positions_.clear(), tables_.clear(), logit_rows_.clear(), full_rows_.clear();
  device_sampling_.clear(), token_indices_.clear();
  bool any_greedy = false, any_sampled = false;
  for (const Chunk& c : chunks) {
    const Sequence& s = *c.seq;
    for (size_t p = c.first; p < c.first + c.count; ++p) {
      if (s.needs_row(p)) {
        logit_rows_.push_back(static_cast<int32_t>(tokens_.size()));
        // A sampling row (the last token) chosen on the device needs only (id, logprob).
        const bool last = p + 1 == s.tokens.size();
        const bool greedy = last && greedy_on_device(s);
        const bool sampled = last && !greedy && sampled_on_device(s);
        full_rows_.push_back(greedy || sampled ? 0 : 1);
        any_greedy = any_greedy || greedy;
        any_sampled = any_sampled || sampled;
        SamplingParams row_params;  // rows not sampled on the device: the cheap greedy choice
        row_params.temperature = 0.0f;
        device_sampling_.push_back(sampled ? s.sampling : row_params);
        token_indices_.push_back(sampled ? s.tokens.size() : 0);
      }
      tokens_.push_back(s.tokens[p]);
      positions_.push_back(static_cast<int32_t>(p));
      tables_.push_back(s.blocks.data());
    }
  }
  const ForwardBatch batch{tokens_, positions_, tables_, logit_rows_};
  LogitOutputs out;
  out.logits = logits_.data();
  out.logprobs = logprobs_.data();
  out.full = full_rows_;
  if (any_greedy || any_sampled) {
    out.greedy_ids = greedy_ids_.data();
    out.greedy_logprobs = greedy_logprobs_.data();
  }
  if (any_sampled) {
    out.sampling = device_sampling_;
    out.token_indices = token_indices_;
  }
  model_.model->forward(batch, out);
}

void Engine::commit(const Chunk& c) {
  Sequence& s = *c.seq;
  const size_t V = static_cast<size_t>(model_.config.vocab_size);
  size_t row = c.first_row;
  std::optional<size_t> sample_row;
  for (size_t p = c.first; p < c.first + c.count; ++p) {
    if (!s.needs_row(p)) continue;
    if (!s.scores_sent && p >= s.score_from && p < s.score_until) {
      s.scores[p - s.score_from] = logprobs_[row * V + static_cast<size_t>(s.tokens[p + 1])];
    }
    if (p + 1 == s.tokens.size() && s.generating()) sample_row = row;
    ++row;
  }
  s.in_cache = c.first + c.count;
  publish_full_blocks(s);

  if (!s.scores_sent && s.in_cache >= s.score_until) {
    EngineEvent e;
    e.kind = EngineEvent::Kind::scored;
    e.sample = s.sample;
    const size_t n_prompt = s.request().prompt_logprobs ? s.request().prompt.size() - 1 : 0;
    e.prompt_logprobs.assign(s.scores.begin(), s.scores.begin() + static_cast<ptrdiff_t>(n_prompt));
    e.score_logprobs.assign(s.scores.begin() + static_cast<ptrdiff_t>(n_prompt), s.scores.end());
    s.state->stream->push(std::move(e));
    s.scores_sent = true;
  }
  if (sample_row) {
    sample_next(s, *sample_row);
  } else if (s.pending() == 0 && !s.generating() && !s.finished) {
    finish(s, FinishReason::length);  // scored only (max_tokens 0)
  }
}

void Engine::publish_full_blocks(Sequence& s) {
  const size_t bs = static_cast<size_t>(pool_.block_size());
  while ((s.block_keys.size() + 1) * bs <= s.in_cache) {
    const size_t b = s.block_keys.size();
    const BlockKey parent = b ? s.block_keys[b - 1] : BlockKey{};
    const std::span<const int32_t> block_tokens(s.tokens.data() + b * bs, bs);
    const BlockKey key = block_key(parent, block_tokens);
    s.block_keys.push_back(key);
    if (options_.prefix_cache) pool_.publish(s.blocks[b], key, parent, block_tokens);
  }
}

// Greedy with nothing but the chosen id's logprob to report, and no ids masked: the device's
// argmax (ties to the lowest id) is exactly the Sampler's greedy choice.
bool Engine::greedy_on_device(const Sequence& s) const {
  const EngineRequest& r = s.request();
  return options_.device_greedy && s.sampling.temperature == 0.0f && r.top_logprobs == 0 &&
         s.generated >= r.min_tokens;
}

// Sampled with nothing but the chosen id's logprob to report and no ids masked, on a backend
// whose sample_rows runs on its device: Backend::sample_rows gives the Sampler's bits.
bool Engine::sampled_on_device(const Sequence& s) const {
  const EngineRequest& r = s.request();
  return options_.device_sampling && model_.backend->can_sample_rows() &&
         s.sampling.temperature > 0.0f && r.top_logprobs == 0 && s.generated >= r.min_tokens;
}

Sampler::Choice Engine::choose(const Sequence& s, size_t row, Sampler& sampler,
                               std::vector<float>& masked) const {
  const EngineRequest& r = s.request();
  const size_t V = static_cast<size_t>(model_.config.vocab_size);
  const float* logits = logits_.data() + row * V;
  const float* logprobs = logprobs_.data() + row * V;
  std::span<const float> logit_row(logits, V);
  if (s.generated < r.min_tokens) {  // EOS and stop ids may not be chosen yet
    std::copy(logits, logits + V, masked.begin());
    for (int32_t id : model_.config.eos_token_ids) {
      masked[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
    }
    for (int32_t id : r.stop_token_ids) {
      masked[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
    }
    logit_row = masked;
  }
  return sampler.sample(logit_row, std::span<const float>(logprobs, V), s.sampling,
                        s.tokens.size());
}

void Engine::precompute_choices(const std::vector<Chunk>& chunks) {
  std::vector<std::pair<const Sequence*, size_t>> work;  // (sequence, row) sampled on the host
  for (const Chunk& c : chunks) {
    const Sequence& s = *c.seq;
    const size_t last = s.tokens.size() - 1;
    if (!s.generating() || last < c.first || last >= c.first + c.count) continue;
    size_t row = c.first_row;  // the sample row is the chunk's last row
    for (size_t p = c.first; p < last; ++p) row += s.needs_row(p) ? 1 : 0;
    if (full_rows_[row] != 0) work.emplace_back(&s, row);
  }
  if (work.size() < 2 || sampler_pool_->size() == 1) return;  // sample_next does it inline
  std::atomic<int> next_slot{0};
  std::atomic<bool> failed{false};
  sampler_pool_->parallel_for(static_cast<int64_t>(work.size()), 1, [&](int64_t b, int64_t e) {
    const auto slot = static_cast<size_t>(next_slot++);  // one slot per range: its own scratch
    try {
      for (int64_t i = b; i < e; ++i) {
        const auto [s, row] = work[static_cast<size_t>(i)];
        choices_[row] = choose(*s, row, thread_samplers_[slot], thread_masked_[slot]);
        chosen_[row] = 1;
      }
    } catch (...) {
      failed = true;  // sample_next recomputes the row inline and throws there
    }
  });
  (void)failed;
}

void Engine::sample_next(Sequence& s, size_t row) {
  const EngineRequest& r = s.request();
  const std::vector<int32_t>& eos_ids = model_.config.eos_token_ids;
  const size_t V = static_cast<size_t>(model_.config.vocab_size);
  const float* logprobs = logprobs_.data() + row * V;
  Sampler::Choice choice{};
  if (full_rows_[row] == 0) {
    choice = Sampler::Choice{greedy_ids_[row], greedy_logprobs_[row]};
  } else if (chosen_[row] != 0) {
    choice = choices_[row];
    chosen_[row] = 0;
  } else {
    choice = choose(s, row, sampler_, masked_);
  }
  s.tokens.push_back(choice.id);
  s.generated += 1;

  EngineEvent e;
  e.sample = s.sample;
  e.token = choice.id;
  e.logprob = choice.logprob;
  if (r.top_logprobs > 0) e.top_logprobs = top_logprobs(std::span(logprobs, V), r.top_logprobs);
  std::optional<std::string> stop_reason;
  bool stopped = false;
  const bool stop_id = std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), choice.id) !=
                       r.stop_token_ids.end();
  const bool eos = std::find(eos_ids.begin(), eos_ids.end(), choice.id) != eos_ids.end();
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

  if (!stopped && s.tokens.size() < s.max_length) return;
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
  release_blocks(s);
  s.finished = true;
  s.state->stream->push(std::move(done));
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

EngineStats Engine::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

void Engine::publish_gauges() {
  PoolGauges g;
  g.total_blocks = pool_.total_blocks();
  g.held_blocks = pool_.held_blocks();
  g.cached_blocks = pool_.cached_blocks();
  g.prefix_hits = pool_.prefix_hits();
  g.prefix_lookups = pool_.prefix_lookups();
  std::lock_guard lock(stats_mutex_);
  gauges_ = g;
}

PoolGauges Engine::pool_gauges() const {
  std::lock_guard lock(stats_mutex_);
  return gauges_;
}

size_t Engine::waiting_count() const { return waiting_count_; }
size_t Engine::running_count() const { return running_count_; }

}  // namespace bx
