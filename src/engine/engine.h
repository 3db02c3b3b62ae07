// The engine: continuous batching over a paged KV cache, with chunked prefill, a prefix cache
// and preemption — and outputs that never depend on any of them.
//
// Each step() builds one ragged batch under a token budget (max_batch_tokens), a sequence cap
// (max_seqs) and the model's logit-row cap: first the running sequences, oldest first (a decode
// token each, or the next prefill chunk of at most prefill_chunk tokens), then waiting sequences
// in arrival order while their first chunk fits. When the KV pool runs dry, the newest running
// sequence gives its blocks back and waits to be recomputed (preemption); the oldest always makes
// progress, so no request that fits the pool alone can starve or fail.
//
// Why none of this changes a bit of output: every kernel computes a token's row from its own
// inputs in an order fixed by the shapes (INVARIANCE.md R1-R5), attention reads the KV cache in
// position-aligned chunks whatever the query chunking, a reused prefix block holds the bits the
// sequence would have computed, and sampling is keyed by (seed, token index) (R6). So a request's
// tokens and logprobs equal those of the same request run alone — whatever the batch, budget,
// chunk size, cache state, preemptions, arrival order or thread count. tests/unit/
// engine_invariance_test.cpp checks exactly that.
//
// The engine owns the model's KV cache while it lives (it sizes it at construction): one engine
// per LoadedModel at a time.
//
// Threading: submit() and RequestStream may be used from any thread. Either start() the
// engine's own thread, or (tests, the CLI) call step() / run_until_idle() from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "engine/block_pool.h"
#include "engine/request.h"
#include "engine/sequence.h"
#include "model/loader.h"

