#include "core/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace bx {

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buffer(n);
  pool.parallel_for(static_cast<int64_t>(n), 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) buffer[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
  });
  std::vector<double> rates;
  volatile uint64_t sink = 0;
  for (int r = 0; r < repeats; ++r) {
    std::vector<uint64_t> partial(static_cast<size_t>(pool.size()), 0);
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(static_cast<int64_t>(n), 4096, [&](int64_t begin, int64_t end) {
      uint64_t a = 0, b = 0, c = 0, d = 0;  // integer sums vectorise; order does not matter
      int64_t i = begin;
      for (; i + 4 <= end; i += 4) {
        a += buffer[static_cast<size_t>(i)];
        b += buffer[static_cast<size_t>(i + 1)];
        c += buffer[static_cast<size_t>(i + 2)];
        d += buffer[static_cast<size_t>(i + 3)];
      }
      for (; i < end; ++i) a += buffer[static_cast<size_t>(i)];
      const size_t slot = static_cast<size_t>(begin * pool.size() / static_cast<int64_t>(n));
      partial[std::min(slot, partial.size() - 1)] += a + b + c + d;
    });
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (uint64_t p : partial) sink = sink + p;
    rates.push_back(static_cast<double>(n * sizeof(uint64_t)) / seconds / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

}  // namespace bx
