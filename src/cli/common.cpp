#include "cli/common.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <thread>

#include "core/error.h"
#ifdef BITEXACT_HAVE_CUDA
#include "backend/cuda_backend.h"
#endif

namespace bx::cli {

void add_model_flags(CLI::App& command, ModelFlags& flags) {
  command.add_option("--model", flags.model_path, "Path to a GGUF model file")->required();
  command.add_option("--threads", flags.threads,
                     "CPU threads (default: all); results do not depend on it");
  command.add_flag("--quiet", flags.quiet, "No progress bar on stderr");
  command.add_option("--backend", flags.backend, "cpu (default) or cuda (one Hopper GPU)");
  command.add_option("--mode", flags.mode,
                     "invariant (default) or fast: cuBLAS matmuls, not batch-invariant, labelled "
                     "in the fingerprint (cuda only)");
}

namespace {

// Sets options.make_backend from --backend and --mode.
void choose_backend(const ModelFlags& flags, LoadOptions& options) {
  check(flags.backend == "cpu" || flags.backend == "cuda",
        "--backend is '" + flags.backend + "', expected cpu or cuda");
  check(flags.mode == "invariant" || flags.mode == "fast",
        "--mode is '" + flags.mode + "', expected invariant or fast");
  if (flags.backend == "cpu") {
    check(flags.mode == "invariant", "--mode fast needs --backend cuda");
    return;
  }
#ifdef BITEXACT_HAVE_CUDA
  const CudaBackend::Mode mode =
      flags.mode == "fast" ? CudaBackend::Mode::fast : CudaBackend::Mode::invariant;
  options.make_backend = [mode] { return std::make_unique<CudaBackend>(mode); };
#else
  (void)options;
  throw Error("--backend cuda: this build has no CUDA backend (nvcc was not found when it was "
              "configured)");
#endif
}

}  // namespace

int resolve_threads(int requested) {
  check(requested >= 0, "--threads is " + std::to_string(requested) +
                            ", expected a positive number (or 0 for all cores)");
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

LoadedModel load_with_progress(const ModelFlags& flags, LoadOptions options) {
  options.threads = resolve_threads(flags.threads);
  choose_backend(flags, options);
  const auto start = std::chrono::steady_clock::now();
  bool drawn = false;
  if (!flags.quiet) {
    options.progress = [&](uint64_t done, uint64_t total) {
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed < 1.0 || total == 0) return;
      const int width = 30;
      const int filled = static_cast<int>(static_cast<double>(done) / static_cast<double>(total) *
                                          width);
      std::fprintf(stderr, "\rloading [%s%s] %3d%% %.1f/%.1f MB", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(),
                   static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)),
                   static_cast<double>(done) / 1e6, static_cast<double>(total) / 1e6);
      drawn = true;
    };
  }
  LoadedModel model = load_model(flags.model_path, options);
  if (drawn) std::fprintf(stderr, "\n");
  return model;
}

std::string format_float(float value) {
  if (!std::isfinite(value)) return "null";
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

}  // namespace bx::cli
