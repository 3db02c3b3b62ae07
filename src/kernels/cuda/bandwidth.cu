#include "kernels/cuda/bandwidth.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"

namespace bx::cuda {

double copy_bandwidth() {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer src(bytes), dst(bytes);
  fill_uniform_f32(src.get<float>(), static_cast<int64_t>(bytes / 4), 1, -1, 1, nullptr);
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<float> ms;
  for (int i = 0; i < 6; ++i) {
    check_cuda(cudaEventRecord(start, nullptr), "cudaEventRecord");
    check_cuda(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, nullptr),
               "cudaMemcpyAsync");
    check_cuda(cudaEventRecord(stop, nullptr), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float t = 0;
    check_cuda(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
    if (i > 0) ms.push_back(t);  // the first copy warms up
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return 2.0 * static_cast<double>(bytes) / (static_cast<double>(ms[ms.size() / 2]) * 1e-3);
}

}  // namespace bx::cuda
