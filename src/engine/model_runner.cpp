#include "engine/model_runner.h"

#include <algorithm>
#include <atomic>
#include <limits>

namespace bx {

ModelRunner::ModelRunner(LoadedModel& model, ModelRunnerOptions options)
    : model_(model), options_(options), vocab_(static_cast<size_t>(model.config.vocab_size)) {
  const auto T = static_cast<size_t>(options_.max_batch_tokens);
  const auto R = static_cast<size_t>(options_.max_logit_rows);
  tokens_.reserve(T), positions_.reserve(T), tables_.reserve(T);
  logit_rows_.reserve(R), sample_rows_.reserve(R), host_rows_.reserve(R);
  full_rows_.reserve(R), device_params_.reserve(R), token_indices_.reserve(R);
  logits_.resize(R * vocab_);
  logprobs_.resize(R * vocab_);
  device_ids_.resize(R);
  device_logprobs_.resize(R);
  choices_.resize(R);
  chosen_.assign(R, 0);
  masked_.resize(vocab_);
  sampler_pool_ = std::make_unique<ThreadPool>(options_.sampler_threads);
  thread_samplers_.resize(static_cast<size_t>(options_.sampler_threads));
  thread_masked_.assign(static_cast<size_t>(options_.sampler_threads), std::vector<float>(vocab_));
}

void ModelRunner::build_batch(std::span<const ScheduledChunk> chunks) {
  tokens_.clear(), positions_.clear(), tables_.clear(), logit_rows_.clear();
  sample_rows_.clear(), full_rows_.clear(), device_params_.clear(), token_indices_.clear();
  for (const ScheduledChunk& c : chunks) {
    const Sequence& s = *c.seq;
    for (size_t p = c.first; p < c.first + c.count; ++p) {
      if (s.needs_row(p)) {
        const size_t row = logit_rows_.size();
        logit_rows_.push_back(static_cast<int32_t>(tokens_.size()));
        // A sampling row (the last token) chosen on the device needs only (id, logprob).
        const bool last = p + 1 == s.tokens.size();
        if (last && s.generating()) sample_rows_.push_back(SampleRow{&s, row});
        const bool greedy = last && greedy_on_device(s);
        const bool sampled = last && !greedy && sampled_on_device(s);
        full_rows_.push_back(greedy || sampled ? 0 : 1);
        SamplingParams row_params;  // rows not sampled on the device: the cheap greedy choice
        row_params.temperature = 0.0f;
        device_params_.push_back(sampled ? s.sampling : row_params);
        token_indices_.push_back(sampled ? s.tokens.size() : 0);
      }
      tokens_.push_back(s.tokens[p]);
      positions_.push_back(static_cast<int32_t>(p));
      tables_.push_back(s.blocks.data());
    }
  }
}

void ModelRunner::forward(std::span<const ScheduledChunk> chunks) {
  build_batch(chunks);
  const bool any_device = std::find(full_rows_.begin(), full_rows_.end(), 0) != full_rows_.end();
  bool any_sampled = false;
  for (size_t r = 0; r < full_rows_.size(); ++r) {
    any_sampled = any_sampled || (full_rows_[r] == 0 && device_params_[r].temperature > 0.0f);
  }
  const ForwardBatch batch{tokens_, positions_, tables_, logit_rows_};
  LogitOutputs out;
  out.logits = logits_.data();
  out.logprobs = logprobs_.data();
  out.full = full_rows_;
  if (any_device) {
    out.greedy_ids = device_ids_.data();
    out.greedy_logprobs = device_logprobs_.data();
  }
  if (any_sampled) {
    out.sampling = device_params_;
    out.token_indices = token_indices_;
  }
  model_.model->forward(batch, out);
}

StepResults ModelRunner::sample() {
  host_rows_.clear();
  for (const SampleRow& sr : sample_rows_) {
    if (full_rows_[sr.row] == 0) {
      choices_[sr.row] = Sampler::Choice{device_ids_[sr.row], device_logprobs_[sr.row]};
    } else {
      host_rows_.push_back(sr);
    }
  }
  if (host_rows_.size() >= 2 && sampler_pool_->size() > 1) {
    std::atomic<int> next_slot{0};
    sampler_pool_->parallel_for(
        static_cast<int64_t>(host_rows_.size()), 1, [&](int64_t b, int64_t e) {
          const auto slot = static_cast<size_t>(next_slot++);  // one slot per range: own scratch
          try {
            for (int64_t i = b; i < e; ++i) {
              const SampleRow& sr = host_rows_[static_cast<size_t>(i)];
              choices_[sr.row] =
                  choose(*sr.seq, sr.row, thread_samplers_[slot], thread_masked_[slot]);
              chosen_[sr.row] = 1;
            }
          } catch (...) {
            // Left unchosen: the loop below recomputes the row and throws there.
          }
        });
  }
  for (const SampleRow& sr : host_rows_) {
    if (chosen_[sr.row] == 0) choices_[sr.row] = choose(*sr.seq, sr.row, sampler_, masked_);
    chosen_[sr.row] = 0;
  }
  StepResults results;
  results.logprobs = logprobs_;
  results.choices = choices_;
  results.vocab = vocab_;
  return results;
}

bool ModelRunner::greedy_on_device(const Sequence& s) const {
  const EngineRequest& r = s.request();
  return options_.device_greedy && s.sampling.temperature == 0.0f && r.top_logprobs == 0 &&
         s.generated >= r.min_tokens;
}

bool ModelRunner::sampled_on_device(const Sequence& s) const {
  const EngineRequest& r = s.request();
  return options_.device_sampling && model_.backend->capabilities().device_sampling != nullptr &&
         s.sampling.temperature > 0.0f && r.top_logprobs == 0 && s.generated >= r.min_tokens;
}

Sampler::Choice ModelRunner::choose(const Sequence& s, size_t row, Sampler& sampler,
                                    std::vector<float>& masked) const {
  const EngineRequest& r = s.request();
  const size_t V = vocab_;
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

}  // namespace bx
