// The tokenizer.json pipeline with a BPE model, as the `tokenizers` package runs it:
//   encode(text):
//     0. Reject ill-formed UTF-8 (tokenizer.h).
//     1. Split out added tokens with normalized = false from the raw text (added_tokens.h).
//     2. Normalize each remaining piece (normalizer.h), then split out added tokens with
//        normalized = true from it.
//     3. Pre-tokenize each remaining piece into words (pre_tokenizer.h).
//     4. BPE-encode each word (bpe_model.h).
//     5. With add_special: prefix + ids + suffix, from the post-processor or from
//        tokenizer_config.json (tokenizer_json.h says which wins).
//   decode(ids): each id -> its token string (added tokens: their content, normalized if the
//   token is matched in normalized text; special ones left out with skip_special), then the
//   decoder steps (token_decoder.h).
// Built from tokenizer.json (tokenizer_json.h) or from a GGUF `gpt2` vocabulary
// (gguf_bpe_tokenizer.h). Immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/token_decoder.h"
#include "tokenizer/tokenizer.h"

namespace bx {

struct BpeTokenizerParts {
  BpeModelSpec model;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  TokenDecoder decoder;
  std::vector<AddedToken> added_tokens;  // ids may be model ids or ids past the model's
  std::vector<int32_t> special_prefix;   // added before the text by encode(..., true)
  std::vector<int32_t> special_suffix;   // added after it
  int32_t bos_id = -1;                   // -1: none
  int32_t eos_id = -1;
};

class BpeTokenizer final : public Tokenizer {
 public:
  // Validates ids (every id in [0, vocab size) has a token; prefix, suffix, BOS and EOS ids
  // exist). Throws bx::Error.
  explicit BpeTokenizer(BpeTokenizerParts parts);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string token_bytes(int32_t id) const override;
  std::string leading_token_bytes(int32_t id) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = true) const override;
  int32_t vocab_size() const override;
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }

  // The id of the token (added or model) whose string is `text`, or -1.
  int32_t token_id(std::string_view text) const;
  // The token string of an id (byte-level / metaspace form for model tokens).
  const std::string& token_text(int32_t id) const;

 private:
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void check_id(int32_t id) const;
  void encode_normalized_piece(std::string_view text, bool at_text_start,
                               std::vector<int32_t>& out) const;

  BpeModel model_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  TokenDecoder decoder_;
  AddedTokenMatcher raw_matcher_;         // normalized = false
  AddedTokenMatcher normalized_matcher_;  // normalized = true
  std::vector<std::string> texts_;        // [vocab size] token strings
  std::vector<uint8_t> special_;          // [vocab size] 1 for special added tokens
  std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>> added_ids_;
  std::vector<int32_t> prefix_, suffix_;
  int32_t bos_id_ = -1, eos_id_ = -1;
};

}  // namespace bx
