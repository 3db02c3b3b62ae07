// The object behind bitexact.LLM (python/bitexact): one model and its engine, on the engine's own
// thread, driven from any number of Python threads. Plain C++ (module.cpp binds it); each call
// that waits for the engine is made with the GIL released.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/completion.h"
#include "engine/engine.h"
#include "model/loader.h"
#include "model/weight_update.h"
#include "template/chat_template.h"

namespace bx::python {

struct LlmOptions {
  std::string backend = "cpu";
  std::string mode = "invariant";
  int threads = 0;  // 0 = every hardware thread
  int max_batch_tokens = 512;
  int max_seqs = 64;
  int prefill_chunk = 0;
  int kv_block_size = 16;
  int64_t kv_cache_tokens = 0;
  bool prefix_cache = true;
};

// One sample of a generation, as the server reports it.
struct Sample {
  Completion completion;
  std::string bitexact_hash;  // server/response_hash.h over its ids and logprob bits
  uint64_t weights_version = 0;
  std::string system_fingerprint;  // of that weights_version
};

struct Scored {
  std::vector<float> logprobs;         // of the continuation ids
  std::vector<float> prompt_logprobs;  // of prompt tokens 1.. (when asked)
  std::string bitexact_hash;           // over the continuation, as generation's hash
  uint64_t weights_version = 0;
};

class Llm {
 public:
  Llm(const std::string& model_path, const LlmOptions& options);
  ~Llm();

  // Every request is checked before any is queued (a bad one: bx::Error, nothing runs); then
  // all run through the engine together. Result [request][sample].
  std::vector<std::vector<Sample>> generate(std::vector<EngineRequest> requests);
  // Submits one request for streaming (its events through RequestStream).
  std::shared_ptr<RequestStream> submit(EngineRequest request);
  // Teacher forcing of each (prompt, continuation), all queued together.
  std::vector<Scored> score(const std::vector<std::vector<int32_t>>& prompts,
                            const std::vector<std::vector<int32_t>>& continuations,
                            bool prompt_logprobs);

  uint64_t update_weights(std::vector<WeightSource> sources, InFlight in_flight);
  uint64_t load_weights(const std::string& path, InFlight in_flight);
  // The version the latest update returned (0 before any).
  uint64_t weights_version() const;
  void reset_prefix_cache();

  std::string fingerprint() const;
  // The fingerprint the engine had at weights_version `version`.
  std::string fingerprint_of(uint64_t version) const;
  const LoadedModel& model() const { return model_; }
  const Tokenizer& tokenizer() const;
  // The model's chat template rendered over `messages_json` (a JSON array of messages).
  std::string apply_chat_template(const std::string& messages_json, bool add_generation_prompt,
                                  const std::string& extra_json) const;
  bool device_is_cuda() const;

 private:
  // Inside the engine's exclusive section after an update: the new fingerprint and version.
  void record();

  LoadedModel model_;
  std::unique_ptr<Engine> engine_;
  std::optional<ChatTemplate> chat_template_;
  // The model's fingerprint and version as of the latest update (the engine's thread writes the
  // model's own fields during one).
  mutable std::mutex fingerprint_mutex_;
  std::string fingerprint_;
  uint64_t weights_version_ = 0;
  std::map<uint64_t, std::string> fingerprints_;  // every version's
};

}  // namespace bx::python
