#include "tokenizer/spm_tokenizer.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <queue>
#include <utility>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace bx {

namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xNN>" -> NN, or -1 when `text` is not of that form.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  const int hi = hex_digit(text[3]);
  const int lo = hex_digit(text[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

std::string byte_token_text(int byte) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", byte);
  return buf;
}

void check_special_id(int32_t id, int32_t n_vocab, std::string_view what) {
  check(id >= -1 && id < n_vocab, "SentencePiece vocabulary: " + std::string(what) + " id " +
                                      std::to_string(id) +
                                      " is out of range; expected -1 (none) "
                                      "or an id in [0, " +
                                      std::to_string(n_vocab) + ")");
}

// ---- Encoding state: one symbol per character, merged in place. --------------------------

constexpr size_t kNone = std::numeric_limits<size_t>::max();

struct Symbol {
  size_t start = 0;  // byte offset in the escaped text
  size_t size = 0;   // bytes; 0 once merged into the symbol on its left
  size_t prev = kNone;
  size_t next = kNone;
};

// A candidate merge of two adjacent symbols into one token.
struct Bigram {
  float score = 0;
  size_t left = 0;
  size_t right = 0;
  size_t size = 0;  // bytes of the merged text: stale if either side has changed since
};

// priority_queue's top is the "largest": the highest score, then the smallest `left`.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    if (a.score != b.score) return a.score < b.score;
    return a.left > b.left;
  }
};

}  // namespace

SpmTokenizer::SpmTokenizer(SpmVocab vocab) : vocab_(std::move(vocab)) {
  const size_t n = vocab_.tokens.size();
  check(n > 0, "SentencePiece vocabulary has no tokens; expected at least one");
  check(n <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
        "SentencePiece vocabulary has " + std::to_string(n) + " tokens; expected at most 2^31 - 1");
  const auto n_vocab = static_cast<int32_t>(n);
  if (vocab_.scores.empty()) vocab_.scores.assign(n, 0.0f);
  if (vocab_.types.empty()) vocab_.types.assign(n, TokenType::normal);
  check(vocab_.scores.size() == n, "SentencePiece vocabulary has " + std::to_string(n) +
                                       " tokens but " + std::to_string(vocab_.scores.size()) +
                                       " scores; expected one score per token");
  check(vocab_.types.size() == n, "SentencePiece vocabulary has " + std::to_string(n) +
                                      " tokens but " + std::to_string(vocab_.types.size()) +
                                      " token types; expected one type per token");
  check_special_id(vocab_.bos_id, n_vocab, "BOS");
  check_special_id(vocab_.eos_id, n_vocab, "EOS");
  check_special_id(vocab_.unk_id, n_vocab, "unknown");

  token_to_id_.reserve(n);
  pieces_.resize(n);
  for (int32_t id = 0; id < n_vocab; ++id) {
    const std::string& text = vocab_.tokens[id];
    const float score = vocab_.scores[id];
    if (std::isnan(score)) {
      throw Error("SentencePiece vocabulary: token " + std::to_string(id) +
                  " has a NaN score; expected a number");
    }
    token_to_id_[text] = id;  // a repeated text maps to its last id, as in llama.cpp
    switch (vocab_.types[id]) {
      case TokenType::normal:
        pieces_[id] = replace_all(text, kSpaceMarker, " ");
        break;
      case TokenType::user_defined:
        pieces_[id] = text;
        break;
      case TokenType::control:
      case TokenType::unknown:
      case TokenType::unused:
        break;  // prints nothing
      case TokenType::byte: {
        const int byte = parse_byte_token(text);
        if (byte < 0) {
          throw Error("SentencePiece vocabulary: token " + std::to_string(id) +
                      " has type byte but its text \"" + text + "\" is not of the form <0xNN>");
        }
        pieces_[id] = std::string(1, static_cast<char>(byte));
        break;
      }
      default:
        throw Error("SentencePiece vocabulary: token " + std::to_string(id) + " has type " +
                    std::to_string(static_cast<int32_t>(vocab_.types[id])) +
                    "; expected 1 (normal) .. 6 (byte)");
    }
  }
  for (int b = 0; b < 256; ++b) {
    const int32_t id = token_id(byte_token_text(b));
    byte_token_[b] = (id >= 0 && vocab_.types[id] == TokenType::byte) ? id : -1;
  }
  std::vector<AddedToken> specials;
  std::vector<std::string> patterns;
  for (int32_t id = 0; id < n_vocab; ++id) {
    const TokenType type = vocab_.types[id];
    const std::string& text = vocab_.tokens[id];
    if (text.empty() || token_to_id_[text] != id) continue;  // a repeated text: its last id
    if (type == TokenType::control || type == TokenType::unknown ||
        type == TokenType::user_defined) {
      AddedToken t;
      t.id = id;
      t.content = text;
      t.special = type != TokenType::user_defined;
      specials.push_back(t);
      patterns.push_back(text);
    }
  }
  special_matcher_ = AddedTokenMatcher(std::move(specials), std::move(patterns));
}

