// Models with generated weights, named by a spec instead of a file: `random:NAME[:SEED]`.
//
//   random:qwen3-8b[:seed]    Qwen3-8B's shape: D 4096, 36 layers, 32 query / 8 KV heads of 128,
//                             SwiGLU 12288, vocabulary 151936, q/k norm, untied output, RoPE
//                             theta 1e6 (half-split), context 40960. 8.2 B parameters: meant for
//                             a GPU backend, whose generate_matrix fills them in device memory.
//   random:qwen3-tiny[:seed]  the same architecture in small dims (D 128, 2 layers, 4 / 2 heads
//                             of 64, F 384, V 1024, context 4096): runs on the CPU too.
//   random:qwen3-30b-a3b[:seed]  Qwen3-30B-A3B's shape: D 2048, 48 layers, 32 query / 4 KV heads
//                             of 128, a Mixture-of-Experts MLP in every layer (128 experts, 8
//                             per token, expert SwiGLU 768, normalized top-k weights), vocabulary
//                             151936, q/k norm, untied output, RoPE theta 1e6, context 40960.
//                             30.5 B parameters: for a GPU backend.
//   random:NAME-q4k[:seed]    NAME's shape with every matmul weight as random Q4_K blocks (Q8_0
//                             where K is not whole super-blocks): what a Q4_K_M download holds,
//                             generated instead of carried (bench/cuda/GEMM_NOTES.md's decode).
//   random:qwen3-moe-tiny[:seed] the same MoE architecture in small dims (D 128, 2 layers, 4 / 2
//                             heads of 64, 16 experts, 4 per token, expert SwiGLU 64, V 1024,
//                             context 4096): for the CPU and CI.
//   random:gemma3-tiny[:seed] Gemma 3 (text) in small dims (D 128, 4 layers, 4 / 2 heads of 64,
//                             GELU-tanh F 384, V 1024, tied embedding scaled by sqrt(D), post-
//                             norms, q/k norm): layers 0, 1 and 3 attend over a sliding window of
//                             80 positions with RoPE base 1e4, layer 2 over the whole context with
//                             base 1e6 and linear scaling 8; context 4096. For the CPU and CI.
//
// Weights (Backend::generate_matrix, core/counter_hash.h): tensor `name` gets the stream
// hash_stream(seed, XXH64(name)) and element i of it the value offset + scale * u_i, u_i uniform
// on [-1, 1). Matrices have standard deviation 1 / sqrt(fan_in) (scale = sqrt(3 / fan_in)), so
// activations stay O(1) through the layers and the logits are spread, not degenerate; the token
// embedding has standard deviation 1 (tied to the output, as in gemma3-tiny: 1 / sqrt(D)); norm
// weights are 1 + U[-0.1, 0.1). The values depend only on (spec, seed): the same on every run and
// device; a backend stores them as it stores loaded weights (bf16 on the CUDA backend), so backends
// differ only as they do for a real checkpoint.
//
// No tokenizer: such a model is driven by token ids. It names no EOS or BOS token, so generation
// runs to max_tokens. The weights hash (in the system fingerprint) is the spec itself with its
// seed and the generator's version, e.g. "random:qwen3-8b:seed=0:gen1".
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "model/config.h"
#include "model/llama.h"

namespace bx {

struct RandomModelSpec {
  std::string name;       // "qwen3-8b", "qwen3-tiny", ..., "gemma3-tiny" as written, with any "-q4k"
  std::string base_name;  // without "-q4k": the shape (random_model_config)
  // F32: generated values (stored as the backend stores weights). Q4_K ("-q4k"): every matmul
  // weight random Q4_K blocks (Q8_0 where its K is not whole super-blocks of 256).
  DType matmul_dtype = DType::f32;
  uint64_t seed = 0;
};

// True when `path` starts with "random:".
bool is_random_model_spec(const std::string& path);

// Parses "random:NAME[:SEED]"; throws bx::Error naming the bad part and what is accepted.
RandomModelSpec parse_random_model_spec(const std::string& path);

// The shape of the named model (validated).
ModelConfig random_model_config(const std::string& name);

// "random:NAME:seed=SEED:gen1": the identity of the weights.
std::string random_model_weights_hash(const RandomModelSpec& spec);

// Generates every weight into `backend` (matmul weights as BF16 or F32 per `matmul_dtype`).
// Adds the bytes of the matmul weights as held to *matmul_bytes.
LlamaWeights generate_random_weights(const ModelConfig& config, uint64_t seed, Backend& backend,
                                     DType matmul_dtype, int64_t* matmul_bytes);

}  // namespace bx
