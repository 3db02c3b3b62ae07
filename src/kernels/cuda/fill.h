// Device-side test and benchmark data: buffers filled with uniform values from a counter-based
// hash, so large inputs need no host generation or transfer. Not used by the forward pass.
//
// Element i gets u = hash(seed, i) / 2^32 (a 32-bit integer hash of the 64-bit index mixed with
// the seed), value lo + (hi - lo) * u, rounded to the element type. The same (seed, n) gives the
// same values on every run.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

void fill_uniform_bf16(uint16_t* out, int64_t n, uint32_t seed, float lo, float hi,
                       cudaStream_t stream);
void fill_uniform_f32(float* out, int64_t n, uint32_t seed, float lo, float hi,
                      cudaStream_t stream);

}  // namespace bx::cuda
