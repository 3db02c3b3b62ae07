// tokenizer.json pre-tokenizers: split a normalized piece of text into the words that BPE
// encodes one by one, rewriting them on the way. Supported types, with the `tokenizers`
// package's semantics:
//   ByteLevel {add_prefix_space, use_regex}: a ' ' in front of a piece that does not start with
//     one (if add_prefix_space); then, if use_regex, GPT-2's split
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     (matches and the text between them each a word); then every byte -> its byte-level
//     character (byte_level.h).
//   Split {pattern: {String | Regex}, behavior, invert}: behavior Isolated, Removed,
//     MergedWithPrevious, MergedWithNext or Contiguous, as in the package.
//   Metaspace {replacement, prepend_scheme: always | first | never, split}: ' ' -> replacement;
//     the replacement in front (always; first: only for the piece that starts the text) unless
//     the piece already starts with it; then, if split, a new word at each replacement.
//   Digits {individual_digits}: each numeric character (Nd, Nl, No) its own word, or each run.
//   Sequence {pretokenizers}: each in turn on every word; null: the piece is one word.
// Regexes run in PCRE2 UTF + UCP mode (unicode_regex.h). Empty words are dropped.
// Any other type is a bx::Error naming it.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "tokenizer/unicode_regex.h"

namespace bx {

struct PreToken {
  std::string text;
  bool at_text_start = false;  // begins at byte 0 of the user's text (Metaspace "first")
};

class PreTokenizer {
 public:
  PreTokenizer() = default;  // each piece is one word
  static PreTokenizer from_json(const nlohmann::json& spec);

  enum class Behavior { isolated, removed, merged_with_previous, merged_with_next, contiguous };
  enum class PrependScheme { always, first, never };

  // Built-in steps, for vocabularies that name their pre-tokenizer instead of spelling it out
  // (GGUF `tokenizer.ggml.pre`).
  void add_split(TextPattern pattern, Behavior behavior, bool invert);
  void add_byte_level(bool add_prefix_space, bool use_regex);
  void add_digits(bool individual);

  // Replaces `words` by the words of each, in order.
  void apply(std::vector<PreToken>& words) const;

 private:
  enum class Kind { byte_level, split, metaspace, digits };
  struct Step {
    Kind kind = Kind::split;
    TextPattern pattern = TextPattern::literal("");
    Behavior behavior = Behavior::isolated;
    bool invert = false;
    bool flag = false;  // byte_level: add_prefix_space; digits: individual; metaspace: split
    bool use_regex = true;
    std::string replacement;  // metaspace
    PrependScheme prepend = PrependScheme::always;
  };
  void add(const nlohmann::json& spec);
  void apply_step(const Step& step, std::vector<PreToken>& words) const;
  std::vector<Step> steps_;
};

}  // namespace bx
