// The engine: continuous batching over a paged KV cache, with chunked prefill, a prefix cache
// and preemption — and outputs that never depend on any of them.
//
// Engine = Scheduler + ModelRunner + OutputProcessor. Each step() takes new submissions, lets the
// Scheduler (engine/scheduler.h) plan one ragged batch under a token budget (max_batch_tokens), a
// sequence cap (max_seqs) and the model's logit-row cap, preempting the newest sequence when the
// KV pool runs dry (the oldest always makes progress, so no request that fits the pool alone can
// starve or fail); the ModelRunner (engine/model_runner.h) runs it through the model and chooses
// the sampled tokens; the OutputProcessor (engine/output_processor.h) turns the results into
// each request's events.
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
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/block_pool.h"
#include "engine/model_runner.h"
#include "engine/output_processor.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "model/loader.h"

namespace bx {

struct EngineOptions {
  int max_batch_tokens = 0;         // tokens per step; 0 = what the model was loaded for
  int max_seqs = 0;                 // sequences per step; 0 = the model's logit-row cap
  int prefill_chunk = 0;            // prompt tokens of one sequence per step; 0 = max_batch_tokens
  int64_t kv_cache_tokens = 0;      // KV pool size; 0 = automatic (engine/kv_sizing.h)
  double kv_memory_fraction = 0.9;  // of free device memory, when kv_cache_tokens is 0
  bool prefix_cache = true;
  // Greedy rows without top logprobs take only (id, logprob) from the device
  // (Backend::greedy_rows) instead of two rows of V floats. Same bits either way.
  bool device_greedy = true;
  // Sampled rows (temperature > 0) without top logprobs or masked ids are chosen on the device
  // when the backend can (BackendCapabilities::device_sampling), moving (id, logprob) instead of
  // two rows of V floats; false forces the host Sampler. Same bits either way.
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
  uint64_t batch_tokens = 0;    // tokens through forward, summed over steps
  double schedule_seconds = 0;  // building batches and bookkeeping: step() minus forward
  double forward_seconds = 0;
};

// The KV pool's counters, as of the end of the engine's latest step() call (metrics; safe to
// read from any thread, unlike pool()).
struct PoolGauges {
  int64_t total_blocks = 0;
  int64_t held_blocks = 0;
  int64_t cached_blocks = 0;  // published for prefix reuse, held or idle
  uint64_t prefix_hits = 0;   // prefix-cache lookups that found a block
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
  const BlockPool& pool() const { return scheduler_.pool(); }
  EngineStats stats() const;
  PoolGauges pool_gauges() const;
  size_t waiting_count() const;  // queued, including submissions not yet taken
  size_t running_count() const;

 private:
  struct ExclusiveChange;
  // At the top of step(): runs a pending run_exclusive change once nothing is in flight.
  void serve_exclusive();
  // New submissions stay in the inbox (paused, or a change pending). inbox_mutex_ held.
  bool holding_submissions() const;

  void validate(const EngineRequest& r) const;
  void take_submissions();
  void retire_cancelled();
  void retire_finished();
  // Ends s now (cancelled, aborted, or nothing to compute): its blocks back, a finished event.
  void finish(Sequence& s, FinishReason reason);
  void publish_gauges();
  void add_preemptions(uint64_t n);

  LoadedModel& model_;
  EngineOptions options_;  // resolved: no field left at its automatic 0
  Scheduler scheduler_;
  ModelRunner runner_;
  OutputProcessor output_;
  std::vector<std::unique_ptr<Sequence>> sequences_;  // every live sequence
  uint64_t next_arrival_ = 0;

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
