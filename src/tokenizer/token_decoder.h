// tokenizer.json decoders: token strings -> text, with the `tokenizers` package's semantics.
// Each step rewrites the list of token strings:
//   ByteLevel      every token's byte-level characters -> its bytes (a token with another
//                  character keeps its UTF-8 as is); all tokens joined into one.
//   Metaspace {replacement, prepend_scheme}  replacement -> ' ', except that in the first token
//                  of the sequence the replacement is dropped (unless prepend_scheme is never).
//   ByteFallback   runs of <0xNN> tokens -> their bytes when they form valid UTF-8, else one
//                  U+FFFD per byte token.
//   Fuse           all tokens joined into one.
//   Strip {content, start, stop}  up to `start` leading and `stop` trailing `content`
//                  characters removed from each token.
//   Replace {pattern, content}    in each token.
//   Sequence {decoders}; null: tokens joined.
// The joined result has any ill-formed UTF-8 replaced by U+FFFD (maximal subparts), as Rust's
// from_utf8_lossy does.
//
// A token's bytes in the middle of a sequence (Tokenizer::token_bytes) come from the same steps
// run on that token alone with `at_sequence_start` false: Metaspace turns every replacement
// into ' ', a Strip that follows a Fuse strips nothing (it strips the whole text's ends), and
// bytes are kept raw (a token may be part of a UTF-8 character).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "tokenizer/unicode_regex.h"

namespace bx {

class TokenDecoder {
 public:
  TokenDecoder() = default;  // tokens joined as they are
  static TokenDecoder from_json(const nlohmann::json& spec);
  void add_byte_level();

  // The text of a whole sequence (valid UTF-8).
  std::string decode(std::vector<std::string> tokens) const;
  // The raw bytes `token` stands for when it is not the first of its sequence, or, with
  // at_sequence_start, when it is.
  std::string token_bytes(const std::string& token, bool at_sequence_start) const;

 private:
  enum class Kind { byte_level, metaspace, byte_fallback, fuse, strip, replace };
  struct Step {
    Kind kind = Kind::fuse;
    std::string text;  // metaspace: replacement; strip: content; replace: content
    TextPattern pattern = TextPattern::literal("");
    bool prepend = true;          // metaspace: prepend_scheme != never
    int64_t start = 0, stop = 0;  // strip
  };
  void add(const nlohmann::json& spec);
  std::string run(std::vector<std::string> tokens, bool at_sequence_start, bool raw) const;
  std::vector<Step> steps_;
};

}  // namespace bx
