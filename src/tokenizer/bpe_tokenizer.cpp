#include "tokenizer/bpe_tokenizer.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace bx {

BpeTokenizer::BpeTokenizer(BpeTokenizerParts parts)
    : model_(parts.model),
      normalizer_(std::move(parts.normalizer)),
      pre_tokenizer_(std::move(parts.pre_tokenizer)),
      decoder_(std::move(parts.decoder)),
      prefix_(std::move(parts.special_prefix)),
      suffix_(std::move(parts.special_suffix)),
      bos_id_(parts.bos_id),
      eos_id_(parts.eos_id) {
  int32_t max_id = model_.max_id();
  for (const AddedToken& t : parts.added_tokens) {
    BX_CHECK(t.id >= 0, "added token '" + t.content + "' has id " + std::to_string(t.id) +
                            "; expected an id >= 0");
    BX_CHECK(!t.content.empty(), "added token " + std::to_string(t.id) + " has empty content");
    max_id = std::max(max_id, t.id);
  }
  texts_.resize(static_cast<size_t>(max_id) + 1);
  special_.assign(texts_.size(), 0);
  std::vector<uint8_t> known(texts_.size(), 0);
  for (int32_t id = 0; id <= model_.max_id(); ++id) {
    if (const std::string* text = model_.token_text(id)) {
      texts_[id] = *text;
      known[id] = 1;
    }
  }
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (const AddedToken& t : parts.added_tokens) {
    texts_[t.id] = t.content;
    known[t.id] = 1;
    added_ids_[t.content] = t.id;
    special_[t.id] = t.special ? 1 : 0;
    if (t.normalized) {
      // The package's token string (what decode starts from) is the normalized content.
      texts_[t.id] = normalizer_.apply(t.content);
      normalized.push_back(t);
      normalized_patterns.push_back(texts_[t.id]);
    } else {
      raw.push_back(t);
      raw_patterns.push_back(t.content);
    }
  }
  for (size_t id = 0; id < known.size(); ++id) {
    BX_CHECK(known[id] != 0, "tokenizer: id " + std::to_string(id) +
                                 " has no token; expected ids 0.." + std::to_string(max_id) +
                                 " without gaps");
  }
  raw_matcher_ = AddedTokenMatcher(std::move(raw), std::move(raw_patterns));
  normalized_matcher_ = AddedTokenMatcher(std::move(normalized), std::move(normalized_patterns));
  for (int32_t id : prefix_) check_id(id);
  for (int32_t id : suffix_) check_id(id);
  if (bos_id_ >= 0) check_id(bos_id_);
  if (eos_id_ >= 0) check_id(eos_id_);
}

int32_t BpeTokenizer::vocab_size() const {
  return static_cast<int32_t>(texts_.size());
}

void BpeTokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error("token id " + std::to_string(id) + " is out of range; expected an id in [0, " +
                std::to_string(vocab_size()) + ")");
  }
}

int32_t BpeTokenizer::token_id(std::string_view text) const {
  const auto it = added_ids_.find(text);
  return it != added_ids_.end() ? it->second : model_.token_id(text);
}

const std::string& BpeTokenizer::token_text(int32_t id) const {
  check_id(id);
  return texts_[id];
}

void BpeTokenizer::encode_normalized_piece(std::string_view text, bool at_text_start,
                                           std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::vector<PreToken> words{PreToken{std::string(text), at_text_start}};
  pre_tokenizer_.apply(words);
  for (const PreToken& w : words) model_.encode(w.text, out);
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special) const {
  utf8::require_valid(text);
  std::vector<int32_t> out;
  if (add_special) out = prefix_;
  for (const TextSegment& raw : raw_matcher_.split(text)) {
    if (raw.id >= 0) {
      out.push_back(raw.id);
      continue;
    }
    if (raw.end == raw.start) continue;
    const std::string normalized = normalizer_.apply(text.substr(raw.start, raw.end - raw.start));
    const std::string_view n = normalized;
    for (const TextSegment& piece : normalized_matcher_.split(n)) {
      if (piece.id >= 0) {
        out.push_back(piece.id);
      } else {
        encode_normalized_piece(n.substr(piece.start, piece.end - piece.start),
                                raw.start == 0 && piece.start == 0, out);
      }
    }
  }
  if (add_special) out.insert(out.end(), suffix_.begin(), suffix_.end());
  return out;
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  check_id(id);
  if (special_[id]) return "";
  return decoder_.token_bytes(texts_[id], /*at_sequence_start=*/false);
}

std::string BpeTokenizer::leading_token_bytes(int32_t id) const {
  check_id(id);
  if (special_[id]) return "";
  return decoder_.token_bytes(texts_[id], /*at_sequence_start=*/true);
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    check_id(id);
    if (skip_special && special_[id]) continue;
    tokens.push_back(texts_[id]);
  }
  return decoder_.decode(std::move(tokens));
}

}  // namespace bx
