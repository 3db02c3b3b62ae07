// Measures this machine's memory read bandwidth, the floor that decode speed is judged against.
#pragma once

#include <cstddef>

namespace bx {

class ThreadPool;

// Streams a buffer of `bytes` (much larger than the caches) `repeats` times with every thread of
// the pool reading its own part, in two patterns: 8 interleaved streams, and (AVX2) one stream
// with software prefetches; returns the larger of the two median GB/s (1e9 B/s). (The
// interleaved pattern alone measured 8.4 GB/s on one core of the AMD EPYC dev VM, where the
// tiled Q8_0 decode read its weights at 10.9 GB/s: bench/RESULTS.md.)
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = size_t{1} << 30,
                                  int repeats = 5);

}  // namespace bx
