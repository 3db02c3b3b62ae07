// Loading a Hugging Face model folder (config.json + safetensors) into a backend: the config
// (model/hf_config.h), every weight checked against the shapes the config implies, and the
// weights' identity. Used by load_model (model/loader.h) when its path is a directory.
//
// Tensor names and shapes ([rows, cols], W[out][in] as nn.Linear stores it):
//   model.embed_tokens.weight                     [V, D]
//   model.layers.{l}.input_layernorm.weight       [D]
//   model.layers.{l}.self_attn.q_proj.weight      [H*Dh, D]    (.bias [H*Dh] if qkv_bias)
//   model.layers.{l}.self_attn.k_proj.weight      [Hkv*Dh, D]  (.bias [Hkv*Dh] if qkv_bias)
//   model.layers.{l}.self_attn.v_proj.weight      [Hkv*Dh, D]  (.bias [Hkv*Dh] if qkv_bias)
//   model.layers.{l}.self_attn.o_proj.weight      [D, H*Dh]    (.bias [D] if output_bias)
//   model.layers.{l}.self_attn.{q,k}_norm.weight  [Dh]         (if qk_norm: Qwen3)
//   model.layers.{l}.post_attention_layernorm.weight [D]
//   model.layers.{l}.mlp.{gate,up}_proj.weight    [F, D]
//   model.layers.{l}.mlp.down_proj.weight         [D, F]
//   model.norm.weight                             [D]
//   lm_head.weight                                [V, D]       (absent, or equal to the
//                                                               embedding, if tied)
// Any other tensor is an error naming it (a weight the model would silently ignore), except
// *.rotary_emb.inv_freq buffers that old checkpoints carry (the RoPE table is computed instead).
// Weights are widened to f32 exactly, except matmul weights stored as BF16, which stay BF16 (as in
// the GGUF path).
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "model/config.h"
#include "model/llama.h"

namespace bx {

struct LoadOptions;

struct HfModel {
  ModelConfig config;
  LlamaWeights weights;
  std::string weights_hash;  // safetensors::Checkpoint::content_hash(config.json text)
  std::string weight_dtype;  // "F32", "BF16" or "F32+BF16"
  int64_t parameter_count = 0;
};

// True when `path` is a directory (then load_hf_folder is the loader to use).
bool is_hf_folder(const std::string& path);

HfModel load_hf_folder(const std::string& dir, Backend& backend, const LoadOptions& options);

}  // namespace bx
