#include "core/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace bx {
namespace detail {
float stream_sum_avx2(const float* p, int64_t n, bool interleaved);
}  // namespace detail

namespace {

float stream_sum_scalar(const float* p, int64_t n) {
  float acc[8] = {};
  const int64_t len = n / 8;
  for (int64_t i = 0; i < len; ++i) {
    for (int j = 0; j < 8; ++j) acc[j] += p[j * len + i];
  }
  return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

}  // namespace

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes, int repeats) {
  const int threads = pool.size();
  // Each thread reads its own contiguous part, a multiple of 64 floats.
  const int64_t per_thread = static_cast<int64_t>(bytes / sizeof(float)) / threads / 64 * 64;
  const int64_t n = per_thread * threads;
  std::vector<float> buffer(static_cast<size_t>(n));
  pool.parallel_for(n, per_thread, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) buffer[static_cast<size_t>(i)] = 1.0f;
  });
  const bool avx2 = isa_supported(Isa::avx2);
  std::vector<double> rates[2];  // [0] one prefetched stream a thread (AVX2 only), [1] interleaved
  std::vector<float> sums(static_cast<size_t>(threads));
  for (int r = 0; r < repeats; ++r) {
    for (int pattern = avx2 ? 0 : 1; pattern < 2; ++pattern) {
      const auto start = std::chrono::steady_clock::now();
      pool.parallel_for(threads, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          const float* part = buffer.data() + t * per_thread;
          sums[static_cast<size_t>(t)] = avx2 ? detail::stream_sum_avx2(part, per_thread, pattern == 1)
                                              : stream_sum_scalar(part, per_thread);
        }
      });
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      rates[pattern].push_back(static_cast<double>(n) * sizeof(float) / seconds / 1e9);
    }
  }
  volatile float sink = sums[0];
  (void)sink;
  double best = 0;
  for (std::vector<double>& r : rates) {
    if (r.empty()) continue;
    std::sort(r.begin(), r.end());
    best = std::max(best, r[r.size() / 2]);
  }
  return best;
}

}  // namespace bx
