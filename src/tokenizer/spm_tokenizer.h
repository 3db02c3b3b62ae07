// SentencePiece-style BPE (GGUF `tokenizer.ggml.model = "llama"`). For well-formed UTF-8 it
// gives the same ids as llama.cpp's SPM tokenizer (without special-token parsing) and as the
// `sentencepiece` library's BPE model with byte fallback and an identity normalizer (checked
// against it: tests/ref/make_spm_fixture.py). Ill-formed UTF-8 input is rejected (tokenizer.h).
// Unused tokens are not re-segmented.
//
// Encode (encode(): steps 0..4; encode_plain(): steps 1..4 on the whole text):
//   0. Control, unknown and user-defined tokens are split out of the text first (leftmost,
//      longest first), as llama.cpp does with parse_special and the `tokenizers` package does
//      with Llama-2's tokenizer.json; each text piece between them is encoded on its own
//      (so each gets the dummy prefix). sentencepiece itself does not do this step.
//   1. text -> "▁" + text when add_space_prefix (GGUF `tokenizer.ggml.add_space_prefix`,
//      default true) and the text is not empty; every ' ' becomes "▁" (U+2581).
//   2. Split into UTF-8 characters, one symbol each. A byte that does not start a well-formed
//      character is a symbol of its own.
//   3. Repeatedly merge the adjacent pair of symbols whose concatenation is a vocabulary token
//      with the highest score; on equal scores the leftmost pair. A priority queue of candidate
//      pairs keeps this O(n log n); stale candidates (a side already merged) are skipped.
//   4. Each final symbol is its token; a symbol that is not a token (a character missing from
//      the vocabulary) falls back to one <0xNN> byte token per byte, or, when some of those
//      byte tokens are missing, to one unknown token for the symbol.
// Decode: the concatenated token bytes (token_bytes), ill-formed UTF-8 replaced by U+FFFD; when
// add_space_prefix, the first non-empty piece, if it is a normal token starting with "▁", loses
// that one space (the dummy prefix).
// Control tokens before it (BOS) do not count, as in sentencepiece; llama.cpp instead keeps the
// space after a BOS.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/gguf.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/tokenizer.h"

namespace bx {

// GGUF token types (the same numbers as sentencepiece's ModelProto.SentencePiece.Type).
enum class TokenType : int32_t {
  normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6,
};

struct SpmVocab {
  std::vector<std::string> tokens;  // token text, "▁" for space; byte tokens are "<0xNN>"
  std::vector<float> scores;        // merge priority: higher merges first (empty: all 0)
  std::vector<TokenType> types;     // empty: all normal
  int32_t bos_id = -1;              // -1: none
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  bool add_space_prefix = true;
};

class SpmTokenizer final : public Tokenizer {
 public:
  // Validates: at least one token, scores/types as many as tokens (or empty), bos/eos/unk ids
  // in [-1, vocab size), byte tokens spelled "<0xNN>". Throws bx::Error.
  // When a text occurs twice among the tokens, the later id is the one encode produces
  // (as llama.cpp does).
  explicit SpmTokenizer(SpmVocab vocab);
  // Reads tokenizer.ggml.{model,tokens,scores,token_type,bos_token_id,eos_token_id,
  // unknown_token_id,add_space_prefix}; model must be "llama"; scores, token_type, the ids and
  // add_space_prefix are optional (0, normal, none, true). An id of 0xFFFFFFFF means none.
  static SpmTokenizer from_gguf(const gguf::File& file);

  // With add_special, BOS first (a bx::Error if there is none).
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  // Steps 1..4 only: no special-token matching, no BOS (what sentencepiece gives).
  std::vector<int32_t> encode_plain(std::string_view text) const;
  // normal: the text with "▁" -> " "; user_defined: the text as is; byte: the byte;
  // control/unknown/unused: "" (as llama.cpp). Throws bx::Error for an id outside
  // [0, vocab_size).
  std::string token_bytes(int32_t id) const override;
  std::string leading_token_bytes(int32_t id) const override;
  // Without skip_special, control and unknown tokens give their text ("<s>").
  std::string decode(std::span<const int32_t> ids, bool skip_special = true) const override;
  int32_t vocab_size() const override;
  int32_t bos_id() const override;
  int32_t eos_id() const override;

  const SpmVocab& vocab() const { return vocab_; }
  int32_t unk_id() const { return vocab_.unk_id; }
  // The id of the token whose text is `text`, or -1.
  int32_t token_id(std::string_view text) const;

 private:
  void check_id(int32_t id) const;  // bx::Error unless 0 <= id < vocab_size()
  void encode_piece(std::string_view text, std::vector<int32_t>& out) const;
  std::string decode_bytes(std::span<const int32_t> ids, bool skip_special) const;  // raw

  // Heterogeneous lookup: find a std::string_view without building a std::string.
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  SpmVocab vocab_;
  std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>> token_to_id_;
  std::vector<std::string> pieces_;        // [vocab_size] token_bytes(id), computed once
  std::array<int32_t, 256> byte_token_{};  // id of <0xNN>, or -1
  AddedTokenMatcher special_matcher_;      // control, unknown and user-defined tokens
};

}  // namespace bx
