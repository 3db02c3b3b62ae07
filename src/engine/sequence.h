// One sample of one request inside the engine: its tokens, how many of them have K and V in the
// cache, the blocks that hold them, and the output state (text decoding, stop strings, scores).
//
// tokens = prompt (+ score ids) + generated. Positions [0, in_cache) are in the KV cache, in
// blocks[0 .. ceil(in_cache / block_size)). A preempted sequence keeps its tokens and output state
// and drops only its blocks (in_cache = 0): recomputing them gives the same bits.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/block_pool.h"
#include "engine/request.h"
#include "engine/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace bx {

struct RequestState {
  EngineRequest request;
  std::shared_ptr<RequestStream> stream;
};

struct Sequence {
  std::shared_ptr<RequestState> state;
  int sample = 0;
  uint64_t arrival = 0;       // order of submission: lower is older
  SamplingParams sampling;    // the request's, with this sample's seed

  std::vector<int32_t> tokens;
  size_t prompt_length = 0;   // prompt + score ids: the tokens given, not generated
  size_t max_length = 0;      // tokens.size() at which generation ends (length)
  int generated = 0;
  size_t in_cache = 0;
  std::vector<int32_t> blocks;
  std::vector<BlockKey> block_keys;  // keys of the full blocks [0, block_keys.size())

  // Scoring (sample 0 only): logits at positions [score_from, score_until) give the logprob of
  // the token after each; scores[p - score_from] holds it.
  size_t score_from = 0;
  size_t score_until = 0;
  std::vector<float> scores;
  std::vector<std::vector<TokenLogprob>> prompt_top;  // [prompt positions scored] if asked
  bool scores_sent = true;

  std::unique_ptr<StreamingDecoder> decoder;
  std::unique_ptr<StopStringMatcher> stop_matcher;
  bool finished = false;

  size_t pending() const { return tokens.size() - in_cache; }
  bool generating() const { return !finished && tokens.size() < max_length; }
  // Whether the logits at position p are needed: for a score, or to sample the next token.
  bool needs_row(size_t p) const {
    return (!scores_sent && p >= score_from && p < score_until) ||
           (p + 1 == tokens.size() && generating());
  }
  const EngineRequest& request() const { return state->request; }
};

}  // namespace bx
