// Added tokens (tokenizer.json "added_tokens", GGUF control and user-defined tokens): strings
// found in the text before anything else and turned into their id whole, with the `tokenizers`
// package's semantics.
//   - Tokens with normalized = false are searched for in the raw text; those with
//     normalized = true, in each normalized piece between the first kind (their content
//     normalized the same way).
//   - Search: leftmost-longest, non-overlapping, left to right (an Aho-Corasick
//     LeftmostLongest scan). A match that single_word rejects (a word character, Unicode \w,
//     right before or after it) is dropped, not searched again for shorter tokens.
//   - lstrip / rstrip: the match takes in the White_Space before / after it (never text that an
//     earlier match took).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bx {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;     // skipped by decode(..., skip_special = true)
  bool normalized = false;  // matched in normalized text
  bool lstrip = false, rstrip = false, single_word = false;
};

// A piece of text: either an added token (id >= 0) or text to tokenize further.
struct TextSegment {
  int32_t id = -1;
  size_t start = 0, end = 0;  // byte range in the searched text
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is what to look for for `tokens[i]` (its content, or its normalized content).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);

  // The segments covering `text` in order; empty text gives one empty text segment.
  std::vector<TextSegment> split(std::string_view text) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  std::vector<std::vector<uint32_t>> by_first_byte_;  // [256] indices, longest pattern first
};

}  // namespace bx
