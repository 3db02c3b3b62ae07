#include "model/architecture.h"

#include <array>

#include "core/error.h"
#include "model/llama.h"

namespace bx {
namespace {

constexpr MoeNames kQwen3MoeNames{.experts_key = "num_experts",
                                  .experts_alias_key = "num_local_experts",
                                  .used_key = "num_experts_per_tok",
                                  .expert_ffn_key = "moe_intermediate_size",
                                  .norm_topk_key = "norm_topk_prob",
                                  .router = "mlp.gate.weight",
                                  .gate = "mlp.experts.{e}.gate_proj.weight",
                                  .up = "mlp.experts.{e}.up_proj.weight",
                                  .down = "mlp.experts.{e}.down_proj.weight"};
constexpr MoeNames kMixtralNames{.experts_key = "num_local_experts",
                                 .experts_alias_key = "",
                                 .used_key = "num_experts_per_tok",
                                 .expert_ffn_key = "intermediate_size",
                                 .norm_topk_key = "",
                                 .router = "block_sparse_moe.gate.weight",
                                 .gate = "block_sparse_moe.experts.{e}.w1.weight",
                                 .up = "block_sparse_moe.experts.{e}.w3.weight",
                                 .down = "block_sparse_moe.experts.{e}.w2.weight"};

using L = LlamaLayerWeights;
// Gemma 3's norms around its sublayers (transformers' Gemma3DecoderLayer): the table's ffn_norm
// is its pre_feedforward_layernorm, and post_attention_layernorm is a post-norm.
constexpr std::array<HfLayerName, 3> kGemma3HfNames = {{
    {&L::post_attn_norm, "post_attention_layernorm.weight"},
    {&L::ffn_norm, "pre_feedforward_layernorm.weight"},
    {&L::post_ffn_norm, "post_feedforward_layernorm.weight"},
}};

constexpr std::array<Architecture, 7> kArchitectures = {{
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
    {.family = "qwen3moe",
     .hf_class = "Qwen3MoeForCausalLM",
     .gguf_name = "qwen3moe",
     .gguf_rope_layout = RopeLayout::half_split,
     .qkv_bias = Presence::attention_bias,
     .output_bias = Presence::attention_bias,
     .qk_norm = true,
     .sliding_window = SlidingWindow::use_sliding_window,
     .moe = &kQwen3MoeNames},
    {.family = "mixtral",
     .hf_class = "MixtralForCausalLM",
     .sliding_window = SlidingWindow::when_set,
     .moe = &kMixtralNames},
    {.family = "gemma3",
     .hf_class = "Gemma3ForCausalLM",
     .gguf_name = "gemma3",
     .gguf_rope_layout = RopeLayout::half_split,
     .qkv_bias = Presence::attention_bias,
     .output_bias = Presence::attention_bias,
     .qk_norm = true,
     .sliding_window = SlidingWindow::per_layer,
     .post_norms = true,
     .gelu_tanh_mlp = true,
     .scaled_embedding = true,
     .hf_norm_plus_one = true,
     .hf_names = kGemma3HfNames},
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
const std::array<LayerWeight, 21> kLayerWeights = {{
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
    {&L::w_gate, "ffn_gate.weight", "mlp.gate_proj.weight", W::ffn_dim, W::dim, K::matmul,
     G::dense_mlp},
    {&L::w_up, "ffn_up.weight", "mlp.up_proj.weight", W::ffn_dim, W::dim, K::matmul, G::dense_mlp},
    {&L::w_down, "ffn_down.weight", "mlp.down_proj.weight", W::dim, W::ffn_dim, K::matmul,
     G::dense_mlp},
    {&L::router, "ffn_gate_inp.weight", "", W::n_experts, W::dim, K::matmul, G::experts},
    {&L::expert_gate, "ffn_gate_exps.weight", "", W::experts_x_expert_ffn_dim, W::dim, K::matmul,
     G::experts, true},
    {&L::expert_up, "ffn_up_exps.weight", "", W::experts_x_expert_ffn_dim, W::dim, K::matmul,
     G::experts, true},
    {&L::expert_down, "ffn_down_exps.weight", "", W::experts_x_dim, W::expert_ffn_dim, K::matmul,
     G::experts, true},
    // Gemma 3's post-norms: Hugging Face names are the family's (kGemma3HfNames).
    {&L::post_attn_norm, "post_attention_norm.weight", "post_attention_norm.weight", W::one, W::dim,
     K::norm, G::post_norms},
    {&L::post_ffn_norm, "post_ffw_norm.weight", "post_ffw_norm.weight", W::one, W::dim, K::norm,
     G::post_norms},
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
    case WeightDim::n_experts:
      return c.n_experts;
    case WeightDim::expert_ffn_dim:
      return c.expert_ffn_dim;
    case WeightDim::experts_x_expert_ffn_dim:
      return int64_t{c.n_experts} * c.expert_ffn_dim;
    case WeightDim::experts_x_dim:
      return int64_t{c.n_experts} * c.dim;
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
    case WeightGroup::dense_mlp:
      return !c.is_moe();
    case WeightGroup::experts:
      return c.is_moe();
    case WeightGroup::post_norms:
      return c.post_norms;
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

std::string hf_layer_name(const Architecture& arch, int layer, const LayerWeight& w) {
  for (const HfLayerName& n : arch.hf_names) {
    if (n.field == w.field)
      return "model.layers." + std::to_string(layer) + "." + std::string(n.hf);
  }
  return hf_layer_name(layer, w);
}

std::string hf_expert_name(const Architecture& arch, int layer, const LayerWeight& w, int e) {
  BX_CHECK(arch.moe != nullptr, "architecture " + std::string(arch.family) + " has no experts");
  const MoeNames& n = *arch.moe;
  const std::string_view name = w.field == &L::router        ? n.router
                                : w.field == &L::expert_gate ? n.gate
                                : w.field == &L::expert_up   ? n.up
                                                             : n.down;
  std::string s = "model.layers." + std::to_string(layer) + "." + std::string(name);
  const size_t at = s.find("{e}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(e));
  return s;
}

int64_t expert_rows(const LayerWeight& w, const ModelConfig& c) {
  return w.per_expert ? weight_dim(w.rows, c) / c.n_experts : weight_dim(w.rows, c);
}

}  // namespace bx
