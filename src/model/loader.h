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
  // Makes the backend the weights load into; empty means a CpuBackend with `threads` threads.
  // (The CUDA backend lives in a library of its own, so the caller passes it in here.)
  std::function<std::unique_ptr<Backend>()> make_backend;
  // Called with (done, total) bytes while weights load; may be empty.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct LoadedModel {
  std::string path;
  ModelConfig config;
  std::string weights_hash;    // gguf::File::content_hash()
  std::string weight_dtype;    // "F32" or "BF16": how matmul weights are held in memory
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

// Opens a GGUF file and loads it into a new backend (options.make_backend, else the CPU). Throws bx::Error naming the problem.
LoadedModel load_model(const std::string& path, const LoadOptions& options);

}  // namespace bx
