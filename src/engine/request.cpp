#include "engine/request.h"

#include <algorithm>
#include <cmath>

namespace bx {

uint64_t sample_seed(uint64_t seed, int sample_index) {
  if (sample_index == 0) return seed;
  // SplitMix64's finalizer over (seed, index): distinct, well-mixed seeds per sample.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(sample_index);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<TokenLogprob> top_logprobs(std::span<const float> logprobs, int k) {
  const size_t count = std::min(static_cast<size_t>(std::max(k, 0)), logprobs.size());
  std::vector<int32_t> ids(logprobs.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  // A strict total order: value descending (NaN last), then id ascending.
  const auto before = [&](int32_t a, int32_t b) {
    const float x = logprobs[static_cast<size_t>(a)], y = logprobs[static_cast<size_t>(b)];
    const bool x_nan = std::isnan(x), y_nan = std::isnan(y);
    if (x_nan != y_nan) return y_nan;
    if (!x_nan && x != y) return x > y;
    return a < b;
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<ptrdiff_t>(count), ids.end(), before);
  std::vector<TokenLogprob> top(count);
  for (size_t i = 0; i < count; ++i) top[i] = {ids[i], logprobs[static_cast<size_t>(ids[i])]};
  return top;
}

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
    case FinishReason::cancelled:
      return "cancelled";
    case FinishReason::aborted:
      return "abort";
  }
  return "length";
}

std::optional<EngineEvent> RequestStream::next() {
  std::unique_lock lock(mutex_);
  ++event_waiters_;
  ready_.wait(lock, [&] { return !events_.empty() || unfinished_ == 0; });
  --event_waiters_;
  if (events_.empty()) return std::nullopt;
  EngineEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

std::optional<EngineEvent> RequestStream::try_next() {
  std::lock_guard lock(mutex_);
  if (events_.empty()) return std::nullopt;
  EngineEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

bool RequestStream::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ++event_waiters_;
  const bool ready =
      ready_.wait_for(lock, timeout, [&] { return !events_.empty() || unfinished_ == 0; });
  --event_waiters_;
  return ready;
}

bool RequestStream::wait_finished_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return ready_.wait_for(lock, timeout, [&] { return unfinished_ == 0; });
}

bool RequestStream::done() const {
  std::lock_guard lock(mutex_);
  return unfinished_ == 0 && events_.empty();
}

void RequestStream::cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
}

bool RequestStream::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

void RequestStream::push(EngineEvent event) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (event.kind == EngineEvent::Kind::finished) --unfinished_;
    events_.push_back(std::move(event));
    // Waiters register under this mutex before they sleep, so none is missed.
    wake = event_waiters_ > 0 || unfinished_ == 0;
  }
  if (wake) ready_.notify_all();
}

}  // namespace bx
