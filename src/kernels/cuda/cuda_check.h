// Host-side CUDA helpers: every runtime call's status becomes a bx::Error naming the call, and a
// small RAII device buffer. Included by .cu and .cpp files alike (no device code here).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>

#include "core/error.h"

namespace bx::cuda {

// Throws bx::Error("<what>: <CUDA error name>: <description>") unless status is cudaSuccess.
inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw Error(std::string(what) + ": " + cudaGetErrorName(status) + ": " +
                cudaGetErrorString(status));
  }
}

// Checks the launch that was just made (configuration errors are reported here; faults inside
// the kernel surface at the next synchronising call).
inline void check_launch(const char* kernel) {
  check_cuda(cudaGetLastError(), kernel);
}

// True when a GPU the kernels were built for (compute capability 9.0, Hopper) is present.
// Never throws: tests call it to decide whether to skip.
inline bool hopper_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky "no device" status
    return false;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return false;
  return prop.major == 9 && prop.minor == 0;
}

// The current device's multiprocessor count, read once. Kernels use it for speed choices only
// (grid sizes, which schedule runs), never for anything that decides a bit.
inline int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device),
               "cudaDeviceGetAttribute (multiprocessors)");
    return n;
  }();
  return count;
}

// Device memory of `bytes` bytes, freed on destruction. Not copyable, movable.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes > 0) check_cuda(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

  void upload(const void* host, size_t bytes) {
    check(bytes <= bytes_, "DeviceBuffer::upload: " + std::to_string(bytes) +
                               " bytes do not fit in " + std::to_string(bytes_));
    check_cuda(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
  void download(void* host, size_t bytes) const {
    check(bytes <= bytes_, "DeviceBuffer::download: " + std::to_string(bytes) +
                               " bytes exceed the buffer's " + std::to_string(bytes_));
    check_cuda(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace bx::cuda
