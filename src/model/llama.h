// The Llama-family decoder: RMSNorm, RoPE, GQA attention over a paged KV cache, SwiGLU MLP,
// tied or separate output projection. Written once against the Backend interface.
//
//   x = embed[tokens]                                           [T, D]
//   for each layer:
//     h = rmsnorm(x) ; q = h Wq^T [T, H*Dh] ; k = h Wk^T, v = h Wv^T [T, Hkv*Dh]
//     q += bq, k += bk, v += bv                   (config.qkv_bias: Qwen2, attention_bias)
//     q[t,h] = rmsnorm(q[t,h]) * q_norm, k[t,g] likewise  (config.qk_norm: Qwen3, per head [Dh])
//     rope(q), rope(k) ; cache[k, v] at (sequence, position)
//     x += attention(q, cache) Wo^T (+ bo if config.output_bias)
//     h = rmsnorm(x) ; x += (silu(h Wg^T) * (h Wu^T)) Wd^T
//   logits = rmsnorm(x[logit_rows]) Wout^T                      [R, V]
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace bx {

struct LlamaLayerWeights {
  Tensor attn_norm;  // [1, D]
  Tensor wq;         // [H*Dh, D]
  Tensor wk;         // [Hkv*Dh, D]
  Tensor wv;         // [Hkv*Dh, D]
  Tensor wo;         // [D, H*Dh]
  Tensor bq, bk, bv;  // [1, H*Dh], [1, Hkv*Dh], [1, Hkv*Dh] if config.qkv_bias, else empty
  Tensor bo;          // [1, D] if config.output_bias, else empty
  Tensor q_norm;      // [1, Dh] if config.qk_norm, else empty
  Tensor k_norm;      // [1, Dh] if config.qk_norm, else empty
  Tensor ffn_norm;   // [1, D]
  Tensor w_gate;     // [F, D]
  Tensor w_up;       // [F, D]
  Tensor w_down;     // [D, F]
};

struct LlamaWeights {
  Tensor token_embd;   // [V, D] (f32: rows are copied into the residual stream)
  Tensor output_norm;  // [1, D]
  Tensor output;       // [V, D] (the token embedding when tied)
  std::vector<LlamaLayerWeights> layers;
};

class LlamaModel {
 public:
  // Allocates every work buffer for up to max_batch_tokens tokens and max_logit_rows logit rows.
  // Throws bx::Error if a weight the config asks for (bias, q/k norm) is missing.
  LlamaModel(const ModelConfig& config, LlamaWeights weights, Backend& backend,
             int max_batch_tokens, int max_logit_rows);

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return backend_; }
  int max_batch_tokens() const { return max_batch_tokens_; }
  int max_logit_rows() const { return max_logit_rows_; }

  // One forward pass over a ragged batch. Writes, for each of the R logit rows, the logits and
  // their log-softmax into host arrays of [R, V] floats (either pointer may be null).
  // Throws bx::Error if T > max_batch_tokens, R > max_logit_rows, or a token id, position or
  // logit row is out of range.
  void forward(const ForwardBatch& batch, float* logits, float* logprobs);

 private:
  ModelConfig config_;
  LlamaWeights weights_;
  Backend& backend_;
  int max_batch_tokens_;
  int max_logit_rows_;
  // Work buffers, [max_batch_tokens, width] unless stated; named as in the math above.
  Tensor x_, h_, q_, k_, v_, attn_, gate_, up_;
  Tensor final_rows_;  // [max_logit_rows, D]
  Tensor logits_;      // [max_logit_rows, V]
  Tensor logprobs_;    // [max_logit_rows, V]
};

}  // namespace bx
