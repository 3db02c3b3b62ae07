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
  int threads = 1;             // CPU worker threads
  int max_batch_tokens = 512;  // the most tokens one forward call takes
  int max_logit_rows = 64;     // the most sequences whose logits one call returns
  int kv_block_size = 16;      // tokens per KV cache block
  // split_k_by_m: the CPU backend's fast mode (R8) and the invariance tests' negative controls.
  ReductionOrder reduction_order = ReductionOrder::canonical;
  // Block-quantized weights (Q8_0, Q4_1, Q4_K, ...: kernels/quant.h; matmul weights and the token
  // embedding) stay in their GGUF blocks
  // in memory by default, when the backend can hold them (the CPU backend can): 4-8x fewer bytes
  // than f32, and decode reads every weight once per token. The kernels dequantize on the fly to
  // exactly the f32 values the load-time dequantization gives (kernels/quant.h), so this choice
  // changes speed and memory only, never an output bit, and is not part of the fingerprint.
  // true dequantizes them to f32 at load instead (the old behaviour; for comparisons).
  bool dequantize_weights = false;
  // The CpuBackend's arithmetic for block-quantized weights (kernels/matmul.h): dequantized_f32
  // is kernel version cpu-k1 (the default), int8_activations cpu-k2 (faster, other bits; in the
  // fingerprint). Ignored when make_backend is set.
  QuantDot cpu_quant_dot = QuantDot::dequantized_f32;
  // Makes the backend the weights load into; empty means a CpuBackend with `threads` threads.
  // (The CUDA backend lives in a library of its own, so the caller passes it in here.)
  std::function<std::unique_ptr<Backend>()> make_backend;
  // Called with (done, total) bytes while weights load; may be empty.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct LoadedModel {
  std::string path;
  ModelConfig config;
  // GGUF: gguf::File::content_hash(). Hugging Face folder: safetensors::Checkpoint::content_hash
  // over config.json's text and every tensor (the same however the weights are sharded).
  std::string weights_hash;
  // The arithmetic of the matmul weights, part of the fingerprint: "BF16" when the file holds
  // BF16, otherwise "F32" (F16 widened and block formats dequantized exactly to f32 values,
  // whether that happens at load or inside the kernels).
  std::string weight_dtype;
  std::string weight_storage;       // how they are held in memory: "F32", "Q4_1+Q8_0", ...
  int64_t matmul_weight_bytes = 0;  // bytes of all matmul weights as held (one decode step's reads)
  int64_t parameter_count = 0;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  // The GGUF file's tokenizer, or a Hugging Face folder's tokenizer.json (with
  // tokenizer_config.json). nullptr for a folder without tokenizer.json: callers that need text
  // must check and fail with a clear message (cli::require_tokenizer does). The ids that end
  // generation are config.eos_token_ids (config.json's, plus the tokenizer's EOS).
  std::unique_ptr<Tokenizer> tokenizer;
  ReductionOrder reduction_order = ReductionOrder::canonical;
  KvCacheShape kv_shape;  // n_blocks = 0 until reserve_kv_blocks
  // 0 as loaded; each update of the weights in place (model/weight_update.h) adds one. Part of the
  // system fingerprint when not 0, and stamped on every request (RequestStream::weights_version).
  uint64_t weights_version = 0;
  // Loaded from a GGUF file: update_weights takes its GGUF tensor names too
  // (model/weight_update.h).
  bool from_gguf = false;

  // Makes the KV pool hold at least n_blocks blocks (reallocating it, contents lost, if it is
  // smaller), plus one scratch block (id n_blocks) that no sequence owns, for the filler rows of
  // padded decode steps (LlamaModel::kMaxReplayRows). Set-up only: never inside a forward pass.
  void reserve_kv_blocks(int64_t n_blocks);

  // Identity of everything that decides the output bits (INVARIANCE.md, Terms): weights hash,
  // backend, dtypes, mode and kernel version (and weights_version after an update), hashed to
  // "bx-" + 16 hex digits.
  std::string system_fingerprint() const;
};

// Loads a model into a new CPU backend: `path` is a GGUF file, or a directory holding a Hugging
// Face model (config.json and model.safetensors or sharded safetensors with
// model.safetensors.index.json; see model/hf_loader.h), or a `random:NAME[:SEED]` spec whose
// weights are generated in the backend (model/random_model.h). With BITEXACT_DUMP=<folder> set,
// the model writes every forward call's intermediates there (model/tensor_dump.h). Throws
// bx::Error naming the problem.
LoadedModel load_model(const std::string& path, const LoadOptions& options);

// Gives `m` the tokenizer at `path` (a folder with tokenizer.json, or a GGUF file's tokenizer)
// in place of its own: for a random: model, which has none, or a folder without tokenizer.json.
// Its EOS joins config.eos_token_ids, and its BOS becomes the model's when the model names none.
// Throws bx::Error when it has more tokens than the model's
// embedding has rows (tokens the model cannot embed), leaving `m` unchanged.
void attach_tokenizer(LoadedModel& m, const std::string& path);

// Throws bx::Error, before any weight is read, when `backend` cannot run a model of config c
// (Mixture-of-Experts layers without its MoE op, a head_dim its attention does not take),
// naming the model's value and what the backend takes; `path` names the model.
void check_backend_runs(const ModelConfig& c, Backend& backend, const std::string& path);

}  // namespace bx
