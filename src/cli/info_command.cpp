// bitexact info: what a model file holds, and the identity the engine gives it.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/cpu_features.h"
#include "model/gguf.h"
#include "model/hf_loader.h"
#include "model/random_model.h"
#include "model/safetensors.h"

namespace bx::cli {
namespace {

void run_info(const ModelFlags& flags) {
  LoadedModel model = load_with_progress(flags, LoadOptions{});
  const ModelConfig& c = model.config;
  std::map<std::string, int> type_counts;
  std::string format;
  if (is_random_model_spec(flags.model_path)) {
    format = "generated weights (no file)";
  } else if (is_hf_folder(flags.model_path)) {
    const safetensors::Checkpoint ckpt = safetensors::Checkpoint::open(flags.model_path);
    for (const auto& [name, e] : ckpt.tensors())
      ++type_counts[std::string(safetensors::dtype_name(e.info->dtype))];
    format = "Hugging Face folder, " + std::to_string(ckpt.files().size()) +
             " safetensors file(s), " + std::to_string(ckpt.tensors().size()) + " tensors";
  } else {
    const gguf::File file = gguf::File::open(flags.model_path);
    for (const gguf::TensorInfo& t : file.tensors()) ++type_counts[gguf::ggml_type_name(t.type)];
    format = "GGUF v" + std::to_string(file.version()) + ", " +
             std::to_string(file.tensors().size()) + " tensors";
  }
  std::string types;
  for (const auto& [name, count] : type_counts) {
    types += (types.empty() ? "" : ", ") + name + " x" + std::to_string(count);
  }
  std::printf("model          %s\n", flags.model_path.c_str());
  std::printf("format         %s\n", format.c_str());
  std::printf("architecture   %s\n", c.architecture.c_str());
  std::printf("vocab          %d\n", c.vocab_size);
  std::printf("dim            %d\n", c.dim);
  std::printf("layers         %d\n", c.n_layers);
  std::printf("heads          %d query, %d key/value, head dim %d\n", c.n_heads, c.n_kv_heads,
              c.head_dim);
  if (c.is_moe()) {
    std::printf("experts        %d, %d per token, expert ffn dim %d, top-k weights %s\n",
                c.n_experts, c.n_experts_used, c.expert_ffn_dim,
                c.norm_topk_prob ? "normalized" : "as routed");
  } else {
    std::printf("ffn dim        %d\n", c.ffn_dim);
  }
  std::printf("context        %d\n", c.context_length);
  std::printf("rope theta     %g (%s)%s\n", c.rope_theta,
              c.rope_layout == RopeLayout::adjacent_pairs ? "GGUF adjacent pairs"
                                                          : "Hugging Face rotate-half",
              c.rope_scaling.kind == RopeScaling::Kind::llama3         ? ", llama3 scaling"
              : c.rope_scaling.kind == RopeScaling::Kind::freq_factors ? ", frequency factors"
              : c.rope_scaling.kind == RopeScaling::Kind::linear       ? ", linear scaling"
                                                                       : "");
  if (!c.windowed.empty()) {
    const auto n = std::count(c.windowed.begin(), c.windowed.end(), uint8_t{1});
    std::printf("sliding window %d positions on %lld of %d layers (their rope theta %g)\n",
                c.sliding_window, static_cast<long long>(n), c.n_layers, c.rope_local_theta);
  }
  if (c.post_norms || c.gelu_tanh_mlp || c.embed_scale != 1.0f) {
    std::printf("gemma parts    %s%sembedding x %g\n",
                c.gelu_tanh_mlp ? "GELU-tanh gated MLP; " : "", c.post_norms ? "post-norms; " : "",
                static_cast<double>(c.embed_scale));
  }
  std::string attention_extras;
  for (const auto& [on, name] :
       {std::pair{c.qkv_bias, "q/k/v bias"}, std::pair{c.output_bias, "output bias"},
        std::pair{c.qk_norm, "per-head q/k RMSNorm"}}) {
    if (on) attention_extras += (attention_extras.empty() ? "" : ", ") + std::string(name);
  }
  if (!attention_extras.empty()) std::printf("attention      %s\n", attention_extras.c_str());
  std::printf("rms eps        %g\n", static_cast<double>(c.rms_eps));
  std::printf("output         %s\n", c.tied_output ? "tied to the token embedding" : "separate");
  std::printf("parameters     %lld\n", static_cast<long long>(model.parameter_count));
  std::printf("tensor types   %s\n", types.c_str());
  std::printf("weights held   %s (%.1f MB of matmul weights; arithmetic %s)\n",
              model.weight_storage.c_str(), static_cast<double>(model.matmul_weight_bytes) / 1e6,
              model.weight_dtype.c_str());
  std::printf("weights hash   %s\n", model.weights_hash.c_str());
  std::printf("backend        %s (isa %s)\n", model.backend->name().c_str(),
              std::string(isa_name(active_isa())).c_str());
  std::printf("fingerprint    %s\n", model.system_fingerprint().c_str());
}

}  // namespace

void register_info(CLI::App& app) {
  auto flags = std::make_shared<ModelFlags>();
  CLI::App* cmd = app.add_subcommand("info", "Show a model's architecture, shapes and identity");
  add_model_flags(*cmd, *flags);
  cmd->callback([flags] { run_info(*flags); });
}

}  // namespace bx::cli
