// The scheduler: which sequences run in a step, and how many tokens of each.
//
// It owns the waiting and running queues and the KV block pool. Each schedule() builds the
// step's plan under a token budget (max_batch_tokens), a sequence cap (max_seqs) and a logit-row
// cap (max_logit_rows): first the running sequences, oldest first (a decode token each, or the
// next prefill chunk of at most prefill_chunk tokens), then waiting sequences in arrival order
// while their first chunk fits, each attaching the longest cached prefix first. When the pool
// runs dry, the newest running sequence gives its blocks back and waits to be recomputed
// (preemption); the oldest always makes progress.
//
// None of this decides a bit of output (engine/engine.h says why); it decides only what runs
// when.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "engine/block_pool.h"
#include "engine/sequence.h"

namespace bx {

// `count` tokens of one sequence in one step: positions [first, first + count), whose logit rows
// are [first_row, first_row + rows) of the step's output.
struct ScheduledChunk {
  Sequence* seq = nullptr;
  size_t first = 0;
  size_t count = 0;
  size_t first_row = 0;
  size_t rows = 0;
};

struct SchedulerLimits {
  int max_batch_tokens = 0;  // tokens per step
  int max_seqs = 0;          // sequences per step
  int max_logit_rows = 0;    // logit rows per step
  int prefill_chunk = 0;     // prompt tokens of one sequence per step
  bool prefix_cache = true;
};

class Scheduler {
 public:
  Scheduler(SchedulerLimits limits, int64_t n_blocks, int block_size);

  const SchedulerLimits& limits() const { return limits_; }
  const BlockPool& pool() const { return pool_; }

  // A new sequence joins the waiting queue (at its arrival place).
  void add(Sequence& s);
  // The step's plan (valid until the next schedule): chunks in batch order, their logit rows
  // consecutive. May preempt running sequences (preemptions() counts them).
  const std::vector<ScheduledChunk>& schedule();
  // After the step's forward: the chunk's positions are in the cache; its newly full blocks are
  // published for prefix reuse.
  void computed(const ScheduledChunk& chunk);
  // A finished (or aborted) sequence gives its blocks back.
  void release(Sequence& s);
  // Finished sequences leave the queues.
  void drop_finished();
  void drop_prefix_cache() { pool_.drop_prefix_cache(); }

  size_t waiting() const { return waiting_.size(); }
  size_t running() const { return running_.size(); }
  uint64_t preemptions() const { return preemptions_; }

 private:
  // Tokens of s to run now: at most its pending tokens, tokens_left, prefill_chunk (prefill) and
  // those whose logit rows fit rows_left.
  size_t chunk_length(const Sequence& s, size_t tokens_left, size_t rows_left) const;
  bool reserve_blocks(Sequence& s, size_t positions);
  void attach_cached_prefix(Sequence& s);
  void preempt(Sequence& s);

  SchedulerLimits limits_;
  BlockPool pool_;
  std::deque<Sequence*> waiting_;   // arrival order (preempted ones back in their place)
  std::vector<Sequence*> running_;  // arrival order: the newest is preempted first
  std::vector<ScheduledChunk> plan_;
  uint64_t preemptions_ = 0;
};

}  // namespace bx
