// Helpers shared by the GPU tests (tests/cuda): skipping without a GPU, bf16 data, device copies.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/cuda/cuda_check.h"

// Skips the test unless a Hopper GPU (the only target the kernels are built for) is present.
#define BX_REQUIRE_HOPPER()                                                             \
  do {                                                                                  \
    if (!::bx::cuda::hopper_available()) GTEST_SKIP() << "no Hopper (sm_90) GPU found"; \
  } while (false)

namespace bx::test {

// n bf16 values: uniform in [lo, hi) rounded to bf16 (std::mt19937, repeatable within a run).
inline std::vector<uint16_t> random_bf16(size_t n, uint32_t seed, float lo = -1.0f,
                                         float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<uint16_t> v(n);
  for (uint16_t& h : v) h = f32_to_bf16(dist(rng));
  return v;
}

// n bf16 small integers in [lo, hi]: products and sums of these are exact in f32.
inline std::vector<uint16_t> random_int_bf16(size_t n, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<uint16_t> v(n);
  for (uint16_t& h : v) h = f32_to_bf16(static_cast<float>(dist(rng)));
  return v;
}

inline std::vector<float> random_f32(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

template <typename T>
cuda::DeviceBuffer to_device(const std::vector<T>& host) {
  cuda::DeviceBuffer buf(host.size() * sizeof(T));
  buf.upload(host.data(), host.size() * sizeof(T));
  return buf;
}

template <typename T>
std::vector<T> to_host(const cuda::DeviceBuffer& buf, size_t n) {
  std::vector<T> host(n);
  buf.download(host.data(), n * sizeof(T));
  return host;
}

// Fills a device buffer with a NaN pattern (0xFF bytes) so unwritten outputs show.
inline void poison(cuda::DeviceBuffer& buf) {
  cuda::check_cuda(cudaMemset(buf.get(), 0xFF, buf.bytes()), "cudaMemset");
}

inline void sync() {
  cuda::check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

inline bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

}  // namespace bx::test
