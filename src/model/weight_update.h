// Updating a loaded model's weights in place, between forward calls (the RL inner loop): every
// value checked first, then written where the model reads it. Afterwards the model computes
// exactly what a fresh load of a file holding the new weights computes (INVARIANCE.md promise 8).
//
// Names. Every model takes Hugging Face names with nn.Linear shapes [out, in] (the list in
// model/hf_loader.h: model.embed_tokens.weight, model.layers.{l}.self_attn.q_proj.weight, ...,
// model.norm.weight, lm_head.weight). A model loaded from GGUF also takes its GGUF names
// (token_embd.weight, blk.{l}.attn_q.weight, ..., output_norm.weight, output.weight) with shape
// [rows, cols] (the GGUF dims reversed, as numpy reads them); in a llama GGUF (RoPE on adjacent
// pairs), under a Hugging Face name its q_proj and k_proj rows are permuted from rotate-half order
// into the adjacent-pairs order, as llama.cpp's convert_hf_to_gguf.py does, so a Hugging Face
// checkpoint updates a GGUF model exactly as converting that checkpoint to GGUF would (qwen2 and
// qwen3 GGUFs keep the Hugging Face order: no permutation). Vectors (norms,
// biases) have shape [n]. In a tied model the output projection is the embedding:
// lm_head.weight / output.weight is accepted only beside the embedding with the same values.
//
// Dtypes. A source is F32 or BF16, in host memory or (CUDA) the backend's device memory. Each
// value is held as a fresh load of a file holding that tensor in that dtype holds it
// (Backend::held_dtype): matmul weights in the dtype given (the CPU keeps BF16 as BF16 and F32 as
// F32; CUDA holds every matrix as BF16), norm weights and biases as F32, the token embedding as
// F32 on the CPU. So on the CPU a quantized (Q4_1, ...) GGUF weight updated from F32 is held as
// F32 from then on, as in a GGUF or safetensors file that stores it as F32; the fingerprint's
// weight dtype follows ("F32", "BF16" or "F32+BF16" over the matmul weights).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/loader.h"

namespace bx {

// One named tensor to write: dense, row-major.
struct WeightSource {
  std::string name;
  const void* data = nullptr;
  DType dtype = DType::f32;    // F32 or BF16
  std::vector<int64_t> shape;  // [rows, cols] or [n]
  bool on_device = false;      // in the backend's device memory, else host memory
};

// The checked update: each source matched to the weight it replaces.
struct WeightUpdatePlan {
  struct Item {
    size_t source = 0;         // index into sources
    Tensor* target = nullptr;  // in the model's LlamaWeights
    bool matmul = false;       // a matmul weight (held in the source's dtype), else F32
    int permute_heads = 0;     // > 0: HF q/k rows into adjacent-pairs order over this many heads
  };
  std::vector<WeightSource> sources;
  std::vector<Item> items;
};

// Checks every source against the model: a known name (listed once), the expected shape, F32 or
// BF16, on the model's device where it says so. Throws bx::Error naming the first bad tensor and
// what was expected; changes nothing. Reads only the model's shapes (safe while it runs).
WeightUpdatePlan plan_weight_update(const LoadedModel& model, std::vector<WeightSource> sources);

// Writes the planned values (between forward calls: run it through Engine::run_exclusive while an
// engine runs), adds one to model.weights_version and recomputes the weight dtype that the
// fingerprint names. New allocations (a weight whose held dtype changes) are made before anything
// is written, so running out of memory changes nothing.
void apply_weight_update(LoadedModel& model, const WeightUpdatePlan& plan);

// The sources of a safetensors file, or of a Hugging Face folder's model.safetensors or shards
// (F32 and BF16 tensors as they are in the mapping; F16 is refused), for plan_weight_update. The
// files stay mapped while the returned object lives.
struct SafetensorsWeights {
  std::vector<WeightSource> sources;
  std::shared_ptr<void> mapping;  // keeps the files mapped
};
SafetensorsWeights read_safetensors_weights(const std::string& path);

}  // namespace bx
