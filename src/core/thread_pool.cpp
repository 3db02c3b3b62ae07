#include "core/thread_pool.h"

#include <algorithm>

#include "core/error.h"

namespace bx {
namespace {

// Range of part `index` of `parts` over [0, n), in whole grains.
void split_range(int64_t n, int64_t grain, int parts, int index, int64_t* begin, int64_t* end) {
  const int64_t grains = (n + grain - 1) / grain;
  const int64_t per_part = grains / parts;
  const int64_t extra = grains % parts;
  const int64_t first = index * per_part + std::min<int64_t>(index, extra);
  const int64_t count = per_part + (index < extra ? 1 : 0);
  *begin = std::min(n, first * grain);
  *end = std::min(n, (first + count) * grain);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  check(n_threads >= 1 && n_threads <= 1024,
        "thread count " + std::to_string(n_threads) + " is out of range: expected 1 to 1024");
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true, std::memory_order_release);
  }
  start_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // Under the mutex, so a worker that is about to block sees the new generation.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();

  int64_t begin = 0;
  int64_t end = 0;
  split_range(n, grain, n_threads_, 0, &begin, &end);
  if (begin < end) fn(begin, end);

  for (int spin = 0; spin < kSpinIterations; ++spin) {
    if (pending_.load(std::memory_order_acquire) == 0) return;
    cpu_relax();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
}

void ThreadPool::worker_loop(int worker_index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t generation = generation_.load(std::memory_order_acquire);
    for (int spin = 0; generation == seen && spin < kSpinIterations; ++spin) {
      if (stopping_.load(std::memory_order_acquire)) return;
      cpu_relax();
      generation = generation_.load(std::memory_order_acquire);
    }
    if (generation == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] {
        return stopping_.load(std::memory_order_acquire) ||
               generation_.load(std::memory_order_acquire) != seen;
      });
      if (stopping_.load(std::memory_order_acquire)) return;
      generation = generation_.load(std::memory_order_acquire);
    }
    seen = generation;
    int64_t begin = 0;
    int64_t end = 0;
    split_range(job_n_, job_grain_, n_threads_, worker_index, &begin, &end);
    if (begin < end) (*job_)(begin, end);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // the caller may be about to block
      done_cv_.notify_one();
    }
  }
}

}  // namespace bx
