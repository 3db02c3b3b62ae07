// OpenAI request bodies -> native structs, at the edge (only the server layer touches JSON).
//
// Every field is checked for its JSON type and range here; a bad one throws ApiError 400 naming
// the field (param), its value and what was expected. Fields the engine cannot honour
// (frequency/presence penalties, logit_bias, best_of, suffix, tools, a non-text response_format)
// are rejected when set to anything but their neutral value rather than silently ignored.
// Unknown fields are ignored, as OpenAI-compatible servers do. A JSON null counts as absent.
//
// Defaults: temperature 1, top_p 1, top_k 0 (off; -1 also means off), min_p 0, seed 0 (so a
// request without a seed is still reproducible: the output depends only on the request), n 1,
// max_tokens 16 for completions and "until the context is full" for chat.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sampling/sampler.h"

namespace bx::server {

struct GenerationOptions {
  std::string model;  // "" = the served model
  SamplingParams sampling;
  int n = 1;
  std::optional<int> max_tokens;  // absent: the endpoint's default
  int min_tokens = 0;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool logprobs = false;  // report each token's logprob
  int top_logprobs = 0;   // and this many alternatives
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool return_token_ids = false;  // extension (as vLLM): token_ids and prompt_token_ids
};

// A prompt given as text (tokenized with BOS) or as token ids (used as they are).
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

struct CompletionRequest {
  GenerationOptions options;
  std::vector<PromptInput> prompts;  // one or more; each gets n choices
  bool echo = false;
};

struct ChatRequest {
  GenerationOptions options;
  // [{"role": string, "content": string}], content parts already joined into one string.
  nlohmann::json messages;
};

struct ScoreRequest {
  std::string model;
  PromptInput prompt;
  std::vector<int32_t> continuation;
  bool prompt_logprobs = false;
};

struct TokenizeRequest {
  std::string model;
  std::string prompt;
  bool add_special_tokens = true;
};

struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};

inline constexpr int kMaxPrompts = 64;  // prompts in one completion request
inline constexpr int kMaxStopStrings = 16;
// Arrays and objects nested in one request body, at most (the body's own object is level 1).
inline constexpr int kMaxJsonDepth = 64;

// Parses a body as a JSON object; 400 if it is not one, or if it nests arrays and objects more
// than kMaxJsonDepth deep (stopped while parsing, before the deep part is built). Every parser
// below and every error message is then free of deep recursion: shown() walks a value with an
// explicit stack.
nlohmann::json parse_json_object(const std::string& body);

CompletionRequest parse_completion_request(const nlohmann::json& body);
ChatRequest parse_chat_request(const nlohmann::json& body);
ScoreRequest parse_score_request(const nlohmann::json& body);
TokenizeRequest parse_tokenize_request(const nlohmann::json& body);
DetokenizeRequest parse_detokenize_request(const nlohmann::json& body);

}  // namespace bx::server
