#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <limits>
#include <queue>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace bx {

namespace {

constexpr int32_t kNone = -1;

struct Symbol {
  int32_t id = 0;
  int32_t prev = kNone;
  int32_t next = kNone;
  bool alive = true;
};

// A queued merge of the symbol at `pos` with the one after it.
struct Candidate {
  int32_t rank = 0;
  int32_t pos = 0;
  int32_t result = 0;
};
// priority_queue's top is the "largest": the lowest rank, then the lowest position.
struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.pos > b.pos;
  }
};

}  // namespace

BpeModel::BpeModel(const BpeModelSpec& spec)
    : byte_fallback_(spec.byte_fallback),
      fuse_unk_(spec.fuse_unk),
      ignore_merges_(spec.ignore_merges) {
  BX_CHECK(!spec.vocab.empty(), "BPE model: the vocabulary is empty; expected at least one token");
  int32_t max_id = -1;
  for (const auto& [text, id] : spec.vocab) {
    BX_CHECK(id >= 0, "BPE model: token '" + text + "' has id " + std::to_string(id) +
                          "; expected an id >= 0");
    max_id = std::max(max_id, id);
  }
  id_to_text_.resize(static_cast<size_t>(max_id) + 1);
  has_id_.assign(static_cast<size_t>(max_id) + 1, false);
  text_to_id_.reserve(spec.vocab.size());
  for (const auto& [text, id] : spec.vocab) {
    BX_CHECK(!has_id_[id], "BPE model: id " + std::to_string(id) + " is given to both '" +
                               id_to_text_[id] + "' and '" + text + "'; expected unique ids");
    has_id_[id] = true;
    id_to_text_[id] = text;
    text_to_id_[text] = id;
  }

  merges_.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    const int32_t a = token_id(left), b = token_id(right);
    const int32_t merged = token_id(left + right);
    BX_CHECK(a >= 0 && b >= 0 && merged >= 0,
             "BPE model: merge " + std::to_string(rank) + " ('" + left + "' '" + right +
                 "') uses a token that is not in the vocabulary: '" +
                 (a < 0   ? left
                  : b < 0 ? right
                          : left + right) +
                 "'");
    BX_CHECK(rank <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
             "BPE model: too many merges");
    merges_[pair_key(a, b)] = Merge{static_cast<int32_t>(rank), merged};
  }

  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_token_[b] = token_id(name);
  }
  if (!spec.unk_token.empty()) {
    unk_id_ = token_id(spec.unk_token);
    BX_CHECK(unk_id_ >= 0,
             "BPE model: the unknown token '" + spec.unk_token + "' is not in the vocabulary");
  }
}

int32_t BpeModel::token_id(std::string_view text) const {
  const auto it = text_to_id_.find(text);
  return it == text_to_id_.end() ? -1 : it->second;
}

const std::string* BpeModel::token_text(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_text_.size() || !has_id_[id]) return nullptr;
  return &id_to_text_[id];
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
  const auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = token_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }

  // 1. Characters -> symbols.
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  int32_t pending_unk_chars = 0;  // characters waiting to become one fused unknown token
  auto push = [&](int32_t id) { symbols.push_back(Symbol{id}); };
  auto flush_unk = [&] {
    if (pending_unk_chars > 0) push(unk_id_);
    pending_unk_chars = 0;
  };
  for (size_t pos = 0; pos < word.size();) {
    const utf8::Step step = utf8::next(word.substr(pos));
    const size_t len = step.length == 0 ? 1 : step.length;
    const std::string_view ch = word.substr(pos, len);
    pos += len;
    const int32_t id = token_id(ch);
    if (id >= 0) {
      flush_unk();
      push(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_token_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // As in the package, byte tokens do not flush a pending fused unknown token.
        for (char c : ch) push(byte_token_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (!fuse_unk_) flush_unk();
      ++pending_unk_chars;
    }
  }
  flush_unk();

  const auto n = static_cast<int32_t>(symbols.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols[i].prev = i - 1;
    symbols[i].next = i + 1 < n ? i + 1 : kNone;
  }

  // 2. Ranked merges.
  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue;
  auto consider = [&](int32_t pos) {
    if (pos == kNone || symbols[pos].next == kNone) return;
    if (const Merge* m = find_merge(symbols[pos].id, symbols[symbols[pos].next].id)) {
      queue.push(Candidate{m->rank, pos, m->result});
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next == kNone) continue;
    const int32_t right_pos = left.next;
    const Merge* m = find_merge(left.id, symbols[right_pos].id);
    if (m == nullptr || m->result != top.result) continue;  // stale candidate
    Symbol& right = symbols[right_pos];
    left.id = top.result;
    left.next = right.next;
    right.alive = false;
    if (right.next != kNone) symbols[right.next].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }

  for (const Symbol& s : symbols) {
    if (s.alive) out.push_back(s.id);
  }
}

}  // namespace bx
