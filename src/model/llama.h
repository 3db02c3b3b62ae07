// The Llama-family decoder: RMSNorm, RoPE, GQA attention over a paged KV cache, SwiGLU MLP,
// tied or separate output projection. Written once against the Backend interface.
//
//   x = embed[tokens] (* embed_scale: Gemma 3)                  [T, D]
//   for each layer:
//     h = rmsnorm(x) ; q = h Wq^T [T, H*Dh] ; k = h Wk^T, v = h Wv^T [T, Hkv*Dh]
//     q += bq, k += bk, v += bv                   (config.qkv_bias: Qwen2, attention_bias)
//     q[t,h] = rmsnorm(q[t,h]) * q_norm, k[t,g] likewise  (config.qk_norm: Qwen3, per head [Dh])
//     rope(q), rope(k) ; cache[k, v] at (sequence, position)
//       (a windowed layer, config.is_windowed: the local RoPE table, and attention over the last
//        config.sliding_window positions only)
//     x += attention(q, cache) Wo^T (+ bo if config.output_bias)
//       with config.post_norms (Gemma 3): x += rmsnorm(attention(q, cache) Wo^T) * post_attn_norm
//     h = rmsnorm(x) ; x += (silu(h Wg^T) * (h Wu^T)) Wd^T
//       config.gelu_tanh_mlp: gelu_tanh instead of silu; config.post_norms: x += rmsnorm(...) *
//       post_ffn_norm; with experts (config.n_experts): x += moe(h)   (kernels/moe.h, MoeOp)
//   logits = rmsnorm(x[logit_rows]) Wout^T                      [R, V]
// The attention scale is config.attention_scale_or_default() (1 / sqrt(Dh) unless set).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/decode_graphs.h"
#include "model/tensor_observer.h"

namespace bx {

struct LlamaLayerWeights {
  Tensor attn_norm;   // [1, D]
  Tensor wq;          // [H*Dh, D]
  Tensor wk;          // [Hkv*Dh, D]
  Tensor wv;          // [Hkv*Dh, D]
  Tensor wo;          // [D, H*Dh]
  Tensor bq, bk, bv;  // [1, H*Dh], [1, Hkv*Dh], [1, Hkv*Dh] if config.qkv_bias, else empty
  Tensor bo;          // [1, D] if config.output_bias, else empty
  Tensor q_norm;      // [1, Dh] if config.qk_norm, else empty
  Tensor k_norm;      // [1, Dh] if config.qk_norm, else empty
  Tensor post_attn_norm;  // [1, D] if config.post_norms, else empty
  Tensor ffn_norm;        // [1, D]
  Tensor post_ffn_norm;   // [1, D] if config.post_norms, else empty
  Tensor w_gate;      // [F, D]    (a dense model: config.n_experts == 0)
  Tensor w_up;        // [F, D]
  Tensor w_down;      // [D, F]
  // Mixture-of-Experts (config.n_experts = E > 0, expert width Fe; kernels/moe.h), else empty:
  Tensor router;       // [E, D]
  Tensor expert_gate;  // [E*Fe, D]: expert e is rows [e*Fe, (e+1)*Fe)
  Tensor expert_up;    // [E*Fe, D]
  Tensor expert_down;  // [E*D, Fe]: expert e is rows [e*D, (e+1)*D)
};

struct LlamaWeights {
  Tensor token_embd;   // [V, D] (f32: rows are copied into the residual stream)
  Tensor output_norm;  // [1, D]
  Tensor output;       // [V, D] (the token embedding when tied)
  std::vector<LlamaLayerWeights> layers;
};

// What one forward call returns for its R logit rows (host arrays, any pointer may be null).
struct LogitOutputs {
  float* logits = nullptr;           // [R, V]: row r written when full is empty or full[r] != 0
  float* logprobs = nullptr;         // [R, V]: log_softmax of the logits, rows as for logits
  std::span<const uint8_t> full;     // [R] or empty (every row)
  int32_t* greedy_ids = nullptr;     // [R]: argmax of each row's logits (bx::greedy_rows)
  float* greedy_logprobs = nullptr;  // [R]: the logprob of that id; set with greedy_ids
  // With these ([R] each), greedy_ids and greedy_logprobs are the Sampler's choice for each row
  // under sampling[r] at token_indices[r] (bx::sample_rows) instead of the argmax.
  std::span<const SamplingParams> sampling;
  std::span<const uint64_t> token_indices;
};

class LlamaModel {
 public:
  // Allocates every work buffer for up to max_batch_tokens tokens and max_logit_rows logit rows.
  // Throws bx::Error if a weight the config asks for (bias, q/k norm) is missing.
  LlamaModel(const ModelConfig& config, LlamaWeights weights, Backend& backend,
             int max_batch_tokens, int max_logit_rows);

