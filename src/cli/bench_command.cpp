// bitexact bench: prefill and decode speed of one sequence, against the memory-bandwidth floor.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "backend/cpu_backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/bandwidth.h"
#include "core/cpu_features.h"
#include "core/error.h"
#ifdef BITEXACT_HAVE_CUDA
#include "kernels/cuda/bandwidth.h"
#endif

namespace bx::cli {
namespace {

struct BenchFlags {
  ModelFlags model;
  int prompt_tokens = 128;
  int decode_tokens = 32;
  int repeats = 3;
  bool dequantize_weights = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Bytes of weights one decode step reads: every matmul weight once, as held in memory (f32,
// bf16 or quantized blocks), plus one embedding row.
double weight_bytes_per_token(const LoadedModel& m) {
  return static_cast<double>(m.matmul_weight_bytes) + m.config.dim * 4.0;
}

void run_bench(const BenchFlags& f) {
  check(f.prompt_tokens > 0 && f.decode_tokens > 0 && f.repeats > 0,
        "--prompt-tokens, --decode-tokens and --repeats must be positive");
  LoadOptions options;
  options.max_batch_tokens = std::min(f.prompt_tokens, 512);
  options.max_logit_rows = 1;
  options.dequantize_weights = f.dequantize_weights;
  LoadedModel m = load_with_progress(f.model, options);
  const ModelConfig& c = m.config;
  const int total = f.prompt_tokens + f.decode_tokens;
  check(total <= c.context_length, "--prompt-tokens + --decode-tokens = " + std::to_string(total) +
                                       " exceeds the context " + std::to_string(c.context_length));
  const int block_size = m.kv_shape.block_size;
  m.reserve_kv_blocks((total + block_size - 1) / block_size);
  std::vector<int32_t> table(static_cast<size_t>(m.kv_shape.n_blocks));
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);

  std::vector<int32_t> tokens(static_cast<size_t>(total)), positions(tokens.size());
  for (int i = 0; i < total; ++i) {
    tokens[static_cast<size_t>(i)] = (i * 7 + 3) % c.vocab_size;
    positions[static_cast<size_t>(i)] = i;
  }
  std::vector<const int32_t*> tables(tokens.size(), table.data());
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  // Runs tokens [begin, end) as one forward call with logits for the last.
  auto forward = [&](int begin, int end) {
    const int32_t last = end - begin - 1;
    ForwardBatch batch{
        std::span(tokens).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)),
        std::span(positions).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)),
        std::span<const int32_t* const>(tables).subspan(static_cast<size_t>(begin),
                                                        static_cast<size_t>(end - begin)),
        std::span<const int32_t>(&last, 1)};
    m.model->forward(batch, logits.data(), nullptr);
  };

  std::vector<double> prefill, decode;
  for (int r = 0; r < f.repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (int b = 0; b < f.prompt_tokens; b += options.max_batch_tokens) {
      forward(b, std::min(f.prompt_tokens, b + options.max_batch_tokens));
    }
    prefill.push_back(f.prompt_tokens / seconds_since(start));
    start = std::chrono::steady_clock::now();
    for (int i = f.prompt_tokens; i < total; ++i) forward(i, i + 1);
    decode.push_back(f.decode_tokens / seconds_since(start));
  }
  // The decode floor's bandwidth: the CPU's read bandwidth with the bench's threads, or the
  // GPU's device-to-device copy bandwidth (bytes read plus written).
  auto* cpu = dynamic_cast<CpuBackend*>(m.backend.get());
  double bandwidth = 0;
  if (cpu != nullptr) {
    bandwidth = measure_read_bandwidth_gbs(cpu->pool());
  } else {
#ifdef BITEXACT_HAVE_CUDA
    bandwidth = cuda::copy_bandwidth() / 1e9;
#endif
  }
  check(bandwidth > 0, "bench: no bandwidth measurement for the " + m.backend->name() + " backend");
  const double bytes = weight_bytes_per_token(m);
  const double bound = bandwidth * 1e9 / bytes;
  const double decode_rate = median(decode);
  std::printf("model            %s\n", f.model.model_path.c_str());
  if (cpu != nullptr) {
    std::printf("threads, isa     %d, %s\n", cpu->pool().size(),
                std::string(isa_name(active_isa())).c_str());
  } else {
    std::printf("backend          %s (%s)\n", m.backend->name().c_str(),
                m.system_fingerprint().c_str());
  }
  std::printf("prefill          %.1f tokens/s (%d-token prompt, median of %d)\n", median(prefill),
              f.prompt_tokens, f.repeats);
  std::printf("decode           %.1f tokens/s (batch 1, %d tokens, median of %d)\n", decode_rate,
              f.decode_tokens, f.repeats);
  std::printf("weights/token    %.2f MB (%s)\n", bytes / 1e6, m.weight_storage.c_str());
  std::printf("%s   %.1f GB/s (measured now)\n", cpu ? "read bandwidth" : "copy bandwidth",
              bandwidth);
  std::printf("decode bound     %.1f tokens/s; achieved %.0f%% of it\n", bound,
              100.0 * decode_rate / bound);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto flags = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode tokens/s");
  add_model_flags(*cmd, flags->model);
  cmd->add_option("--prompt-tokens", flags->prompt_tokens, "Prompt length (128)");
  cmd->add_option("--decode-tokens", flags->decode_tokens, "Tokens to decode (32)");
  cmd->add_option("--repeats", flags->repeats, "Repetitions; the median is reported (3)");
  cmd->add_flag("--dequantize-weights", flags->dequantize_weights,
                "Hold block-quantized (Q8_0, Q4_K, ...) weights as F32 instead of their blocks "
                "(same output bits)");
  cmd->callback([flags] { run_bench(*flags); });
}

}  // namespace bx::cli
