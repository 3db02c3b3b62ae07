#include "tokenizer/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/normalizer.h"

namespace bx {

namespace {

// The code point that ends at `end` (valid UTF-8 before it), and its start.
utf8proc_int32_t code_point_before(std::string_view text, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  utf8proc_int32_t cp = 0;
  utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + start),
                   static_cast<utf8proc_ssize_t>(end - start), &cp);
  return cp;
}

utf8proc_int32_t code_point_at(std::string_view text, size_t pos, size_t& length) {
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t n =
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos),
                       static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
  length = n > 0 ? static_cast<size_t>(n) : 1;
  return cp;
}

// Unicode \w as Rust's regex crate has it: Alphabetic, marks, decimal numbers, connector
// punctuation and Join_Control. (Alphabetic is approximated by the letter categories plus Nl.)
bool is_word_character(utf8proc_int32_t cp) {
  if (cp == 0x200C || cp == 0x200D) return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)), by_first_byte_(256) {
  for (uint32_t i = 0; i < patterns_.size(); ++i) {
    if (patterns_[i].empty()) continue;
    by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(i);
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
      return patterns_[a].size() > patterns_[b].size();
    });
  }
}

std::vector<TextSegment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<TextSegment> out;
  size_t taken = 0;  // text before this is in `out`
  size_t pos = 0;
  while (!tokens_.empty() && pos < text.size()) {
    // The longest pattern starting at `pos`, if any.
    int64_t found = -1;
    for (uint32_t i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (text.compare(pos, patterns_[i].size(), patterns_[i]) == 0) {
        found = i;
        break;
      }
    }
    if (found < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[found];
    size_t start = pos, stop = pos + patterns_[found].size();
    pos = stop;  // the scan goes on after this match whatever happens to it
    if (token.single_word) {
      size_t unused = 0;
      const bool word_before =
          start > 0 && is_word_character(code_point_before(text, start, unused));
      const bool word_after =
          stop < text.size() && is_word_character(code_point_at(text, stop, unused));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      size_t s = start;
      while (s > taken) {
        size_t prev = 0;
        if (!is_white_space(static_cast<char32_t>(code_point_before(text, s, prev)))) break;
        s = prev;
      }
      start = s;
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t len = 0;
        if (!is_white_space(static_cast<char32_t>(code_point_at(text, stop, len)))) break;
        stop += len;
      }
      pos = std::max(pos, stop);
    }
    if (start > taken) out.push_back(TextSegment{-1, taken, start});
    out.push_back(TextSegment{token.id, start, stop});
    taken = stop;
  }
  if (taken < text.size() || out.empty()) out.push_back(TextSegment{-1, taken, text.size()});
  return out;
}

}  // namespace bx
