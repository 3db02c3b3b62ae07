// The AVX2 read loops of core/bandwidth.cpp (this file is compiled with -mavx2).
#include <immintrin.h>

#include <cstdint>

namespace bx::detail {

namespace {

float lane_sum(__m256 acc[8]) {
  for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

}  // namespace

// Sums n floats (n a multiple of 64). interleaved: as 8 sequential streams, one per eighth of
// the buffer, read side by side. Otherwise as one stream, 256 bytes a step, with software
// prefetches 1 KiB ahead (the way the tiled int8-dot kernel reads its weights).
float stream_sum_avx2(const float* p, int64_t n, bool interleaved) {
  constexpr int kStreams = 8;
  __m256 acc[kStreams];
  for (int j = 0; j < kStreams; ++j) acc[j] = _mm256_setzero_ps();
  if (interleaved) {
    const int64_t len = n / kStreams;
    for (int64_t i = 0; i < len; i += 8) {
      for (int j = 0; j < kStreams; ++j) {
        acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(p + j * len + i));
      }
    }
    return lane_sum(acc);
  }
  constexpr int64_t kAheadBytes = 1024;
  for (int64_t i = 0; i < n; i += 64) {
    const char* line = reinterpret_cast<const char*>(p + i);
    for (int l = 0; l < 4; ++l) _mm_prefetch(line + kAheadBytes + 64 * l, _MM_HINT_T0);
    for (int j = 0; j < kStreams; ++j) {
      acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(p + i + 8 * j));
    }
  }
  return lane_sum(acc);
}

}  // namespace bx::detail
