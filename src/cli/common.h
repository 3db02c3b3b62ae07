// Pieces shared by the bitexact subcommands.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "engine/engine.h"
#include "model/loader.h"

namespace CLI {
class App;
}

namespace bx::cli {

// Flags every model-loading command takes.
struct ModelFlags {
  std::string model_path;
  int threads = 0;  // 0 = all hardware threads
  bool quiet = false;
  std::string backend = "cpu";  // cpu | cuda
  // invariant | fast: not batch-invariant, for comparison (cuda: cuBLAS; cpu: split-K by M)
  std::string mode = "invariant";
  // A tokenizer folder or GGUF file used in place of the model's own (a random: model has none).
  std::string tokenizer;
  // k1 | k2: the CPU kernel version for block-quantized weights (LoadOptions::cpu_quant_dot)
  std::string cpu_kernel = "k1";
};
void add_model_flags(CLI::App& command, ModelFlags& flags);

// Flags of commands that run the engine. None of them changes any output bit.
struct EngineFlags {
  int max_batch_tokens = 512;
  int max_seqs = 64;
  int prefill_chunk = 0;  // 0 = max_batch_tokens
  int kv_block_size = 16;
  int64_t kv_cache_tokens = 0;  // 0 = automatic (EngineOptions)
  bool no_prefix_cache = false;
};
void add_engine_flags(CLI::App& command, EngineFlags& flags);
// Checks the values; fills the load-time and run-time options they decide.
void apply_engine_flags(const EngineFlags& flags, LoadOptions& load, EngineOptions& engine);

// Loads the model, drawing a progress bar on stderr once loading has taken over a second
// (unless quiet).
LoadedModel load_with_progress(const ModelFlags& flags, LoadOptions options);

// The model's tokenizer, or a bx::Error saying the model has none (a Hugging Face folder
// without tokenizer.json) and that `purpose` needs one.
const Tokenizer& require_tokenizer(const LoadedModel& model, const std::string& purpose);

// The shortest decimal that reads back as exactly this float ("null" for inf or nan).
std::string format_float(float value);

// The --seed value, parsed strictly (CLI11 would wrap "-1" into 2^64 - 1): 0 to 2^64 - 1.
uint64_t parse_seed(const std::string& text);

// The --threads value: a positive count as given, 0 for every hardware thread.
int resolve_threads(int requested);

}  // namespace bx::cli
