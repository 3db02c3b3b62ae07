#include "tokenizer/pre_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"

namespace bx {

namespace {

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Span {
  size_t start = 0, end = 0;
  bool is_match = false;
};

// The matches and the gaps between them, covering [0, size).
std::vector<Span> cover(const std::vector<std::pair<size_t, size_t>>& matches, size_t size,
                        bool invert) {
  std::vector<Span> spans;
  size_t last = 0;
  for (const auto& [start, end] : matches) {
    if (start > last) spans.push_back({last, start, invert});
    spans.push_back({start, end, !invert});
    last = end;
  }
  if (last < size) spans.push_back({last, size, invert});
  return spans;
}

// Which spans become words, as the package's SplitDelimiterBehavior decides.
std::vector<std::pair<size_t, size_t>> words_of(const std::vector<Span>& spans,
                                                PreTokenizer::Behavior behavior) {
  using B = PreTokenizer::Behavior;
  std::vector<std::pair<size_t, size_t>> out;
  bool previous_match = false;
  switch (behavior) {
    case B::isolated:
      for (const Span& s : spans) out.emplace_back(s.start, s.end);
      break;
    case B::removed:
      for (const Span& s : spans) {
        if (!s.is_match) out.emplace_back(s.start, s.end);
      }
      break;
    case B::merged_with_previous:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    case B::merged_with_next:
      for (size_t i = spans.size(); i-- > 0;) {
        const Span& s = spans[i];
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().first = s.start;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case B::contiguous:
      for (size_t i = 0; i < spans.size(); ++i) {
        const Span& s = spans[i];
        if (i > 0 && s.is_match == previous_match) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
  }
  return out;
}

// Splits each word at `matches_of(word)` with `behavior`; empty words are dropped.
template <typename MatchesOf>
void split_words(std::vector<PreToken>& words, PreTokenizer::Behavior behavior, bool invert,
                 MatchesOf matches_of) {
  std::vector<PreToken> out;
  out.reserve(words.size());
  for (PreToken& word : words) {
    const std::vector<Span> spans = cover(matches_of(word.text), word.text.size(), invert);
    for (const auto& [start, end] : words_of(spans, behavior)) {
      if (end <= start) continue;
      out.push_back({word.text.substr(start, end - start), word.at_text_start && start == 0});
    }
  }
  words = std::move(out);
}

bool is_numeric(utf8proc_int32_t cp) {
  const utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

std::vector<std::pair<size_t, size_t>> numeric_characters(const std::string& text) {
  std::vector<std::pair<size_t, size_t>> out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  for (size_t pos = 0; pos < text.size();) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n =
        utf8proc_iterate(p + pos, static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
    const size_t len = n > 0 ? static_cast<size_t>(n) : 1;
    if (n > 0 && is_numeric(cp)) out.emplace_back(pos, pos + len);
    pos += len;
  }
  return out;
}

PreTokenizer::Behavior parse_behavior(const std::string& name) {
  using B = PreTokenizer::Behavior;
  if (name == "Isolated") return B::isolated;
  if (name == "Removed") return B::removed;
  if (name == "MergedWithPrevious") return B::merged_with_previous;
  if (name == "MergedWithNext") return B::merged_with_next;
  if (name == "Contiguous") return B::contiguous;
  throw Error("tokenizer.json: unsupported Split behavior '" + name +
              "'; supported: Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous");
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& spec) {
  PreTokenizer p;
  if (!spec.is_null()) p.add(spec);
  return p;
}

void PreTokenizer::add_split(TextPattern pattern, Behavior behavior, bool invert) {
  Step step;
  step.kind = Kind::split;
  step.pattern = std::move(pattern);
  step.behavior = behavior;
  step.invert = invert;
  steps_.push_back(std::move(step));
}

void PreTokenizer::add_byte_level(bool add_prefix_space, bool use_regex) {
  Step step;
  step.kind = Kind::byte_level;
  step.flag = add_prefix_space;
  step.use_regex = use_regex;
  if (use_regex) step.pattern = TextPattern::regex(kGpt2Pattern);
  steps_.push_back(std::move(step));
}

void PreTokenizer::add_digits(bool individual) {
  Step step;
  step.kind = Kind::digits;
  step.flag = individual;
  steps_.push_back(std::move(step));
}

void PreTokenizer::add(const nlohmann::json& spec) {
  const std::string type = json_fields::type_of(spec, "pre-tokenizer");
  if (type == "Sequence") {
    for (const nlohmann::json& inner : json_fields::array(spec, "pretokenizers", "pre-tokenizer")) {
      add(inner);
    }
  } else if (type == "ByteLevel") {
    add_byte_level(json_fields::boolean(spec, "add_prefix_space", "ByteLevel pre-tokenizer", true),
                   json_fields::boolean(spec, "use_regex", "ByteLevel pre-tokenizer", true));
  } else if (type == "Split") {
    add_split(json_fields::pattern(spec, "Split pre-tokenizer"),
              parse_behavior(json_fields::string(spec, "behavior", "Split pre-tokenizer")),
              json_fields::boolean(spec, "invert", "Split pre-tokenizer", false));
  } else if (type == "Digits") {
    add_digits(json_fields::boolean(spec, "individual_digits", "Digits pre-tokenizer", false));
  } else if (type == "Metaspace") {
    Step step;
    step.kind = Kind::metaspace;
    step.replacement = json_fields::string(spec, "replacement", "Metaspace pre-tokenizer");
    BX_CHECK(!step.replacement.empty(), "tokenizer.json: Metaspace replacement is empty");
    step.flag = json_fields::boolean(spec, "split", "Metaspace pre-tokenizer", true);
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
      const std::string scheme = spec["prepend_scheme"].get<std::string>();
      if (scheme == "always") {
        step.prepend = PrependScheme::always;
      } else if (scheme == "first") {
        step.prepend = PrependScheme::first;
      } else if (scheme == "never") {
        step.prepend = PrependScheme::never;
      } else {
        throw Error("tokenizer.json: Metaspace prepend_scheme is '" + scheme +
                    "'; expected always, first or never");
      }
    } else {  // older files: add_prefix_space
      step.prepend = json_fields::boolean(spec, "add_prefix_space", "Metaspace pre-tokenizer", true)
                         ? PrependScheme::always
                         : PrependScheme::never;
    }
    step.pattern = TextPattern::literal(step.replacement);
    steps_.push_back(std::move(step));
  } else {
    throw Error("tokenizer.json: unsupported pre-tokenizer type '" + type +
                "'; supported: ByteLevel, Split, Metaspace, Digits, Sequence");
  }
}

void PreTokenizer::apply(std::vector<PreToken>& words) const {
  for (const Step& step : steps_) apply_step(step, words);
}

void PreTokenizer::apply_step(const Step& step, std::vector<PreToken>& words) const {
  switch (step.kind) {
    case Kind::split:
      split_words(words, step.behavior, step.invert,
                  [&](const std::string& text) { return step.pattern.find_all(text); });
      break;
    case Kind::digits:
      split_words(words, step.flag ? Behavior::isolated : Behavior::contiguous, false,
                  numeric_characters);
      break;
    case Kind::byte_level:
      if (step.flag) {
        for (PreToken& w : words) {
          if (w.text.empty() || w.text[0] != ' ') w.text = " " + w.text;
        }
      }
      if (step.use_regex) {
        split_words(words, Behavior::isolated, false,
                    [&](const std::string& text) { return step.pattern.find_all(text); });
      }
      for (PreToken& w : words) w.text = byte_level::encode(w.text);
      break;
    case Kind::metaspace:
      for (PreToken& w : words) {
        std::string replaced;
        for (char c : w.text) {
          if (c == ' ') {
            replaced += step.replacement;
          } else {
            replaced.push_back(c);
          }
        }
        const bool starts = replaced.compare(0, step.replacement.size(), step.replacement) == 0;
        const bool prepend = step.prepend == PrependScheme::always ||
                             (step.prepend == PrependScheme::first && w.at_text_start);
        if (prepend && !starts) replaced = step.replacement + replaced;
        w.text = std::move(replaced);
      }
      if (step.flag) {
        split_words(words, Behavior::merged_with_next, false,
                    [&](const std::string& text) { return step.pattern.find_all(text); });
      }
      break;
  }
}

}  // namespace bx
