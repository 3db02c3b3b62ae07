#include "cli/common.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <thread>

#include "core/error.h"

namespace bx::cli {

void add_model_flags(CLI::App& command, ModelFlags& flags) {
  command
      .add_option("--model", flags.model_path,
                  "Path to a GGUF model file or a Hugging Face model folder")
      ->required();
  command.add_option("--threads", flags.threads,
                     "CPU threads (default: all); results do not depend on it");
  command.add_flag("--quiet", flags.quiet, "No progress bar on stderr");
}

int resolve_threads(int requested) {
  check(requested >= 0, "--threads is " + std::to_string(requested) +
                            ", expected a positive number (or 0 for all cores)");
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

LoadedModel load_with_progress(const ModelFlags& flags, LoadOptions options) {
  options.threads = resolve_threads(flags.threads);
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

const Tokenizer& require_tokenizer(const LoadedModel& model, const std::string& purpose) {
  check(model.tokenizer != nullptr,
        model.path + ": this model has no tokenizer (Hugging Face folders are loaded without " +
            "tokenizer.json for now), but " + purpose + " needs one: use a GGUF model file");
  return *model.tokenizer;
}

std::string format_float(float value) {
  if (!std::isfinite(value)) return "null";
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

}  // namespace bx::cli
