// The model families bitexact runs, each described once: how its files name it (config.json's
// class, GGUF's general.architecture), which optional parts of the decoder it has (q/k/v and o
// biases, per-head q/k norms, sliding window), its RoPE layout per file format, and the names of
// its config keys and weights in both formats. The loaders (model/loader.cpp GGUF,
// model/hf_config.cpp and model/hf_loader.cpp Hugging Face) and the random models
// (model/random_model.cpp) read everything from here, so a family that fits the decoder of
// model/llama.h is one entry in architectures(), and a new kind of weight (an expert's gate, say)
// is one entry in layer_weights() plus the op that uses it.
//
// Families:
//   family   config.json class    GGUF name  biases                 q/k norm  sliding window
//   llama    LlamaForCausalLM     llama      attention_bias: q,k,v,o   no     no (mlp_bias refused)
//   mistral  MistralForCausalLM   (llama)    none                      no     always (window key)
//   qwen2    Qwen2ForCausalLM     qwen2      q,k,v always              no     use_sliding_window
//   qwen3    Qwen3ForCausalLM     qwen3      attention_bias: q,k,v,o   yes    use_sliding_window
//   qwen3moe Qwen3MoeForCausalLM  qwen3moe   attention_bias: q,k,v,o   yes    use_sliding_window
//   mixtral  MixtralForCausalLM   (llama)    none                      no     when set (null: none)
//   gemma3   Gemma3ForCausalLM    gemma3     none                      yes    per layer (see below)
// Gemma 3 (text) differs in more than optional weights: embeddings times sqrt(D), norm weights
// stored as w with (1 + w) applied (Hugging Face; llama.cpp's converter stores 1 + w, so its GGUF
// files hold the applied weight), an RMSNorm after each sublayer too (post_norms), a GELU-tanh
// gated MLP, attention scale query_pre_attn_scalar^-0.5, and most layers attending over a sliding
// window with their own RoPE base (model/config.h: windowed, rope_local_theta).
// The gguf package has no "mistral" architecture: llama.cpp's converter writes Mistral checkpoints
// as "llama" (adjacent-pair RoPE, no biases), so they load through the llama entry. In GGUF a
// family's optional weights are present or not by tensor (GGUF has no attention_bias key), and
// RoPE scaling is read from the file (kGgufRopeFreqs), for every family.
// qwen3moe and mixtral replace every layer's MLP by a Mixture-of-Experts (kernels/moe.h; their
// config keys and expert weight names are MoeNames below). A GGUF file of any family is MoE when
// it has "<arch>.expert_count": Mixtral's GGUF files are "llama" with experts.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "kernels/rope.h"
#include "model/config.h"

