// The AVX2 read loop of core/bandwidth.cpp (this file is compiled with -mavx2).
#include <immintrin.h>

#include <cstdint>

namespace bx::detail {

// Sums n floats read as 8 interleaved sequential streams: one stream per core cannot keep
// enough reads in flight to reach the memory bandwidth. n is a multiple of 64.
float stream_sum_avx2(const float* p, int64_t n) {
  constexpr int kStreams = 8;
  const int64_t len = n / kStreams;
  __m256 acc[kStreams];
  for (int j = 0; j < kStreams; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t i = 0; i < len; i += 8) {
    for (int j = 0; j < kStreams; ++j) {
      acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(p + j * len + i));
    }
  }
  for (int j = 1; j < kStreams; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

}  // namespace bx::detail
