// Engine::run_exclusive, pause and resume: changes that must not meet a request in flight
// (weight updates, INVARIANCE.md promise 8) and the admin pause.
//
// A pending change holds new submissions in the inbox; the engine steps on until every sequence
// it has taken is finished (InFlight::finish) or ends them at once (InFlight::abort), then, at
// the top of a step and with no sequence alive, runs the change and drops the prefix cache. A
// request is stamped with the weights_version when the engine takes it, and every request
// taken before the change is finished before it, so each request's tokens come from one
// version of the weights.
#include <condition_variable>
#include <exception>
#include <mutex>

#include "engine/engine.h"

namespace bx {

struct Engine::ExclusiveChange {
  const std::function<void()>* change = nullptr;
  InFlight in_flight = InFlight::finish;
  bool done = false;
  std::exception_ptr error;
  std::condition_variable finished;
};

bool Engine::holding_submissions() const {
  return paused_ || (exclusive_ != nullptr && exclusive_->in_flight != InFlight::keep);
}

void Engine::run_exclusive(const std::function<void()>& change, InFlight in_flight) {
  std::lock_guard one_at_a_time(exclusive_mutex_);
  ExclusiveChange pending;
  pending.change = &change;
  pending.in_flight = in_flight;
  {
    std::lock_guard lock(inbox_mutex_);
    exclusive_ = &pending;
  }
  inbox_ready_.notify_all();
  if (thread_.joinable()) {
    std::unique_lock lock(inbox_mutex_);
    pending.finished.wait(lock, [&] { return pending.done; });
  } else {
    while (true) {
      step();
      std::lock_guard lock(inbox_mutex_);
      if (pending.done) break;
    }
  }
  if (pending.error) std::rethrow_exception(pending.error);
}

void Engine::serve_exclusive() {
  ExclusiveChange* pending = nullptr;
  {
    std::lock_guard lock(inbox_mutex_);
    pending = exclusive_;
  }
  if (pending == nullptr) return;
  if (pending->in_flight == InFlight::abort) {
    for (const auto& s : sequences_) {
      if (!s->finished) finish(*s, FinishReason::aborted);
    }
    retire_finished();
  }
  if (pending->in_flight != InFlight::keep && !sequences_.empty()) return;  // still draining
  try {
    (*pending->change)();
  } catch (...) {
    pending->error = std::current_exception();
  }
  scheduler_.drop_prefix_cache();
  publish_gauges();
  {
    std::lock_guard lock(inbox_mutex_);
    exclusive_ = nullptr;
    pending->done = true;
    pending->finished.notify_all();
  }
  inbox_ready_.notify_all();
}

void Engine::pause() {
  std::lock_guard lock(inbox_mutex_);
  paused_ = true;
}

void Engine::resume() {
  {
    std::lock_guard lock(inbox_mutex_);
    paused_ = false;
  }
  inbox_ready_.notify_all();
}

bool Engine::paused() const {
  std::lock_guard lock(inbox_mutex_);
  return paused_;
}

}  // namespace bx
