// A fixed pool of worker threads for data-parallel kernels.
//
// Invariance: the pool only splits *independent* work (output rows or columns); it never splits
// a reduction. So results cannot depend on the thread count (INVARIANCE.md R1, promise 4).
//
// A forward pass of a small model makes hundreds of calls of a few microseconds each, so waking
// threads through a condition variable would cost more than the work: workers (and the caller,
// waiting for them) first spin on atomics for about kSpinIterations pauses, then block.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bx {

class ThreadPool {
 public:
  // n_threads >= 1 counts the calling thread: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n), one contiguous range per thread,
  // each range a multiple of `grain` long (but the last). Blocks until all ranges are done.
  // Not reentrant: fn must not call parallel_for on the same pool.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  static constexpr int kSpinIterations = 4000;

  void worker_loop(int worker_index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  // The job: written by the caller before it publishes a new generation (release), read by the
  // workers after they see it (acquire).
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_grain_ = 1;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace bx
