// A compiled regular expression for tokenizer patterns: PCRE2 in UTF + UCP mode, so \p{L},
// \s, \w and case-insensitive matching follow Unicode properties (as the Oniguruma engine that
// the `tokenizers` package uses does). Patterns come from tokenizer.json (`Split` pre-tokenizer,
// `Replace` normalizer and decoder) or from the GGUF pre-tokenizer table.
//
// find_all gives the non-overlapping matches left to right, as (start, end) byte offsets into
// the subject; an empty match is skipped and the search goes on one character later.
// The subject must be valid UTF-8 (the tokenizers check it first).
// Immutable after construction; find_all may be called from several threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bx {

class UnicodeRegex {
 public:
  // Throws bx::Error naming the pattern and PCRE2's message (with its offset) if it does not
  // compile.
  explicit UnicodeRegex(const std::string& pattern);
  ~UnicodeRegex();
  UnicodeRegex(const UnicodeRegex&) = delete;
  UnicodeRegex& operator=(const UnicodeRegex&) = delete;

  std::vector<std::pair<size_t, size_t>> find_all(std::string_view subject) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

// What a `Split` pre-tokenizer or a `Replace` normalizer/decoder looks for: a literal string
// (tokenizer.json `{"String": ...}`) or a regular expression (`{"Regex": ...}`).
class TextPattern {
 public:
  static TextPattern literal(std::string text);
  static TextPattern regex(const std::string& pattern);  // throws bx::Error if invalid

  // Non-overlapping matches left to right, as (start, end) byte offsets; never empty ones.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view subject) const;

 private:
  std::string literal_;
  std::shared_ptr<const UnicodeRegex> regex_;  // null for a literal
};

}  // namespace bx
