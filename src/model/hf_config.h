// A Hugging Face config.json read into a ModelConfig.
//
// Supported architectures ("architectures": [one of them]; each an entry of model/architecture.h,
// which holds what differs between them and the key names below):
//   LlamaForCausalLM    attention_bias (q, k, v and o biases) honoured; mlp_bias must be false
//   MistralForCausalLM  sliding_window: see below
//   Qwen2ForCausalLM    q, k and v biases always, no o bias; use_sliding_window: see below
//   Qwen3ForCausalLM    per-head RMSNorm of q and k (q_norm, k_norm) before RoPE; attention_bias
//   Gemma3ForCausalLM   (text) scaled embedding, (1 + w) norms, post-norms, GELU-tanh MLP, q/k
//   norm,
//                       per-layer sliding windows (layer_types, or sliding_window_pattern, default
//                       6; sliding_window default 4096) with their own RoPE base
//                       (rope_parameters.sliding_attention or rope_local_base_freq, default 1e4;
//                       rope_theta default 1e6 and linear rope_scaling for the full layers),
//                       query_pre_attn_scalar (default 256), hidden_activation
//                       "gelu_pytorch_tanh", tie_word_embeddings default true; softcapping and
//                       use_bidirectional_attention are refused
// All use RoPE in the Hugging Face layout (rotate-half, RopeLayout::half_split), SiLU, RMSNorm.
//
// Keys. Required: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// vocab_size, max_position_embeddings. Optional, with transformers' defaults (the same for the
// four classes): num_key_value_heads (= num_attention_heads), head_dim (= hidden_size /
// num_attention_heads), rms_norm_eps (1e-6), rope_theta (10000; or rope_parameters.rope_theta),
// tie_word_embeddings (false), hidden_act ("silu", the only one accepted), attention_bias (false),
// bos_token_id / eos_token_id (an id, a list of ids for eos, or null). rope_scaling (or
// rope_parameters) may be null, of type "default", or of type "llama3" with factor,
// low_freq_factor, high_freq_factor and original_max_position_embeddings; any other type
// (linear, dynamic, yarn, ...), partial_rotary_factor != 1, mlp_bias true or a
// quantization_config is rejected, so nothing is loaded that would compute something else.
//
// Sliding-window attention (Mistral's sliding_window; Qwen's sliding_window when
// use_sliding_window is true): while every position is below the window, sliding-window attention
// is full attention, so a window W < max_position_embeddings is accepted by making the context
// W: positions >= W are refused rather than computed differently. A null window, or one >= the
// context, changes nothing. A Mistral config without the key has transformers' default, 4096.
//
// Every failure is one bx::Error "<name>: ..." naming the key and what was expected; an unknown
// architecture names itself and the supported ones.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace bx {

// The architecture names above, in that order (architectures()' hf_class).
const std::vector<std::string>& supported_hf_architectures();

// Parses and validates `json` (the text of config.json); errors start with name_for_errors.
ModelConfig parse_hf_config(std::string_view json, const std::string& name_for_errors);

}  // namespace bx
