#include "engine/scheduler.h"

#include <algorithm>
#include <span>

namespace bx {
namespace {

size_t ceil_div(size_t a, size_t b) {
  return (a + b - 1) / b;
}

bool older(const Sequence* a, const Sequence* b) {
  return a->arrival < b->arrival;
}

}  // namespace

Scheduler::Scheduler(SchedulerLimits limits, int64_t n_blocks, int block_size)
    : limits_(limits), pool_(n_blocks, block_size) {
  plan_.reserve(static_cast<size_t>(limits_.max_seqs));
}

void Scheduler::add(Sequence& s) {
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), &s, older), &s);
}

const std::vector<ScheduledChunk>& Scheduler::schedule() {
  plan_.clear();
  size_t tokens_left = static_cast<size_t>(limits_.max_batch_tokens);
  size_t rows_left = static_cast<size_t>(limits_.max_logit_rows);
  size_t rows_used = 0;
  const auto add_chunk = [&](Sequence& s, size_t n) {
    size_t rows = 0;
    for (size_t p = s.in_cache; p < s.in_cache + n; ++p) rows += s.needs_row(p) ? 1 : 0;
    plan_.push_back(ScheduledChunk{&s, s.in_cache, n, rows_used, rows});
    tokens_left -= n;
    rows_left -= rows;
    rows_used += rows;
  };
  const auto seqs_left = [&] { return plan_.size() < static_cast<size_t>(limits_.max_seqs); };

  // Running sequences, oldest first. On a shortage the newest gives its blocks back.
  for (size_t i = 0; i < running_.size() && seqs_left(); ++i) {
    Sequence& s = *running_[i];
    const size_t n = chunk_length(s, tokens_left, rows_left);
    if (n == 0) continue;
    bool preempted_self = false;
    while (!reserve_blocks(s, s.in_cache + n)) {
      Sequence& victim = *running_.back();
      preempt(victim);
      if (&victim == &s) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) return plan_;  // no memory left for anyone newer either
    add_chunk(s, n);
  }
  // Waiting sequences in arrival order, while their next chunk fits.
  while (!waiting_.empty() && seqs_left()) {
    Sequence& s = *waiting_.front();
    attach_cached_prefix(s);
    const size_t n = chunk_length(s, tokens_left, rows_left);
    if (n == 0 || !reserve_blocks(s, s.in_cache + n)) {
      release(s);
      break;
    }
    waiting_.pop_front();
    running_.insert(std::upper_bound(running_.begin(), running_.end(), &s, older), &s);
    add_chunk(s, n);
  }
  return plan_;
}

size_t Scheduler::chunk_length(const Sequence& s, size_t tokens_left, size_t rows_left) const {
  const size_t pending = s.pending();
  if (pending == 0) return 0;
  size_t n = std::min(pending, tokens_left);
  if (pending > 1) n = std::min(n, static_cast<size_t>(limits_.prefill_chunk));
  // Fewer tokens if their logit rows would not fit this step.
  size_t rows = 0;
  size_t fit = 0;
  for (size_t p = s.in_cache; p < s.in_cache + n; ++p) {
    rows += s.needs_row(p) ? 1 : 0;
    if (rows > rows_left) break;
    fit = p - s.in_cache + 1;
  }
  return fit;
}

bool Scheduler::reserve_blocks(Sequence& s, size_t positions) {
  const size_t needed = ceil_div(positions, static_cast<size_t>(pool_.block_size()));
  while (s.blocks.size() < needed) {
    const std::optional<int32_t> block = pool_.allocate();
    if (!block) return false;
    s.blocks.push_back(*block);
  }
  return true;
}

// A fresh (or preempted) sequence takes the longest run of published blocks that matches its
// tokens. It leaves at least one position to compute (the logits of the last token are needed)
// and computes every position whose logits a score needs.
void Scheduler::attach_cached_prefix(Sequence& s) {
  if (!limits_.prefix_cache || !s.blocks.empty()) return;
  const size_t bs = static_cast<size_t>(pool_.block_size());
  size_t limit = (s.tokens.size() - 1) / bs;
  if (!s.scores_sent) limit = std::min(limit, s.score_from / bs);
  BlockKey parent;
  for (size_t b = 0; b < limit; ++b) {
    const std::span<const int32_t> block_tokens(s.tokens.data() + b * bs, bs);
    const BlockKey key = block_key(parent, block_tokens);
    const std::optional<int32_t> block = pool_.find(key, parent, block_tokens);
    pool_.count_lookup(block.has_value());
    if (!block) break;
    pool_.retain(*block);
    s.blocks.push_back(*block);
    s.block_keys.push_back(key);
    parent = key;
  }
  s.in_cache = s.blocks.size() * bs;
}

void Scheduler::release(Sequence& s) {
  for (int32_t b : s.blocks) pool_.release(b);
  s.blocks.clear();
  s.block_keys.clear();
  s.in_cache = 0;
}

void Scheduler::preempt(Sequence& s) {
  release(s);
  std::erase(running_, &s);
  add(s);
  ++preemptions_;
}

void Scheduler::computed(const ScheduledChunk& chunk) {
  Sequence& s = *chunk.seq;
  s.in_cache = chunk.first + chunk.count;
  const size_t bs = static_cast<size_t>(pool_.block_size());
  while ((s.block_keys.size() + 1) * bs <= s.in_cache) {
    const size_t b = s.block_keys.size();
    const BlockKey parent = b ? s.block_keys[b - 1] : BlockKey{};
    const std::span<const int32_t> block_tokens(s.tokens.data() + b * bs, bs);
    const BlockKey key = block_key(parent, block_tokens);
    s.block_keys.push_back(key);
    if (limits_.prefix_cache) pool_.publish(s.blocks[b], key, parent, block_tokens);
  }
}

void Scheduler::drop_finished() {
  const auto is_finished = [](const Sequence* s) { return s->finished; };
  std::erase_if(running_, is_finished);
  std::erase_if(waiting_, is_finished);
}

}  // namespace bx
