// The static shape of a decoder model, read and validated at load time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/rope.h"

namespace bx {

struct ModelConfig {
  std::string architecture;  // "llama" (GGUF), or the Hugging Face class ("Qwen3ForCausalLM")
  int vocab_size = 0;        // V
  int dim = 0;               // D, the residual stream width
  int n_layers = 0;          // L
  int n_heads = 0;           // H query heads
  int n_kv_heads = 0;        // Hkv key/value heads (GQA: H % Hkv == 0)
  int head_dim = 0;          // Dh; H * Dh is the width of q, Hkv * Dh of k and v
  int ffn_dim = 0;           // F, the SwiGLU hidden width
  int context_length = 0;    // the longest sequence the model was trained for
  float rms_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeLayout rope_layout = RopeLayout::adjacent_pairs;
  RopeScaling rope_scaling;  // none, or Llama 3's frequency adjustment
  bool tied_output = false;  // output projection is the token embedding
  bool qkv_bias = false;     // q, k and v projections add a bias (Qwen2; attention_bias)
  bool output_bias = false;  // the attention output projection adds a bias (attention_bias)
  bool qk_norm = false;      // RMSNorm of each q and k head (weights [Dh]) before RoPE (Qwen3)
  // Gemma 3 (model/llama.h shows where each applies; the defaults are the Llama decoder's):
  float embed_scale = 1.0f;      // x = embed[tokens] * embed_scale
  float attention_scale = 0.0f;  // q.k multiplier; 0: 1 / sqrt(head_dim)
  bool post_norms = false;       // RMSNorm of each sublayer's output before its residual add
  bool gelu_tanh_mlp = false;    // the MLP gate is gelu_tanh, not silu (GEGLU, not SwiGLU)
  // Sliding-window attention per layer: layer l with windowed[l] != 0 attends to the last
  // sliding_window positions only (kernels/attention.h) and turns by the local RoPE table.
  // Empty: every layer attends to its whole context.
  int sliding_window = 0;
  std::vector<uint8_t> windowed;  // [n_layers] or empty
  double rope_local_theta = 0.0;  // the windowed layers' RoPE base (no scaling); 0: none
  // Mixture-of-Experts MLP in every layer (Qwen3-MoE, Mixtral; kernels/moe.h) instead of the
  // dense SwiGLU of width ffn_dim: 0 experts means a dense model.
  int n_experts = 0;                   // E, router rows
  int n_experts_used = 0;              // k, experts per token (top-k)
  int expert_ffn_dim = 0;              // Fe, one expert's SwiGLU width
  bool norm_topk_prob = false;         // the top-k weights are divided by their sum
  int32_t bos_token_id = -1;           // -1: the model file names none
  std::vector<int32_t> eos_token_ids;  // empty: the model file names none

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  bool is_moe() const { return n_experts > 0; }
  bool is_windowed(int layer) const { return !windowed.empty() && windowed[layer] != 0; }
  float attention_scale_or_default() const;
  // Checks every field against the others; throws bx::Error naming the first bad one.
  void validate() const;
};

}  // namespace bx
