// Loading a model file into a backend: config, weights, tokenizer and the weights' identity.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "model/config.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace bx {

struct LoadOptions {
  int threads = 1;                 // CPU worker threads
  int max_batch_tokens = 512;      // the most tokens one forward call takes
  int max_logit_rows = 64;         // the most sequences whose logits one call returns
  int kv_block_size = 16;          // tokens per KV cache block
  ReductionOrder reduction_order = ReductionOrder::canonical;  // negative-control tests only
  // Q8_0 / Q4_0 / Q4_1 weights (matmul weights and the token embedding) stay in their GGUF blocks
  // in memory by default, when the backend can hold them (the CPU backend can): 4-8x fewer bytes
  // than f32, and decode reads every weight once per token. The kernels dequantize on the fly to
  // exactly the f32 values the load-time dequantization gives (kernels/quant.h), so this choice
  // changes speed and memory only, never an output bit, and is not part of the fingerprint.
  // true dequantizes them to f32 at load instead (the old behaviour; for comparisons).
  bool dequantize_weights = false;
  // Called with (done, total) bytes while weights load; may be empty.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct LoadedModel {
  std::string path;
  ModelConfig config;
  std::string weights_hash;    // gguf::File::content_hash()
  // The arithmetic of the matmul weights, part of the fingerprint: "BF16" when the file holds
  // BF16, otherwise "F32" (F16 widened and Q8_0 / Q4_0 / Q4_1 dequantized exactly to f32 values,
  // whether that happens at load or inside the kernels).
  std::string weight_dtype;
  std::string weight_storage;     // how they are held in memory: "F32", "Q4_1+Q8_0", ...
  int64_t matmul_weight_bytes = 0;  // bytes of all matmul weights as held (one decode step's reads)
  int64_t parameter_count = 0;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  ReductionOrder reduction_order = ReductionOrder::canonical;
  KvCacheShape kv_shape;           // n_blocks = 0 until reserve_kv_blocks

  // Makes the KV pool hold at least n_blocks blocks (reallocating it, contents lost, if it is
  // smaller). Set-up only: never called inside a forward pass.
  void reserve_kv_blocks(int64_t n_blocks);

  // Identity of everything that decides the output bits (INVARIANCE.md, Terms): weights hash,
  // backend, dtypes, mode and kernel version, hashed to "bx-" + 16 hex digits.
  std::string system_fingerprint() const;
};

// Opens a GGUF file and loads it into a new CPU backend. Throws bx::Error naming the problem.
// A GGUF whose tokenizer.ggml.model is "gpt2" loads without a tokenizer (tokenizer == nullptr)
// until the byte-level BPE tokenizer lands; everything but text in / text out works.
LoadedModel load_model(const std::string& path, const LoadOptions& options);

}  // namespace bx
