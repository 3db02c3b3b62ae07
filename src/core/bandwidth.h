// Measures this machine's memory read bandwidth, the floor that decode speed is judged against.
#pragma once

#include <cstddef>

namespace bx {

class ThreadPool;

// Streams a buffer of `bytes` (much larger than the caches) `repeats` times with every thread of
// the pool reading its own part as 8 interleaved streams; returns the median GB/s (1e9 B/s).
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = size_t{1} << 30,
                                  int repeats = 5);

}  // namespace bx
