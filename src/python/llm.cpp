#include "python/llm.h"

#include <nlohmann/json.hpp>
#include <thread>

#include "backend/choose_backend.h"
#include "core/error.h"
#include "engine/weight_swap.h"
#include "server/response_hash.h"

namespace bx::python {
namespace {

void check_positive(int64_t value, const char* name) {
  check(value > 0,
        std::string(name) + " is " + std::to_string(value) + ", expected a positive number");
}

}  // namespace

Llm::Llm(const std::string& model_path, const LlmOptions& o) {
  check_positive(o.max_batch_tokens, "max_batch_tokens");
  check_positive(o.max_seqs, "max_seqs");
  check_positive(o.kv_block_size, "kv_block_size");
  check(o.prefill_chunk >= 0, "prefill_chunk is " + std::to_string(o.prefill_chunk) +
                                  ", expected a positive number (or 0 for max_batch_tokens)");
  check(o.kv_cache_tokens >= 0, "kv_cache_tokens is " + std::to_string(o.kv_cache_tokens) +
                                    ", expected a positive number (or 0 for automatic)");
  check(o.threads >= 0, "threads is " + std::to_string(o.threads) +
                            ", expected a positive number (or 0 for every core)");
  LoadOptions load;
  const unsigned hw = std::thread::hardware_concurrency();
  load.threads = o.threads > 0 ? o.threads : static_cast<int>(hw == 0 ? 1 : hw);
  load.max_batch_tokens = o.max_batch_tokens;
  load.max_logit_rows = o.max_seqs;
  load.kv_block_size = o.kv_block_size;
  choose_backend(o.backend, o.mode, load);
  model_ = load_model(model_path, load);
  EngineOptions engine;
  engine.max_batch_tokens = o.max_batch_tokens;
  engine.max_seqs = o.max_seqs;
  engine.prefill_chunk = o.prefill_chunk;
  engine.kv_cache_tokens = o.kv_cache_tokens;
  engine.prefix_cache = o.prefix_cache;
  engine_ = std::make_unique<Engine>(model_, engine);
  chat_template_ = ChatTemplate::of_model(model_path);
  fingerprint_ = model_.system_fingerprint();
  fingerprints_[0] = fingerprint_;
  engine_->start();
}

Llm::~Llm() {
  if (engine_) engine_->stop();
}

std::vector<std::vector<Sample>> Llm::generate(std::vector<EngineRequest> requests) {
  std::vector<int> counts;
  std::vector<std::shared_ptr<RequestStream>> streams;
  try {
    for (EngineRequest& r : requests) {
      counts.push_back(r.n);
      streams.push_back(engine_->submit(std::move(r)));
    }
  } catch (...) {
    for (auto& s : streams) s->cancel();
    throw;
  }
  std::vector<std::vector<Sample>> out(streams.size());
  for (size_t i = 0; i < streams.size(); ++i) {
    for (Completion& c : collect(*streams[i], counts[i])) {
      Sample s;
      s.bitexact_hash = server::choice_hash(c.tokens, c.logprobs);
      s.completion = std::move(c);
      s.weights_version = streams[i]->weights_version();
      s.system_fingerprint = fingerprint_of(s.weights_version);
      out[i].push_back(std::move(s));
    }
  }
  return out;
}

std::shared_ptr<RequestStream> Llm::submit(EngineRequest request) {
  return engine_->submit(std::move(request));
}

std::vector<Scored> Llm::score(const std::vector<std::vector<int32_t>>& prompts,
                               const std::vector<std::vector<int32_t>>& continuations,
                               bool prompt_logprobs) {
  check(prompts.size() == continuations.size(),
        "score: " + std::to_string(prompts.size()) + " prompts but " +
            std::to_string(continuations.size()) + " continuations; expected one each");
  std::vector<EngineRequest> requests(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EngineRequest& r = requests[i];
    r.prompt = prompts[i];
    r.score_ids = continuations[i];
    r.prompt_logprobs = prompt_logprobs;
    r.max_tokens = 0;
    r.sampling.temperature = 0.0f;
  }
  std::vector<std::vector<Sample>> samples = generate(std::move(requests));
  std::vector<Scored> out(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    Completion& c = samples[i].at(0).completion;
    check(c.finish != FinishReason::aborted,
          "score: the request was aborted by a weight update before it was scored");
    out[i].logprobs = std::move(c.score_logprobs);
    out[i].prompt_logprobs = std::move(c.prompt_logprobs);
    out[i].bitexact_hash = server::choice_hash(continuations[i], out[i].logprobs);
    out[i].weights_version = samples[i][0].weights_version;
  }
  return out;
}

uint64_t Llm::update_weights(std::vector<WeightSource> sources, InFlight in_flight) {
  return swap_weights(*engine_, model_, std::move(sources), in_flight, [this] { record(); });
}

uint64_t Llm::load_weights(const std::string& path, InFlight in_flight) {
  return swap_weights_from_file(*engine_, model_, path, in_flight, [this] { record(); });
}

void Llm::record() {
  std::lock_guard lock(fingerprint_mutex_);
  fingerprint_ = model_.system_fingerprint();
  weights_version_ = model_.weights_version;
  fingerprints_[weights_version_] = fingerprint_;
}

void Llm::reset_prefix_cache() {
  engine_->run_exclusive([] {}, InFlight::keep);
}

std::string Llm::fingerprint_of(uint64_t version) const {
  std::lock_guard lock(fingerprint_mutex_);
  const auto it = fingerprints_.find(version);
  return it == fingerprints_.end() ? std::string() : it->second;
}

uint64_t Llm::weights_version() const {
  std::lock_guard lock(fingerprint_mutex_);
  return weights_version_;
}

std::string Llm::fingerprint() const {
  std::lock_guard lock(fingerprint_mutex_);
  return fingerprint_;
}

const Tokenizer& Llm::tokenizer() const {
  check(model_.tokenizer != nullptr,
        model_.path +
            ": this model has no tokenizer (a Hugging Face folder needs its "
            "tokenizer.json); give token ids instead of text");
  return *model_.tokenizer;
}

std::string Llm::apply_chat_template(const std::string& messages_json, bool add_generation_prompt,
                                     const std::string& extra_json) const {
  check(chat_template_.has_value(),
        model_.path +
            " has no chat template (tokenizer.chat_template in a GGUF file, "
            "chat_template in a folder's tokenizer_config.json)");
  const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(messages_json);
  const nlohmann::ordered_json extra = extra_json.empty()
                                           ? nlohmann::ordered_json(nullptr)
                                           : nlohmann::ordered_json::parse(extra_json);
  return chat_template_->render(messages, add_generation_prompt, extra);
}

bool Llm::device_is_cuda() const {
  return model_.backend->kv_memory_available() >= 0;
}

}  // namespace bx::python