SpmTokenizer SpmTokenizer::from_gguf(const gguf::File& file) {
  const std::string model_key = "tokenizer.ggml.model";
  check(file.has(model_key), file.path() + ": no " + model_key +
                                 "; expected \"llama\" (a SentencePiece-style vocabulary)");
  const std::string model = file.get_string(model_key);
  check(model == "llama", file.path() + ": " + model_key + " is \"" + model +
                              "\"; expected \"llama\" (SentencePiece-style BPE)");

  SpmVocab vocab;
  vocab.tokens = file.get_string_array("tokenizer.ggml.tokens");
  const size_t n = vocab.tokens.size();
  auto check_length = [&](std::string_view key, size_t length) {
    check(length == n, file.path() + ": " + std::string(key) + " has " + std::to_string(length) +
                           " entries; expected " + std::to_string(n) +
                           " (one per entry of tokenizer.ggml.tokens)");
  };

  if (file.has("tokenizer.ggml.scores")) {
    const std::vector<double> scores = file.get_float_array("tokenizer.ggml.scores");
    check_length("tokenizer.ggml.scores", scores.size());
    vocab.scores.reserve(n);
    for (double s : scores) vocab.scores.push_back(static_cast<float>(s));
  }
  if (file.has("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> types = file.get_int_array("tokenizer.ggml.token_type");
    check_length("tokenizer.ggml.token_type", types.size());
    vocab.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 1 || types[i] > 6) {
        throw Error(file.path() + ": tokenizer.ggml.token_type[" + std::to_string(i) + "] is " +
                    std::to_string(types[i]) + "; expected 1 (normal) .. 6 (byte)");
      }
      vocab.types.push_back(static_cast<TokenType>(types[i]));
    }
  }

  auto read_id = [&](const std::string& key) -> int32_t {
    if (!file.has(key)) return -1;
    const int64_t id = file.get_int(key);
    if (id == -1 || id == 0xFFFFFFFFll) return -1;  // "none", as llama.cpp writes it
    check(id >= 0 && static_cast<uint64_t>(id) < n,
          file.path() + ": " + key + " is " + std::to_string(id) + "; expected an id in [0, " +
              std::to_string(n) + ")");
    return static_cast<int32_t>(id);
  };
  vocab.bos_id = read_id("tokenizer.ggml.bos_token_id");
  vocab.eos_id = read_id("tokenizer.ggml.eos_token_id");
  vocab.unk_id = read_id("tokenizer.ggml.unknown_token_id");
  if (file.has("tokenizer.ggml.add_space_prefix")) {
    vocab.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix");
  }
  try {
    return SpmTokenizer(std::move(vocab));
  } catch (const Error& e) {
    throw Error(file.path() + ": " + e.what());
  }
}

int32_t SpmTokenizer::token_id(std::string_view text) const {
  const auto it = token_to_id_.find(text);
  return it == token_to_id_.end() ? -1 : it->second;
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_special) const {
  utf8::require_valid(text);
  std::vector<int32_t> out;
  if (add_special) {
    check(vocab_.bos_id >= 0,
          "encode with add_special: the vocabulary has no BOS token; "
          "expected tokenizer.ggml.bos_token_id");
    out.push_back(vocab_.bos_id);
  }
  for (const TextSegment& segment : special_matcher_.split(text)) {
    if (segment.id >= 0) {
      out.push_back(segment.id);
    } else {
      encode_piece(text.substr(segment.start, segment.end - segment.start), out);
    }
  }
  return out;
}

