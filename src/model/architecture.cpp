#include "model/architecture.h"

#include <array>

#include "core/error.h"
#include "model/llama.h"

namespace bx {
namespace {

constexpr std::array<Architecture, 4> kArchitectures = {{
    {.family = "llama",
     .hf_class = "LlamaForCausalLM",
     .gguf_name = "llama",
     .qkv_bias = Presence::attention_bias,
     .output_bias = Presence::attention_bias,
     .refuses_mlp_bias = true},
    {.family = "mistral",
     .hf_class = "MistralForCausalLM",
     .sliding_window = SlidingWindow::always},
    {.family = "qwen2",
     .hf_class = "Qwen2ForCausalLM",
     .gguf_name = "qwen2",
     .gguf_rope_layout = RopeLayout::half_split,
     .qkv_bias = Presence::always,
     .sliding_window = SlidingWindow::use_sliding_window},
    {.family = "qwen3",
     .hf_class = "Qwen3ForCausalLM",
     .gguf_name = "qwen3",
     .gguf_rope_layout = RopeLayout::half_split,
     .qkv_bias = Presence::attention_bias,
     .output_bias = Presence::attention_bias,
     .qk_norm = true,
     .sliding_window = SlidingWindow::use_sliding_window},
}};

constexpr std::array<DimensionKey, 6> kDimensionKeys = {{
    {&ModelConfig::dim, "embedding_length", "hidden_size"},
    {&ModelConfig::ffn_dim, "feed_forward_length", "intermediate_size"},
    {&ModelConfig::n_layers, "block_count", "num_hidden_layers"},
    {&ModelConfig::n_heads, "attention.head_count", "num_attention_heads"},
    {&ModelConfig::vocab_size, "", "vocab_size"},
    {&ModelConfig::context_length, "context_length", "max_position_embeddings"},
}};

using W = WeightDim;
using K = WeightKind;
using G = WeightGroup;
using L = LlamaLayerWeights;
const std::array<LayerWeight, 15> kLayerWeights = {{
    {&L::attn_norm, "attn_norm.weight", "input_layernorm.weight", W::one, W::dim, K::norm, G::base},
    {&L::wq, "attn_q.weight", "self_attn.q_proj.weight", W::q_dim, W::dim, K::matmul, G::base},
    {&L::wk, "attn_k.weight", "self_attn.k_proj.weight", W::kv_dim, W::dim, K::matmul, G::base},
    {&L::wv, "attn_v.weight", "self_attn.v_proj.weight", W::kv_dim, W::dim, K::matmul, G::base},
    {&L::wo, "attn_output.weight", "self_attn.o_proj.weight", W::dim, W::q_dim, K::matmul, G::base},
    {&L::bq, "attn_q.bias", "self_attn.q_proj.bias", W::one, W::q_dim, K::bias, G::qkv_bias},
    {&L::bk, "attn_k.bias", "self_attn.k_proj.bias", W::one, W::kv_dim, K::bias, G::qkv_bias},
    {&L::bv, "attn_v.bias", "self_attn.v_proj.bias", W::one, W::kv_dim, K::bias, G::qkv_bias},
    {&L::bo, "attn_output.bias", "self_attn.o_proj.bias", W::one, W::dim, K::bias, G::output_bias},
    {&L::q_norm, "attn_q_norm.weight", "self_attn.q_norm.weight", W::one, W::head_dim, K::norm,
     G::qk_norm},
    {&L::k_norm, "attn_k_norm.weight", "self_attn.k_norm.weight", W::one, W::head_dim, K::norm,
     G::qk_norm},
    {&L::ffn_norm, "ffn_norm.weight", "post_attention_layernorm.weight", W::one, W::dim, K::norm,
     G::base},
    {&L::w_gate, "ffn_gate.weight", "mlp.gate_proj.weight", W::ffn_dim, W::dim, K::matmul, G::base},
    {&L::w_up, "ffn_up.weight", "mlp.up_proj.weight", W::ffn_dim, W::dim, K::matmul, G::base},
    {&L::w_down, "ffn_down.weight", "mlp.down_proj.weight", W::dim, W::ffn_dim, K::matmul, G::base},
}};

template <typename Names>
std::string join(Names names) {
  std::string s;
  for (const Architecture& a : kArchitectures) {
    const std::string_view name = names(a);
    if (!name.empty()) s += (s.empty() ? "" : ", ") + std::string(name);
  }
  return s;
}

}  // namespace

std::span<const Architecture> architectures() {
  return kArchitectures;
}

const Architecture* find_hf_architecture(std::string_view hf_class) {
  for (const Architecture& a : kArchitectures) {
    if (a.hf_class == hf_class) return &a;
  }
  return nullptr;
}

const Architecture* find_gguf_architecture(std::string_view gguf_name) {
  for (const Architecture& a : kArchitectures) {
    if (!a.gguf_name.empty() && a.gguf_name == gguf_name) return &a;
  }
  return nullptr;
}

std::string hf_architecture_list() {
  return join([](const Architecture& a) { return a.hf_class; });
}

std::string gguf_architecture_list() {
  return join([](const Architecture& a) { return a.gguf_name; });
}

std::span<const DimensionKey> dimension_keys() {
  return kDimensionKeys;
}

std::string gguf_key(const Architecture& arch, std::string_view suffix) {
  return std::string(arch.gguf_name) + "." + std::string(suffix);
}

int64_t weight_dim(WeightDim d, const ModelConfig& c) {
  switch (d) {
    case WeightDim::one:
      return 1;
    case WeightDim::dim:
      return c.dim;
    case WeightDim::q_dim:
      return c.q_dim();
    case WeightDim::kv_dim:
      return c.kv_dim();
    case WeightDim::ffn_dim:
      return c.ffn_dim;
    case WeightDim::head_dim:
      return c.head_dim;
    case WeightDim::vocab:
      return c.vocab_size;
  }
  return 0;
}

bool has_group(WeightGroup g, const ModelConfig& c) {
  switch (g) {
    case WeightGroup::base:
      return true;
    case WeightGroup::qkv_bias:
      return c.qkv_bias;
    case WeightGroup::output_bias:
      return c.output_bias;
    case WeightGroup::qk_norm:
      return c.qk_norm;
  }
  return false;
}

std::span<const LayerWeight> layer_weights() {
  return kLayerWeights;
}

int64_t parameter_count(const ModelConfig& c) {
  int64_t layer = 0;
  for (const LayerWeight& w : kLayerWeights) {
    if (has_group(w.group, c)) layer += weight_dim(w.rows, c) * weight_dim(w.cols, c);
  }
  const int64_t embedding = int64_t{c.vocab_size} * c.dim;
  return embedding + c.n_layers * layer + c.dim + (c.tied_output ? 0 : embedding);
}

std::string gguf_layer_name(int layer, const LayerWeight& w) {
  return "blk." + std::to_string(layer) + "." + std::string(w.gguf);
}

std::string hf_layer_name(int layer, const LayerWeight& w) {
  return "model.layers." + std::to_string(layer) + "." + std::string(w.hf);
}

}  // namespace bx