  const ModelConfig& config() const { return config_; }
  // The weights, for updates in place between forward calls (model/weight_update.h).
  LlamaWeights& weights() { return weights_; }
  Backend& backend() { return backend_; }
  int max_batch_tokens() const { return max_batch_tokens_; }
  int max_logit_rows() const { return max_logit_rows_; }

  // One forward pass over a ragged batch. Writes, for each of the R logit rows (less fillers),
  // the logits and their log-softmax into host arrays of [R, V] floats (either may be null).
  // Throws bx::Error if T > max_batch_tokens, R > max_logit_rows, or a token id, position,
  // logit row or filler count is out of range.
  void forward(const ForwardBatch& batch, float* logits, float* logprobs);
  // The same pass, returning per row only what `out` asks for: full rows where a row needs them
  // (sampling, top logprobs, scores), the greedy choice computed on the device for the others.
  // The values are the same bits whichever way they travel. Throws bx::Error as forward does,
  // or if out.full is neither empty nor [R].
  void forward(const ForwardBatch& batch, const LogitOutputs& out);

  // Decode steps as recordings (model/decode_graphs.h). A batch whose tokens are exactly a
  // bucket's decode step (padded by the caller, ForwardBatch::fillers, or not) runs as the
  // bucket's recording where the backend records (BackendCapabilities::graph_capture).
  static constexpr int kMaxReplayRows = DecodeGraphs::kMaxReplayRows;
  static int replay_bucket(int rows) { return DecodeGraphs::bucket(rows); }
  // The bucket a decode step of `rows` tokens is padded to, or 0 where it runs directly (no
  // recording backend, recording off, no scratch block, or a bucket beyond the batch limits).
  int decode_bucket(int rows) const;
  void set_replay(bool enabled) { graphs_.set_enabled(enabled); }
  // Forward calls whose ops ran as a recording (made then, or replayed).
  int64_t replayed_steps() const { return graphs_.replayed_steps(); }
  // The KV block that filler rows write (LoadedModel::reserve_kv_blocks sets it); -1: none.
  void set_scratch_kv_block(int32_t block) { scratch_block_[0] = block; }
  // The block table of filler rows: the scratch block alone.
  const int32_t* scratch_table() const { return scratch_block_; }

  // Every forward call shows its intermediates to `observer` (model/tensor_observer.h; nullptr:
  // none, the default). Observed calls run their ops directly, never as a recording.
  void set_observer(std::shared_ptr<TensorObserver> observer) { observer_ = std::move(observer); }
  const std::shared_ptr<TensorObserver>& observer() const { return observer_; }

 private:
  ModelConfig config_;
  LlamaWeights weights_;
  Backend& backend_;
  int max_batch_tokens_;
  int max_logit_rows_;
  // Work buffers, [max_batch_tokens, width] unless stated; named as in the math above.
  Tensor x_, h_, q_, k_, v_, attn_;
  Tensor act_;          // [max_batch_tokens, F] silu(gate) * up, in the backend's gemm_input_dtype
  Tensor mlp_scratch_;  // [max_batch_tokens, 2F] f32, GemmOp::scratch of the swiglu; with
                        // experts, MoeOp::scratch for max_batch_tokens
  MoeLayers* moe_ = nullptr;  // the backend's MoE op, for a model with experts
  Tensor final_rows_;         // [max_logit_rows, D]
  Tensor logits_;             // [max_logit_rows, V]
  Tensor logprobs_;           // [max_logit_rows, V]
  DecodeGraphs graphs_;
  int32_t scratch_block_[1] = {-1};  // a block table of one block, for filler rows
  std::shared_ptr<TensorObserver> observer_;

  void run_ops(int64_t T, int64_t R);
  void observe(std::string_view name, int layer, const Tensor& t) {
    if (observer_ != nullptr) observer_->observe(name, layer, t);
  }
};

}  // namespace bx