std::vector<int32_t> SpmTokenizer::encode_plain(std::string_view text) const {
  utf8::require_valid(text);
  std::vector<int32_t> out;
  encode_piece(text, out);
  return out;
}

void SpmTokenizer::encode_piece(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;

  // 1. Escape: optional dummy prefix, ' ' -> "▁".
  std::string escaped;
  escaped.reserve(text.size() + kSpaceMarker.size());
  if (vocab_.add_space_prefix) escaped.append(kSpaceMarker);
  for (char c : text) {
    if (c == ' ') {
      escaped.append(kSpaceMarker);
    } else {
      escaped.push_back(c);
    }
  }
  const std::string_view s = escaped;

  // 2. One symbol per UTF-8 character; a byte that starts no well-formed character is alone.
  std::vector<Symbol> symbols;
  symbols.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    const utf8::Step step = utf8::next(s.substr(pos));
    const size_t len = step.status == utf8::Status::valid ? step.length : 1;
    Symbol sym;
    sym.start = pos;
    sym.size = len;
    sym.prev = symbols.empty() ? kNone : symbols.size() - 1;
    sym.next = pos + len < s.size() ? symbols.size() + 1 : kNone;
    symbols.push_back(sym);
    pos += len;
  }

  // 3. Greedy merges, best score first, leftmost on ties.
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](size_t left, size_t right) {
    if (left == kNone || right == kNone) return;
    const std::string_view merged =
        s.substr(symbols[left].start, symbols[left].size + symbols[right].size);
    const int32_t id = token_id(merged);
    if (id < 0) return;
    queue.push(Bigram{vocab_.scores[id], left, right, merged.size()});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != top.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next != kNone) symbols[right.next].prev = top.left;
    try_add(left.prev, top.left);
    try_add(top.left, left.next);
  }

  // 4. Symbols -> ids, with byte fallback.
  for (size_t i = 0; i != kNone; i = symbols[i].next) {
    const std::string_view piece = s.substr(symbols[i].start, symbols[i].size);
    const int32_t id = token_id(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    bool have_bytes = true;
    for (char c : piece) have_bytes = have_bytes && byte_token_[static_cast<unsigned char>(c)] >= 0;
    if (have_bytes) {
      for (char c : piece) out.push_back(byte_token_[static_cast<unsigned char>(c)]);
    } else {
      if (vocab_.unk_id < 0) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(piece[0]));
        throw Error("encode: the character starting with byte " + std::string(hex) +
                    " is not in the vocabulary, which has neither its <0xNN> byte tokens nor an "
                    "unknown token");
      }
      out.push_back(vocab_.unk_id);
    }
  }
}

void SpmTokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error("token id " + std::to_string(id) + " is out of range; expected an id in [0, " +
                std::to_string(vocab_size()) + ")");
  }
}

std::string SpmTokenizer::token_bytes(int32_t id) const {
  check_id(id);
  return pieces_[id];
}

std::string SpmTokenizer::leading_token_bytes(int32_t id) const {
  return decode_bytes(std::span<const int32_t>(&id, 1), true);
}

std::string SpmTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  return utf8::sanitize(decode_bytes(ids, skip_special));
}

std::string SpmTokenizer::decode_bytes(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  bool first_piece = true;
  for (int32_t id : ids) {
    check_id(id);
    const TokenType type = vocab_.types[id];
    if (!skip_special && (type == TokenType::control || type == TokenType::unknown)) {
      out += vocab_.tokens[id];  // does not count as the first piece either
      continue;
    }
    const std::string& piece = pieces_[id];
    if (piece.empty()) continue;  // control tokens do not count as the first piece
    // Only a "▁" can be the dummy prefix: a byte token <0x20> keeps its space.
    if (first_piece && vocab_.add_space_prefix && vocab_.types[id] == TokenType::normal &&
        piece[0] == ' ') {
      out.append(piece, 1);
    } else {
      out.append(piece);
    }
    first_piece = false;
  }
  return out;
}

int32_t SpmTokenizer::vocab_size() const {
  return static_cast<int32_t>(vocab_.tokens.size());
}
int32_t SpmTokenizer::bos_id() const {
  return vocab_.bos_id;
}
int32_t SpmTokenizer::eos_id() const {
  return vocab_.eos_id;
}

}  // namespace bx
