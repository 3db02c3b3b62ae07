// The backend and mode a model loads into, by name ("cpu" | "cuda", "invariant" | "fast"): the
// CLI's --backend / --mode and the Python package's LLM(backend=, mode=). Header-only because the
// CUDA backend lives in a library of its own (bitexact_cuda, BITEXACT_HAVE_CUDA), which only the
// programs that link it see.
#pragma once

#include <memory>
#include <string>

#include "core/error.h"
#include "model/loader.h"
#ifdef BITEXACT_HAVE_CUDA
#include "backend/cuda_backend.h"
#endif

namespace bx {

// Sets options.make_backend and options.reduction_order. Throws bx::Error naming the bad value
// (as `prefix` + "backend" / "mode": "--" for the CLI's flags), or saying that this build has no
// CUDA backend.
inline void choose_backend(const std::string& backend, const std::string& mode,
                           LoadOptions& options, const std::string& prefix = "") {
  check(backend == "cpu" || backend == "cuda",
        prefix + "backend is '" + backend + "', expected cpu or cuda");
  check(mode == "invariant" || mode == "fast",
        prefix + "mode is '" + mode + "', expected invariant or fast");
  if (backend == "cpu") {
    // Fast mode on the CPU is the comparison baseline of R8, not a speed-up: matmuls split K
    // into 1 + M % 3 parts (kernels/matmul.h, split_k_by_m) as BLAS libraries do for small M,
    // so a row's bits depend on how many tokens share its step.
    if (mode == "fast") options.reduction_order = ReductionOrder::split_k_by_m;
    return;
  }
#ifdef BITEXACT_HAVE_CUDA
  const CudaBackend::Mode cuda_mode =
      mode == "fast" ? CudaBackend::Mode::fast : CudaBackend::Mode::invariant;
  options.make_backend = [cuda_mode] { return std::make_unique<CudaBackend>(cuda_mode); };
#else
  (void)options;
  throw Error(
      "backend cuda: this build has no CUDA backend (nvcc was not found when it was "
      "configured)");
#endif
}

}  // namespace bx
