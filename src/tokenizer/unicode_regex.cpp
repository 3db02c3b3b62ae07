#include "tokenizer/unicode_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace bx {

struct UnicodeRegex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

UnicodeRegex::UnicodeRegex(const std::string& pattern)
    : pattern_(pattern), impl_(std::make_unique<Impl>()) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    throw Error("tokenizer regex '" + pattern +
                "' does not compile: " + reinterpret_cast<const char*>(message) + " at offset " +
                std::to_string(error_offset));
  }
  // JIT is only a speed-up; without it (an unsupported CPU) matching is the same, slower.
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

UnicodeRegex::~UnicodeRegex() = default;

std::vector<std::pair<size_t, size_t>> UnicodeRegex::find_all(std::string_view subject) const {
  std::vector<std::pair<size_t, size_t>> matches;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  check(data != nullptr, "tokenizer regex: out of memory for match data");
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t pos = 0;
  while (pos <= subject.size()) {
    // The subject was checked to be valid UTF-8 before: skip PCRE2's own check.
    const int rc =
        pcre2_match(impl_->code, text, subject.size(), pos, PCRE2_NO_UTF_CHECK, data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(data);
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw Error("tokenizer regex '" + pattern_ +
                  "' failed to match: " + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t start = ovector[0], end = ovector[1];
    if (end > start) {
      matches.emplace_back(start, end);
      pos = end;
    } else {
      // Empty match: not a piece; go on after the next character.
      if (start >= subject.size()) break;
      const utf8::Step step = utf8::next(subject.substr(start));
      pos = start + (step.length == 0 ? 1 : step.length);
    }
  }
  pcre2_match_data_free(data);
  return matches;
}

TextPattern TextPattern::literal(std::string text) {
  TextPattern p;
  p.literal_ = std::move(text);
  return p;
}

TextPattern TextPattern::regex(const std::string& pattern) {
  TextPattern p;
  p.regex_ = std::make_shared<const UnicodeRegex>(pattern);
  return p;
}

std::vector<std::pair<size_t, size_t>> TextPattern::find_all(std::string_view subject) const {
  if (regex_) return regex_->find_all(subject);
  std::vector<std::pair<size_t, size_t>> matches;
  if (literal_.empty()) return matches;
  for (size_t pos = subject.find(literal_); pos != std::string_view::npos;
       pos = subject.find(literal_, pos + literal_.size())) {
    matches.emplace_back(pos, pos + literal_.size());
  }
  return matches;
}

}  // namespace bx
