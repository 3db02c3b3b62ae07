// One completion or chat request in flight: its prompts' engine streams, what each choice has
// produced so far, and the OpenAI JSON built from it — the whole response, or SSE chunks.
//
// Choice i of prompt p has index p * n + i and is sample i of that prompt's engine request.
// A choice's logprobs are the engine's (log_softmax of the unmodified logits, request.h); its
// "bitexact_hash" (response_hash.h) covers its token ids and logprob bits, and "stop_reason"
// names the stop string or "token:ID" that ended it (null for EOS or length), as vLLM does;
// with return_token_ids, "token_ids" and "prompt_token_ids" (in streaming: on the last chunk).
// With echo and logprobs, prompt tokens after the first carry the engine's prompt logprobs, and
// their top_logprobs the engine's top-k of the same rows (plus the prompt token itself if it is
// not among them), so a client can tell whether the prompt is the greedy continuation.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "server/openai_request.h"

namespace bx::server {

// What a response names besides the choices.
struct ResponseContext {
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  std::string system_fingerprint;
  // When set, the fingerprint of the weights_version the request ran on (prompt 0's stream),
  // instead of system_fingerprint: the weights can change while a request waits (admin_routes.h).
  std::function<std::string(uint64_t weights_version)> fingerprint_of;
};

class Generation {
 public:
  struct Prompt {
    std::vector<int32_t> ids;
    std::string echo_text;  // the prompt as text, for echo
    std::shared_ptr<RequestStream> stream;
    std::vector<float> prompt_logprobs;                 // [ids.size() - 1] when scored
    std::vector<std::vector<TokenLogprob>> prompt_top;  // [ids.size() - 1] when scored with top-k
  };

  // chat: chat.completion objects; otherwise text_completion. Submits every prompt (on an
  // engine error, cancels what it submitted and rethrows).
  Generation(Engine& engine, const Tokenizer& tokenizer, ResponseContext context, bool chat,
             GenerationOptions options, bool echo, std::vector<Prompt> prompts, int max_tokens);
  ~Generation();  // cancels whatever has not finished

  // Non-streaming: waits for every choice, returns the response object. client_gone is asked
  // every kClientPoll while waiting; once it says true, every prompt is cancelled (the engine
  // frees their sequences and KV blocks at its next step) and ClientGone is thrown.
  nlohmann::json wait_for_response(const std::function<bool()>& client_gone);
  static constexpr std::chrono::milliseconds kClientPoll{20};

  // Streaming: the SSE text to send next ("data: {...}\n\n" lines), blocking until the engine
  // has something; empty once everything, including "data: [DONE]", was returned.
  std::string next_sse();
  void cancel();

  uint64_t prompt_tokens() const;
  uint64_t generated_tokens() const;
  // Seconds from construction to the first generated token (nullopt if none yet).
  std::optional<double> time_to_first_token() const { return ttft_; }

 private:
  struct Choice {
    std::vector<int32_t> tokens;
    std::vector<float> logprobs;
    std::vector<std::vector<TokenLogprob>> top;
    std::string text;
    std::optional<FinishReason> finish;
    std::optional<std::string> stop_reason;
  };

  // The echoed prompt's logprobs and alternatives (nullopt / none for the first token).
  void prompt_logprobs(size_t prompt_index, std::vector<std::optional<float>>& lps,
                       std::vector<std::vector<TokenLogprob>>& top) const;
  // Applies an event to its choice; returns the SSE chunks it makes (streaming only).
  std::string consume(size_t prompt_index, const EngineEvent& e, bool streaming);
  nlohmann::json chunk(nlohmann::json choices) const;
  nlohmann::json completion_logprobs(const std::vector<int32_t>& ids,
                                     const std::vector<std::optional<float>>& logprobs,
                                     const std::vector<std::vector<TokenLogprob>>& top,
                                     size_t text_offset) const;
  nlohmann::json chat_logprob_entries(size_t from, const Choice& c) const;
  nlohmann::json finished_choice(size_t index) const;  // non-streaming choice object
  nlohmann::json usage() const;
  std::string echo_text(size_t prompt_index) const;
  std::string token_string(int32_t id) const;
  std::string fingerprint() const;

  Engine& engine_;
  const Tokenizer& tokenizer_;
  ResponseContext context_;
  bool chat_;
  GenerationOptions options_;
  bool echo_;
  std::vector<Prompt> prompts_;
  std::vector<Choice> choices_;
  std::chrono::steady_clock::time_point start_;
  std::optional<double> ttft_;
  // Streaming progress.
  bool stream_started_ = false;
  size_t stream_prompt_ = 0;
  bool stream_done_ = false;
};

// The client of a non-streaming request hung up while it waited.
struct ClientGone : std::exception {
  const char* what() const noexcept override { return "the client closed the connection"; }
};

// Blocks until stream has an event (until_finished: until every sample has finished) or is
// done; true instead if the client left (the caller cancels). client_gone is asked at most once
// per poll, and at least once per poll while events keep coming (next_check carries that clock
// from one call to the next).
bool wait_or_client_gone(RequestStream& stream, const std::function<bool()>& client_gone,
                         std::chrono::milliseconds poll,
                         std::chrono::steady_clock::time_point& next_check,
                         bool until_finished = false);

// "data: " + json + "\n\n", with invalid UTF-8 replaced by U+FFFD.
std::string sse_line(const nlohmann::json& object);
std::string dump_json(const nlohmann::json& object);

}  // namespace bx::server
