#include "cli/common.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "backend/choose_backend.h"
#include "core/error.h"

namespace bx::cli {

void add_model_flags(CLI::App& command, ModelFlags& flags) {
  command
      .add_option("--model", flags.model_path,
                  "Path to a GGUF model file or a Hugging Face model folder, or "
                  "random:qwen3-8b[:SEED] / random:qwen3-tiny[:SEED] (generated weights)")
      ->required();
  command.add_option("--threads", flags.threads,
                     "CPU threads (default: all); results do not depend on it");
  command.add_flag("--quiet", flags.quiet, "No progress bar on stderr");
  command.add_option("--backend", flags.backend, "cpu (default) or cuda (one Hopper GPU)");
  command.add_option("--mode", flags.mode,
                     "invariant (default) or fast: a conventional batch-dependent matmul order "
                     "(cuda: cuBLAS; cpu: K split by batch size, slower), for comparison only, "
                     "labelled in the fingerprint");
  command.add_option("--tokenizer", flags.tokenizer,
                     "A tokenizer folder (tokenizer.json) or GGUF file to use instead of the "
                     "model's own, e.g. for a random: model; its vocabulary must fit the model's");
  command.add_option("--cpu-kernel", flags.cpu_kernel,
                     "k1 (default): quantized weights dequantized to f32 exactly; k2: int8 "
                     "activations and integer block dots for Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q6_K "
                     "(faster, other bits, equally invariant; in the fingerprint as cpu-k2)");
}

void add_engine_flags(CLI::App& command, EngineFlags& flags) {
  command.add_option("--max-batch-tokens", flags.max_batch_tokens,
                     "Tokens per step (512); results do not depend on it");
  command.add_option("--max-seqs", flags.max_seqs,
                     "Sequences per step (64); results do not depend on it");
  command.add_option("--prefill-chunk", flags.prefill_chunk,
                     "Prompt tokens of one sequence per step (default: --max-batch-tokens)");
  command.add_option("--kv-block-size", flags.kv_block_size, "Tokens per KV cache block (16)");
  command.add_option("--kv-cache-tokens", flags.kv_cache_tokens,
                     "KV cache size in tokens (default: max-seqs contexts, at most 1 GiB)");
  command.add_flag("--no-prefix-cache", flags.no_prefix_cache,
                   "Do not share computed prompt blocks between requests");
}

void apply_engine_flags(const EngineFlags& f, LoadOptions& load, EngineOptions& engine) {
  const auto positive = [](int64_t v, const char* name) {
    check(v > 0, std::string(name) + " is " + std::to_string(v) + ", expected a positive number");
  };
  positive(f.max_batch_tokens, "--max-batch-tokens");
  positive(f.max_seqs, "--max-seqs");
  positive(f.kv_block_size, "--kv-block-size");
  check(f.prefill_chunk >= 0, "--prefill-chunk is " + std::to_string(f.prefill_chunk) +
                                  ", expected a positive number (or 0 for the batch size)");
  check(f.kv_cache_tokens >= 0, "--kv-cache-tokens is " + std::to_string(f.kv_cache_tokens) +
                                    ", expected a positive number (or 0 for automatic)");
  load.max_batch_tokens = f.max_batch_tokens;
  load.max_logit_rows = f.max_seqs;
  load.kv_block_size = f.kv_block_size;
  engine.max_batch_tokens = f.max_batch_tokens;
  engine.max_seqs = f.max_seqs;
  engine.prefill_chunk = f.prefill_chunk;
  engine.kv_cache_tokens = f.kv_cache_tokens;
  engine.prefix_cache = !f.no_prefix_cache;
}

uint64_t parse_seed(const std::string& text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  check(!text.empty() && ec == std::errc() && ptr == end,
        "--seed is '" + text + "', expected an integer from 0 to 18446744073709551615");
  return value;
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
  choose_backend(flags.backend, flags.mode, options, "--");
  check(flags.cpu_kernel == "k1" || flags.cpu_kernel == "k2",
        "--cpu-kernel is '" + flags.cpu_kernel + "', expected k1 or k2");
  check(flags.cpu_kernel == "k1" || flags.backend == "cpu",
        "--cpu-kernel k2 is a CPU kernel version, but --backend is " + flags.backend);
  if (flags.cpu_kernel == "k2") options.cpu_quant_dot = QuantDot::int8_activations;
  check(flags.tokenizer.empty() || std::filesystem::exists(flags.tokenizer),
        "--tokenizer " + flags.tokenizer + " does not exist");  // before a long load
  const auto start = std::chrono::steady_clock::now();
  bool drawn = false;
  if (!flags.quiet) {
    options.progress = [&](uint64_t done, uint64_t total) {
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed < 1.0 || total == 0) return;
      const int width = 30;
      const int filled =
          static_cast<int>(static_cast<double>(done) / static_cast<double>(total) * width);
      std::fprintf(stderr, "\rloading [%s%s] %3d%% %.1f/%.1f MB", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(),
                   static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)),
                   static_cast<double>(done) / 1e6, static_cast<double>(total) / 1e6);
      drawn = true;
    };
  }
  LoadedModel model = load_model(flags.model_path, options);
  if (drawn) std::fprintf(stderr, "\n");
  if (!flags.tokenizer.empty()) attach_tokenizer(model, flags.tokenizer);
  return model;
}

const Tokenizer& require_tokenizer(const LoadedModel& model, const std::string& purpose) {
  check(model.tokenizer != nullptr,
        model.path + ": this model has no tokenizer (a Hugging Face folder needs its " +
            "tokenizer.json; a random: model has none), but " + purpose + " needs one");
  return *model.tokenizer;
}

std::string format_float(float value) {
  if (!std::isfinite(value)) return "null";
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

}  // namespace bx::cli
