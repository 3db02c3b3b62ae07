// Launching the MoE steps (moe_steps.h) back to back. With early_start (small T: decode) a step
// is launched with programmatic stream serialization, so its blocks may be scheduled while the
// previous kernel drains; every MoE kernel begins with griddep_wait (hopper.cuh), before any
// global access, so none reads or writes memory before the previous grid has finished and
// flushed (transitively all earlier ones). The arithmetic is the same either way.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/hopper.cuh"

namespace bx::cuda::moe {

// First statement of every MoE kernel: let the next kernel be scheduled, then wait for the
// previous one (both no-ops without the launch attribute).
__device__ __forceinline__ void begin_step() {
  ptx::griddep_launch_dependents();
  ptx::griddep_wait();
}

template <typename... Params, typename... Args>
void launch_step(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                 bool early_start, const char* what, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = early_start ? 1 : 0;
  check_cuda(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), what);
  check_launch(what);
}

}  // namespace bx::cuda::moe
