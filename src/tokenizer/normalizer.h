// tokenizer.json normalizers: the text rewrites applied, before pre-tokenization, to each piece
// of the input between added tokens (the `tokenizers` package normalizes piece by piece, so a
// Prepend happens once per piece). Supported types, with the package's semantics:
//   NFC, NFD, NFKC, NFKD  Unicode normalization forms (utf8proc).
//   Prepend {prepend}      prepend the string to a non-empty piece.
//   Replace {pattern: {String | Regex}, content}  replace every match.
//   Strip {strip_left, strip_right}  remove leading/trailing White_Space characters.
//   Sequence {normalizers} each in turn; null: none.
// Any other type is a bx::Error naming it.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/unicode_regex.h"

namespace bx {

class Normalizer {
 public:
  Normalizer() = default;  // no normalization
  static Normalizer from_json(const nlohmann::json& spec);

  std::string apply(std::string_view text) const;
  bool empty() const { return steps_.empty(); }

 private:
  enum class Kind { nfc, nfd, nfkc, nfkd, prepend, replace, strip };
  struct Step {
    Kind kind = Kind::nfc;
    std::string text;  // prepend: the prefix; replace: the replacement
    TextPattern pattern = TextPattern::literal("");
    bool left = false, right = false;  // strip
  };
  void add(const nlohmann::json& spec);
  std::vector<Step> steps_;
};

// Unicode White_Space (what Rust's char::is_whitespace tests).
bool is_white_space(char32_t cp);

}  // namespace bx
