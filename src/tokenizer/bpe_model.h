// The BPE model of tokenizer.json (and of GGUF `gpt2` vocabularies): one word -> token ids by
// ranked merges, with the `tokenizers` package's semantics.
//   1. The word is split into characters. Each character that is a vocabulary token is one
//      symbol; one that is not becomes, with byte_fallback and all of its <0xNN> tokens present,
//      one symbol per byte; otherwise the unknown token (consecutive unknowns fused into one
//      with fuse_unk), or nothing at all when there is no unknown token.
//   2. While some adjacent pair of symbols has a merge, the pair with the lowest merge rank is
//      merged (on equal ranks the leftmost); a queued candidate is still valid when the pair
//      now at its place merges into the same token.
//   With ignore_merges, a word that is itself a vocabulary token is that token, unmerged.
// continuing_subword_prefix, end_of_word_suffix and dropout are not supported (a bx::Error at
// load time), since the models this project runs do not use them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bx {

struct BpeModelSpec {
  std::vector<std::pair<std::string, int32_t>> vocab;       // token text, id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::string unk_token;                                    // "" for none
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // Validates: ids unique and >= 0, every merge's two sides and their concatenation are tokens,
  // the unknown token (if any) is a token. Throws bx::Error.
  explicit BpeModel(const BpeModelSpec& spec);

  // Appends the ids of `word` (valid UTF-8) to `out`.
  void encode(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_id(std::string_view text) const;  // -1 if none
  // The text of id, or nullptr if the model has no such id.
  const std::string* token_text(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_text_.size()) - 1; }

 private:
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Merge {
    int32_t rank = 0;
    int32_t result = 0;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* find_merge(int32_t a, int32_t b) const;

  std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>> text_to_id_;
  std::vector<std::string> id_to_text_;  // [max id + 1]
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_token_[256];  // id of <0xNN>, or -1
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
};

}  // namespace bx
