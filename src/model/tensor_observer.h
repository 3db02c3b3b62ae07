// Watching a forward pass tensor by tensor: LlamaModel calls observe(name, layer, tensor) after
// each step of model/llama.h's math, so two backends, or bitexact and another implementation, can
// be compared intermediate by intermediate (model/tensor_dump.h writes them to files).
//
// Names, in the order of one forward call over T tokens and R logit rows (layer -1: not a layer's):
//   embed          [T, D]       layer -1   x = embed[tokens]
//   attn_norm      [T, D]                  h = rmsnorm(x) * attn_norm
//   q, k, v        [T, H*Dh], [T, Hkv*Dh]  h Wq^T (+ bq), likewise k and v
//   q_rope, k_rope [T, H*Dh], [T, Hkv*Dh]  after the per-head q/k norm (qk_norm models) and RoPE
//   attn           [T, H*Dh]               softmax(q k^T * scale) v over the cache
//   attn_residual  [T, D]                  x += attn Wo^T (+ bo)
//   ffn_norm       [T, D]                  h = rmsnorm(x) * ffn_norm
//   ffn_act        [T, F]                  silu(h Wg^T) * (h Wu^T) (the fused product; a backend
//                                          whose GEMM input is bf16 holds it in bf16)
//   ffn_residual   [T, D]                  x += ffn_act Wd^T (a Mixture-of-Experts layer,
//                                          config.n_experts > 0: x += moe(h), no ffn_act)
//   final_norm     [R, D]       layer -1   rmsnorm(x[logit_rows]) * output_norm
//   logits         [R, V]       layer -1   final_norm Wout^T
//   logprobs       [R, V]       layer -1   log_softmax(logits)
//
// With no observer set the model makes no copy and no call: one null test per step.
#pragma once

#include <string_view>

#include "backend/backend.h"

namespace bx {

class TensorObserver {
 public:
  virtual ~TensorObserver() = default;
  // A forward call starts: its batch (as given, before any padding) and the backend whose
  // tensors the observe calls pass (read them with backend.copy_to_host).
  virtual void begin_forward(const ForwardBatch& batch, Backend& backend) = 0;
  // `tensor` holds the step `name` of `layer` (-1: model-level); valid only during this call.
  virtual void observe(std::string_view name, int layer, const Tensor& tensor) = 0;
  // The forward call's ops are done.
  virtual void end_forward() = 0;
};

}  // namespace bx