namespace bx {

struct EngineOptions {
  int max_batch_tokens = 0;  // tokens per step; 0 = what the model was loaded for
  int max_seqs = 0;          // sequences per step; 0 = the model's logit-row cap
  int prefill_chunk = 0;     // prompt tokens of one sequence per step; 0 = max_batch_tokens
  int64_t kv_cache_tokens = 0;  // KV pool size; 0 = automatic (engine/kv_sizing.h)
  double kv_memory_fraction = 0.9;  // of free device memory, when kv_cache_tokens is 0
  bool prefix_cache = true;
  // Greedy rows without top logprobs take only (id, logprob) from the device
  // (Backend::greedy_rows) instead of two rows of V floats. Same bits either way.
  bool device_greedy = true;
  // Sampled rows (temperature > 0) without top logprobs or masked ids are chosen on the device
  // when the backend can (Backend::can_sample_rows), moving (id, logprob) instead of two rows
  // of V floats; false forces the host Sampler. Same bits either way.
  bool device_sampling = true;
  // Host threads that run the Sampler on the rows of one step in parallel (each row's choice is
  // a pure function of its row, so the count changes no bit). 0 = the hardware threads, at most
  // 16.
  int sampler_threads = 0;
};

// What run_exclusive does with the requests the engine has taken (engine/engine_exclusive.cpp).
enum class InFlight {
  finish,  // they run to their end first; the change waits for them
  abort,   // they end now with FinishReason::aborted, keeping the tokens they have
  keep,    // they stay: the change runs between two steps (only for changes that cannot affect
           // them, such as dropping the prefix cache)
};

struct EngineStats {
  uint64_t steps = 0;
  uint64_t preemptions = 0;
  uint64_t batch_tokens = 0;       // tokens through forward, summed over steps
  double schedule_seconds = 0;     // building batches and bookkeeping: step() minus forward
  double forward_seconds = 0;
};

// The KV pool's counters, as of the end of the engine's latest step() call (metrics; safe to
// read from any thread, unlike pool()).
struct PoolGauges {
  int64_t total_blocks = 0;
  int64_t held_blocks = 0;
  int64_t cached_blocks = 0;     // published for prefix reuse, held or idle
  uint64_t prefix_hits = 0;      // prefix-cache lookups that found a block
  uint64_t prefix_lookups = 0;
};

class Engine {
 public:
  Engine(LoadedModel& model, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and queues a request. Throws bx::Error (nothing queued) for an empty prompt, a
  // token id outside the vocabulary, a prompt that leaves no room in the context, bad sampling
  // parameters or counts, or a request whose longest sequence could never fit the KV pool.
  std::shared_ptr<RequestStream> submit(EngineRequest request);

  // Logprobs of `continuation` given `prompt`, by teacher forcing: equal, bit for bit, to the
  // logprobs generation reported for the same tokens. Runs through the queue like any request;
  // the engine must be started, or this call steps it itself.
  EngineEvent score(std::vector<int32_t> prompt, std::vector<int32_t> continuation,
                    bool prompt_logprobs = false);

  // One scheduling step and forward call. Returns false when there was nothing to run.
  bool step();
  void run_until_idle();

  // The engine's own thread: steps while there is work, sleeps otherwise.
  void start();
  void stop();

  // Called on the stepping thread after each step that ran, with the step's wall time and the
  // tokens it computed (for metrics; it must not call into the engine). Set before start().
  using StepObserver = std::function<void(double step_seconds, size_t batch_tokens)>;
  void set_step_observer(StepObserver observer) { step_observer_ = std::move(observer); }

  // Runs `change` (a weight update) where no request is in flight, then drops the prefix cache,
  // so no sequence ever mixes state from before and after it: the requests the engine has taken
  // finish or are aborted first (in_flight); requests submitted meanwhile wait in the queue and
  // run after the change. With a started engine, `change` runs on the engine's thread and this
  // call blocks until it has; otherwise this call steps the engine itself. Rethrows what
  // `change` throws (the prefix cache is dropped either way). One change at a time.
  void run_exclusive(const std::function<void()>& change, InFlight in_flight);
  // Paused, the engine takes no new request from the queue (they wait; none is dropped) while
  // the requests it has taken run on; resume() lets the queue in again.
  void pause();
  void resume();
  bool paused() const;

  const EngineOptions& options() const { return options_; }
  const BlockPool& pool() const { return pool_; }
  EngineStats stats() const;
  PoolGauges pool_gauges() const;
  size_t waiting_count() const;  // queued, including submissions not yet taken
  size_t running_count() const;

 private:
  struct Chunk {
    Sequence* seq;
    size_t first;      // first position
    size_t count;      // tokens
    size_t first_row;  // its logit rows in this step's output
    size_t rows;
  };

  struct ExclusiveChange;
  // At the top of step(): runs a pending run_exclusive change once nothing is in flight.
  void serve_exclusive();
  // New submissions stay in the inbox (paused, or a change pending). inbox_mutex_ held.
  bool holding_submissions() const;

  void validate(const EngineRequest& r) const;
  void take_submissions();
  void retire_cancelled();
  std::vector<Chunk> schedule();
  void run_forward(const std::vector<Chunk>& chunks);
  void commit(const Chunk& chunk);
  void retire_finished();

  // Scheduling helpers.
  size_t chunk_length(const Sequence& s, size_t tokens_left, size_t rows_left) const;
  bool reserve_blocks(Sequence& s, size_t positions);
  void attach_cached_prefix(Sequence& s);
  void release_blocks(Sequence& s);
  void preempt(Sequence& s);
  void publish_full_blocks(Sequence& s);
  bool greedy_on_device(const Sequence& s) const;
  // The sampling row of s is chosen on the device: greedily, or by Backend::sample_rows.
  bool sampled_on_device(const Sequence& s) const;
  // The Sampler's choice for sequence s from logit row `row` (host rows), masking EOS and stop
  // ids before min_tokens. Reads only the row and s; `masked` is scratch of V floats.
  Sampler::Choice choose(const Sequence& s, size_t row, Sampler& sampler,
                         std::vector<float>& masked) const;
  // Runs choose() for every host-sampled row of the step, in parallel; sample_next takes them.
  void precompute_choices(const std::vector<Chunk>& chunks);
  void sample_next(Sequence& s, size_t row);
  void finish(Sequence& s, FinishReason reason);
  void publish_gauges();

  LoadedModel& model_;
  EngineOptions options_;
  BlockPool pool_;
  Sampler sampler_;
  std::unique_ptr<ThreadPool> sampler_pool_;       // sampler_threads workers
  std::vector<Sampler> thread_samplers_;           // one per pool thread
  std::vector<std::vector<float>> thread_masked_;  // [threads][V]
  std::vector<Sampler::Choice> choices_;           // [R] precomputed choices
  std::vector<uint8_t> chosen_;                    // [R] 1: choices_[row] is set
  int max_logit_rows_;

  std::vector<std::unique_ptr<Sequence>> sequences_;  // every live sequence
  std::deque<Sequence*> waiting_;   // arrival order (preempted ones back in their place)
  std::vector<Sequence*> running_;  // arrival order: the newest is preempted first
  uint64_t next_arrival_ = 0;

  // Step buffers, sized once.
  std::vector<float> logits_, logprobs_, masked_;
  std::vector<uint8_t> full_rows_;       // [R] 1: the row comes to the host whole
  std::vector<int32_t> greedy_ids_;      // [R] Backend::greedy_rows
  std::vector<float> greedy_logprobs_;   // [R]
  std::vector<SamplingParams> device_sampling_;  // [R] sample_rows' parameters (greedy: T = 0)
  std::vector<uint64_t> token_indices_;          // [R] and token indices
  std::vector<int32_t> tokens_, positions_, logit_rows_;
  std::vector<const int32_t*> tables_;

  mutable std::mutex inbox_mutex_;
  std::condition_variable inbox_ready_;
  std::vector<std::unique_ptr<Sequence>> inbox_;
  std::atomic<bool> stop_requested_{false};
  std::mutex exclusive_mutex_;            // one run_exclusive at a time
  ExclusiveChange* exclusive_ = nullptr;  // the pending change; guarded by inbox_mutex_
  bool paused_ = false;                   // guarded by inbox_mutex_
  std::thread thread_;

  StepObserver step_observer_;
  mutable std::mutex stats_mutex_;
  EngineStats stats_;
  PoolGauges gauges_;
  std::atomic<size_t> running_count_{0}, waiting_count_{0};
};

}  // namespace bx
