#include "generate/generator.h"

#include <algorithm>

#include "core/error.h"

namespace bx {

std::string_view finish_reason_name(FinishReason reason) {
  return reason == FinishReason::stop ? "stop" : "length";
}

namespace {

// One request on its way: tokens[0, in_cache) have their K and V in the cache; the rest
// (prompt tokens still to prefill, or the last generated token) go into the next forward calls.
struct Sequence {
  const GenerationRequest* request = nullptr;
  std::vector<int32_t> tokens;  // prompt, then generated
  size_t prompt_length = 0;
  size_t in_cache = 0;
  int max_new = 0;              // min(max_tokens, context - prompt length)
  std::vector<int32_t> block_table;
  bool done = false;
  GenerationResult result;

  size_t pending() const { return tokens.size() - in_cache; }
};

void validate_request(const GenerationRequest& r, size_t index, const ModelConfig& config) {
  const std::string which = "request " + std::to_string(index) + ": ";
  check(!r.prompt.empty(), which + "the prompt has no tokens; expected at least one (e.g. BOS)");
  check(r.prompt.size() < static_cast<size_t>(config.context_length),
        which + "the prompt has " + std::to_string(r.prompt.size()) +
            " tokens but the model's context holds " + std::to_string(config.context_length) +
            ", so at most " + std::to_string(config.context_length - 1) + " fit");
  check(r.max_tokens >= 0, which + "max_tokens is " + std::to_string(r.max_tokens) +
                               ", expected a number >= 0");
  for (int32_t id : r.prompt) {
    check(id >= 0 && id < config.vocab_size,
          which + "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
              std::to_string(config.vocab_size) + ")");
  }
  validate(r.sampling);
}

}  // namespace

Generator::Generator(LoadedModel& model, GeneratorOptions options)
    : model_(model), options_(options) {
  const LlamaModel& m = *model_.model;
  if (options_.max_batch_tokens <= 0) options_.max_batch_tokens = m.max_batch_tokens();
  if (options_.max_seqs <= 0) options_.max_seqs = m.max_logit_rows();
  check(options_.max_batch_tokens <= m.max_batch_tokens(),
        "max batch tokens " + std::to_string(options_.max_batch_tokens) +
            " exceeds what the model was loaded for (" + std::to_string(m.max_batch_tokens()) +
            ")");
  check(options_.max_seqs <= m.max_logit_rows(),
        "max sequences " + std::to_string(options_.max_seqs) +
            " exceeds what the model was loaded for (" + std::to_string(m.max_logit_rows()) + ")");
}

void Generator::validate_requests(std::span<const GenerationRequest> requests) const {
  for (size_t i = 0; i < requests.size(); ++i) validate_request(requests[i], i, model_.config);
}

std::vector<GenerationResult> Generator::run(
    std::span<const GenerationRequest> requests,
    const std::function<void(size_t, int32_t, float)>& on_token) {
  const ModelConfig& config = model_.config;
  validate_requests(requests);

  // Every sequence gets the blocks for its longest possible length up front.
  const int block_size = model_.kv_shape.block_size;
  std::vector<Sequence> seqs(requests.size());
  int64_t next_block = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    Sequence& s = seqs[i];
    s.request = &requests[i];
    s.tokens = requests[i].prompt;
    s.prompt_length = s.tokens.size();
    s.max_new = std::min(requests[i].max_tokens,
                         config.context_length - static_cast<int>(s.prompt_length));
    s.done = s.max_new == 0;
    const int64_t blocks = (static_cast<int64_t>(s.prompt_length) + s.max_new + block_size - 1) /
                           block_size;
    for (int64_t b = 0; b < blocks; ++b) s.block_table.push_back(static_cast<int32_t>(next_block++));
  }
  model_.reserve_kv_blocks(std::max<int64_t>(next_block, 1));

  const size_t V = static_cast<size_t>(config.vocab_size);
  std::vector<float> logits(static_cast<size_t>(options_.max_seqs) * V);
  std::vector<float> logprobs(logits.size());
  std::vector<int32_t> tokens, positions, logit_rows;
  std::vector<const int32_t*> tables;
  std::vector<Sequence*> row_owner;

  // Adds up to `budget` pending tokens of s to the batch; a chunk that reaches the sequence's
  // last token asks for its logits.
  auto add_chunk = [&](Sequence& s, size_t budget) {
    const size_t n = std::min(s.pending(), budget);
    for (size_t j = 0; j < n; ++j) {
      tokens.push_back(s.tokens[s.in_cache + j]);
      positions.push_back(static_cast<int32_t>(s.in_cache + j));
      tables.push_back(s.block_table.data());
    }
    s.in_cache += n;
    if (s.pending() == 0) {
      logit_rows.push_back(static_cast<int32_t>(tokens.size() - 1));
      row_owner.push_back(&s);
    }
  };

  for (;;) {
    tokens.clear(), positions.clear(), tables.clear(), logit_rows.clear(), row_owner.clear();
    const size_t budget = static_cast<size_t>(options_.max_batch_tokens);
    int seqs_in_batch = 0;
    // Decodes first (one token each), then prompt chunks fill the remaining token budget.
    for (int pass = 0; pass < 2; ++pass) {
      for (Sequence& s : seqs) {
        const bool decoding = s.tokens.size() > s.prompt_length;
        if (s.done || decoding != (pass == 0) || s.pending() == 0) continue;
        if (tokens.size() >= budget || seqs_in_batch >= options_.max_seqs) break;
        add_chunk(s, budget - tokens.size());
        ++seqs_in_batch;
      }
    }
    if (tokens.empty()) break;

    ForwardBatch batch{tokens, positions, tables, logit_rows};
    model_.model->forward(batch, logits.data(), logprobs.data());

    for (size_t r = 0; r < row_owner.size(); ++r) {
      Sequence& s = *row_owner[r];
      const std::span<const float> row_logits(logits.data() + r * V, V);
      const std::span<const float> row_logprobs(logprobs.data() + r * V, V);
      const Sampler::Choice choice =
          sampler_.sample(row_logits, row_logprobs, s.request->sampling, s.tokens.size());
      s.tokens.push_back(choice.id);
      s.result.tokens.push_back(choice.id);
      s.result.logprobs.push_back(choice.logprob);
      if (on_token) on_token(static_cast<size_t>(&s - seqs.data()), choice.id, choice.logprob);
      const bool eos = choice.id == model_.tokenizer->eos_id() && !s.request->ignore_eos;
      if (eos) {
        s.done = true;
        s.result.finish = FinishReason::stop;
      } else if (static_cast<int>(s.result.tokens.size()) >= s.max_new) {
        s.done = true;
        s.result.finish = FinishReason::length;
      }
    }
  }

  std::vector<GenerationResult> results;
  results.reserve(seqs.size());
  for (Sequence& s : seqs) results.push_back(std::move(s.result));
  return results;
}

}  // namespace bx
