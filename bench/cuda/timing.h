// Timing for the GPU benchmarks (METHOD.md): device events, a warm-up, batches of back-to-back
// launches of about 2 ms each, the median over batches. Also the copy-bandwidth ceiling.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "kernels/cuda/bandwidth.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"

namespace bx::bench {

// Median microseconds of one launch(r): launch(r) runs one kernel on the default stream on input
// set r % rotations (rotate sets that together exceed the L2 so the timing is not the cache's).
template <typename Launch>
double median_us(Launch&& launch, int rotations, int samples_wanted = 11) {
  using cuda::check_cuda;
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  for (int i = 0; i < 3; ++i) launch(i % rotations);  // warm-up
  check_cuda(cudaDeviceSynchronize(), "warm-up");
  // Batch size: enough launches for about 2 ms.
  check_cuda(cudaEventRecord(start), "record");
  launch(0);
  check_cuda(cudaEventRecord(stop), "record");
  check_cuda(cudaEventSynchronize(stop), "sync");
  float one_ms = 0;
  check_cuda(cudaEventElapsedTime(&one_ms, start, stop), "elapsed");
  const int batch = std::clamp(static_cast<int>(2.0 / std::max(one_ms, 1e-3f)), 1, 200);
  std::vector<double> samples;
  for (int s = 0; s < samples_wanted; ++s) {
    check_cuda(cudaEventRecord(start), "record");
    for (int i = 0; i < batch; ++i) launch(i % rotations);
    check_cuda(cudaEventRecord(stop), "record");
    check_cuda(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    samples.push_back(1000.0 * ms / batch);
  }
  std::sort(samples.begin(), samples.end());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  check_cuda(cudaGetLastError(), "benchmark launches");
  return samples[samples.size() / 2];
}

// Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written: the median
// of 1 GiB cudaMemcpyAsync copies of random data.
inline double copy_bandwidth() {
  return cuda::copy_bandwidth();
}

// Prints the device line ("device: NAME, SMS SMs, L2 MB MB"). Without a Hopper GPU prints that
// `bench` has nothing to measure and returns false.
inline bool report_device(const char* bench) {
  if (!cuda::hopper_available()) {
    std::printf("%s: no Hopper GPU found; nothing to measure\n", bench);
    return false;
  }
  cudaDeviceProp prop{};
  cuda::check_cuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20);
  return true;
}

}  // namespace bx::bench