namespace bx {

struct LlamaLayerWeights;

// Whether a family has an optional group of weights.
enum class Presence {
  never,
  always,
  attention_bias,  // config.json's "attention_bias" (default false) says
};

// Sliding-window attention (see model/hf_config.h for how a window is honoured).
enum class SlidingWindow {
  none,
  always,              // "sliding_window" is the window (Mistral; absent: 4096, null: none)
  use_sliding_window,  // only when "use_sliding_window" is true (Qwen)
  when_set,            // "sliding_window" is the window when it is a number (Mixtral)
  per_layer,           // Gemma 3: windowed layers by layer_types / a pattern, the others full
};

// A family's own Hugging Face name for a layer weight (under "model.layers.<layer>."), where it
// differs from the table's (layer_weights()).
struct HfLayerName {
  Tensor LlamaLayerWeights::*field;
  std::string_view hf;
};

// A Mixture-of-Experts family's config.json keys and per-layer weight names (under
// "model.layers.<layer>."; "{e}" stands for the expert index), as Hugging Face checkpoints and
// transformers' save_pretrained write them.
struct MoeNames {
  std::string_view experts_key;  // E; read first, then experts_alias_key
  std::string_view experts_alias_key;
  std::string_view used_key;        // k, "num_experts_per_tok"
  std::string_view expert_ffn_key;  // Fe
  std::string_view norm_topk_key;   // empty: the top-k weights are always normalized
  std::string_view router;          // [E, D]
  std::string_view gate, up, down;  // expert e's [Fe, D], [Fe, D], [D, Fe]
};

struct Architecture {
  std::string_view family = {};     // "llama", "qwen3", ...
  std::string_view hf_class = {};   // config.json "architectures": ["LlamaForCausalLM"]
  std::string_view gguf_name = {};  // GGUF general.architecture; empty: no GGUF for this family yet
  // GGUF: llama.cpp's converter stores llama's q/k rows permuted for adjacent pairs; families it
  // runs as NEOX keep Hugging Face's rotate-half. Hugging Face checkpoints: always rotate-half.
  RopeLayout gguf_rope_layout = RopeLayout::adjacent_pairs;
  RopeLayout hf_rope_layout = RopeLayout::half_split;
  Presence qkv_bias = Presence::never;
  Presence output_bias = Presence::never;
  bool qk_norm = false;  // RMSNorm of each q and k head before RoPE
  SlidingWindow sliding_window = SlidingWindow::none;
  bool refuses_mlp_bias = false;  // config.json "mlp_bias": true is an error
  const MoeNames* moe = nullptr;  // set: every layer's MLP is a Mixture-of-Experts
  // Gemma 3's differences (model/config.h fields of the same names):
  bool post_norms = false;                     // post_attention_norm and post_ffw_norm weights
  bool gelu_tanh_mlp = false;                  // GEGLU with gelu_pytorch_tanh
  bool scaled_embedding = false;               // x = embed * sqrt(D)
  bool hf_norm_plus_one = false;               // Hugging Face norm weights w are applied as (1 + w)
  std::span<const HfLayerName> hf_names = {};  // names differing from the table's
};

std::span<const Architecture> architectures();
// The family with this config.json class / GGUF name, or nullptr.
const Architecture* find_hf_architecture(std::string_view hf_class);
const Architecture* find_gguf_architecture(std::string_view gguf_name);
// "LlamaForCausalLM, MistralForCausalLM, ..." and "llama": for error messages.
std::string hf_architecture_list();
std::string gguf_architecture_list();

// --- config keys ---
// The integer dimensions every family has, in the order they are read: GGUF key
// "<gguf_name>.<gguf>" and config.json key `hf`. Empty gguf: not a GGUF key (the vocabulary is the
// embedding's row count there). Required in both formats.
struct DimensionKey {
  int ModelConfig::*field;
  std::string_view gguf;
  std::string_view hf;
};
std::span<const DimensionKey> dimension_keys();
// Optional keys with a default of the other fields: GGUF suffix and config.json key.
inline constexpr std::string_view kGgufKvHeads = "attention.head_count_kv";
inline constexpr std::string_view kHfKvHeads = "num_key_value_heads";
inline constexpr std::string_view kGgufHeadDim = "attention.key_length";
inline constexpr std::string_view kHfHeadDim = "head_dim";
inline constexpr std::string_view kGgufValueDim = "attention.value_length";
inline constexpr std::string_view kGgufRmsEps = "attention.layer_norm_rms_epsilon";
inline constexpr std::string_view kHfRmsEps = "rms_norm_eps";
inline constexpr std::string_view kGgufRopeTheta = "rope.freq_base";
inline constexpr std::string_view kHfRopeTheta = "rope_theta";
inline constexpr std::string_view kGgufRopeDims = "rope.dimension_count";
// RoPE scaling in GGUF: the type key (only "none" is read; llama.cpp's converter writes Llama 3
// scaling not as a type but as the tensor below), and per-pair frequency factors [head_dim / 2]
// (kernels/rope.h, RopeScaling::Kind::freq_factors). Names as in the gguf package's constants.
inline constexpr std::string_view kGgufRopeScalingType = "rope.scaling.type";
inline constexpr std::string_view kGgufRopeFreqs = "rope_freqs.weight";
// Sliding-window attention: a window below the context caps the context there (full attention
// below the window is the same attention), as for config.json (model/hf_config.h).
inline constexpr std::string_view kGgufSlidingWindow = "attention.sliding_window";
// Gemma 3 (per-layer windows; names as in the gguf package's constants): which layers are
// windowed (an integer N: layer l unless (l + 1) % N == 0; or one bool per layer; absent: 6, as
// llama.cpp assumes for gemma3), the windowed layers' RoPE base (absent: 10000, llama.cpp's),
// RoPE scaling factor (type "linear": frequencies / factor, full-attention layers only), the
// attention scale (absent: llama.cpp's choice, model/loader.cpp), and softcapping (refused).
inline constexpr std::string_view kGgufSlidingWindowPattern = "attention.sliding_window_pattern";
inline constexpr std::string_view kGgufRopeFreqBaseSwa = "rope.freq_base_swa";
inline constexpr std::string_view kGgufRopeScalingFactor = "rope.scaling.factor";
inline constexpr std::string_view kGgufAttentionScale = "attention.scale";
inline constexpr std::string_view kGgufAttnSoftcap = "attn_logit_softcapping";
inline constexpr std::string_view kGgufFinalSoftcap = "final_logit_softcapping";
// Mixture-of-Experts GGUF keys (gguf-py's constants): E, k, Fe (default: feed_forward_length, as
// Mixtral's files have none) and whether the top-k weights are normalized (default: yes).
inline constexpr std::string_view kGgufExpertCount = "expert_count";
inline constexpr std::string_view kGgufExpertUsedCount = "expert_used_count";
inline constexpr std::string_view kGgufExpertFfn = "expert_feed_forward_length";
inline constexpr std::string_view kGgufExpertWeightsNorm = "expert_weights_norm";
// Refused unless absent or as stated: the gating function (1: softmax) and shared experts (0).
inline constexpr std::string_view kGgufExpertGatingFunc = "expert_gating_func";
inline constexpr std::string_view kGgufExpertSharedCount = "expert_shared_count";
// "<gguf_name>.<suffix>"
std::string gguf_key(const Architecture& arch, std::string_view suffix);

// --- weights ---
// Which group a weight belongs to; the config says which groups a model has.
// dense_mlp: the SwiGLU of a model without experts; experts: a MoE model's router and experts.
// post_norms: Gemma 3's RMSNorm weights after attention and after the MLP.
enum class WeightGroup { base, qkv_bias, output_bias, qk_norm, dense_mlp, experts, post_norms };
// What a weight is used for (which forms a loader may keep it in).
enum class WeightKind {
  norm,    // an RMSNorm weight [1, n]: f32
  bias,    // a bias [1, n]: f32
  matmul,  // a GEMM weight [rows, cols]: may stay BF16 or in its quant blocks
};
// A size in terms of the config.
// experts_x_*: E stacked matrices of expert_ffn_dim or dim rows each.
enum class WeightDim {
  one,
  dim,
  q_dim,
  kv_dim,
  ffn_dim,
  head_dim,
  vocab,
  n_experts,
  expert_ffn_dim,
  experts_x_expert_ffn_dim,
  experts_x_dim
};
int64_t weight_dim(WeightDim d, const ModelConfig& c);
bool has_group(WeightGroup g, const ModelConfig& c);

struct LayerWeight {
  Tensor LlamaLayerWeights::*field;
  std::string_view gguf;  // under "blk.<layer>."
  std::string_view hf;    // under "model.layers.<layer>."; experts: the family's MoeNames
  WeightDim rows, cols;   // [rows, cols] (vectors: rows = one)
  WeightKind kind;
  WeightGroup group;
  // Stacked expert weights: the backend tensor [E * n, cols] is E matrices [n, cols] (n = rows /
  // E), GGUF dims {cols, n, E}; in a Hugging Face folder each expert's matrix is its own tensor.
  bool per_expert = false;
};
// Every per-layer weight of the decoder (model/llama.h), in file order.
std::span<const LayerWeight> layer_weights();
std::string gguf_layer_name(int layer, const LayerWeight& w);  // "blk.3.attn_q.weight"
std::string hf_layer_name(int layer, const LayerWeight& w);    // "model.layers.3.self_attn..."
// The name in a Hugging Face checkpoint of family `arch` (its hf_names first).
std::string hf_layer_name(const Architecture& arch, int layer, const LayerWeight& w);
// The Hugging Face name of a MoE weight (group experts) of `arch`: the router, or expert `e`'s
// matrix ("model.layers.3.mlp.experts.7.gate_proj.weight").
std::string hf_expert_name(const Architecture& arch, int layer, const LayerWeight& w, int e);
// The rows of one expert's matrix of a stacked weight (rows / E).
int64_t expert_rows(const LayerWeight& w, const ModelConfig& c);

// The model-level weights.
struct ModelWeight {
  std::string_view gguf;
  std::string_view hf;
};
inline constexpr ModelWeight kTokenEmbedding{"token_embd.weight", "model.embed_tokens.weight"};
inline constexpr ModelWeight kOutputNorm{"output_norm.weight", "model.norm.weight"};
inline constexpr ModelWeight kOutput{"output.weight", "lm_head.weight"};

// Elements of every weight a model of config c has (the embedding, the layers' groups it has,
// the final norm, and the output projection unless tied).
int64_t parameter_count(const ModelConfig& c);

}  // namespace bx
