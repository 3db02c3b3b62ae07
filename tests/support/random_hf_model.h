// Test support: small random Hugging Face model folders (config.json + safetensors), for the
// accuracy tests against the float64 reference and the loader's bad-input tests.
//
//   bx::test::RandomHfSpec spec;            // architecture, dims, dtype, tying, shards, seed
//   spec.architecture = "Qwen3ForCausalLM";
//   spec.shards = 3;                        // model.safetensors.index.json + 3 shard files
//   bx::test::RandomHfFolder folder("qwen3", spec);   // a temp directory, removed at scope end
//   bx::LoadedModel m = bx::load_model(folder.path(), {});
//
// Weights come from PortableRng (random_model.h), so the bytes depend only on the spec. Matrices
// are uniform with standard deviation 1/sqrt(fan_in); norm weights (q_norm and k_norm included)
// are 1 + U[-0.1, 0.1); biases have standard deviation 0.5, large enough that a dropped bias
// shows. Every tensor is stored in spec.dtype, as Hugging Face checkpoints store norms and biases
// in the model dtype too.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "support/random_model.h"
#include "support/safetensors_writer.h"

namespace bx::test {

struct RandomHfSpec {
  std::string architecture = "LlamaForCausalLM";
  int dim = 64;              // hidden_size
  int n_layers = 2;          // num_hidden_layers
  int n_heads = 4;           // num_attention_heads
  int n_kv_heads = 2;        // num_key_value_heads
  int head_dim = 0;          // 0: dim / n_heads, and no "head_dim" key in config.json
  int ffn_dim = 96;          // intermediate_size
  int vocab_size = 320;      // >= 286, so the GGUF twin of a model can carry random_model's vocab
  int context_length = 256;  // max_position_embeddings
  double rms_eps = 1e-5;
  double rope_theta = 10000.0;
  std::string dtype = "F32";    // every tensor: F32, F16 or BF16
  bool tied_output = false;     // tie_word_embeddings (no lm_head.weight)
  bool attention_bias = false;  // Llama / Qwen3: q, k, v and o biases. Qwen2 has q/k/v always.
  bool llama3_scaling = false;  // rope_scaling {"rope_type": "llama3", ...} with the values below
  double llama3_factor = 8.0;
  double llama3_low_freq_factor = 1.0;
  double llama3_high_freq_factor = 4.0;
  int llama3_original_context = 64;  // small, so the test's positions cross every regime
  // Gemma3ForCausalLM: the window of layers l with (l + 1) % 2 != 0 (0: 4096, past the context).
  int sliding_window = 0;
  int shards = 1;  // 1: model.safetensors; n > 1: model.safetensors.index.json and n shards
  uint32_t seed = 1;
  // Qwen3MoeForCausalLM and MixtralForCausalLM: experts in every layer (Mixtral's expert width
  // is ffn_dim, its intermediate_size; Qwen3-MoE's is expert_ffn_dim, moe_intermediate_size).
  int n_experts = 4;
  int n_experts_used = 2;
  int expert_ffn_dim = 32;
  bool norm_topk_prob = true;  // Qwen3-MoE's key (Mixtral always normalizes)
};

// One tensor as written: its values after rounding to the stored dtype.
struct HfTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

inline int random_hf_head_dim(const RandomHfSpec& s) {
  return s.head_dim > 0 ? s.head_dim : s.dim / s.n_heads;
}
inline bool random_hf_is_moe(const RandomHfSpec& s) {
  return s.architecture == "Qwen3MoeForCausalLM" || s.architecture == "MixtralForCausalLM";
}
inline bool random_hf_qkv_bias(const RandomHfSpec& s) {
  return s.architecture == "Qwen2ForCausalLM" || s.attention_bias;
}

inline nlohmann::json random_hf_config(const RandomHfSpec& s) {
  nlohmann::json c;
  c["architectures"] = {s.architecture};
  c["hidden_size"] = s.dim;
  c["intermediate_size"] = s.ffn_dim;
  c["num_hidden_layers"] = s.n_layers;
  c["num_attention_heads"] = s.n_heads;
  c["num_key_value_heads"] = s.n_kv_heads;
  if (s.head_dim > 0) c["head_dim"] = s.head_dim;
  c["vocab_size"] = s.vocab_size;
  c["max_position_embeddings"] = s.context_length;
  c["rms_norm_eps"] = s.rms_eps;
  c["rope_theta"] = s.rope_theta;
  c["tie_word_embeddings"] = s.tied_output;
  c["hidden_act"] = "silu";
  c["bos_token_id"] = 1;
  c["eos_token_id"] = 2;
  c["torch_dtype"] = s.dtype == "F32" ? "float32" : s.dtype == "F16" ? "float16" : "bfloat16";
  if (s.architecture != "Qwen2ForCausalLM" && s.architecture != "MistralForCausalLM") {
    c["attention_bias"] = s.attention_bias;
  }
  if (s.architecture == "MistralForCausalLM") c["sliding_window"] = nullptr;
  if (s.architecture == "Qwen2ForCausalLM" || s.architecture == "Qwen3ForCausalLM" ||
      s.architecture == "Qwen3MoeForCausalLM") {
    c["use_sliding_window"] = false;
    c["sliding_window"] = 4096;
  }
  if (s.architecture == "Qwen3MoeForCausalLM") {
    c["num_experts"] = s.n_experts;
    c["num_experts_per_tok"] = s.n_experts_used;
    c["moe_intermediate_size"] = s.expert_ffn_dim;
    c["norm_topk_prob"] = s.norm_topk_prob;
    c["decoder_sparse_step"] = 1;
    c["mlp_only_layers"] = nlohmann::json::array();
  }
  if (s.architecture == "MixtralForCausalLM") {
    c.erase("attention_bias");
    c["num_local_experts"] = s.n_experts;
    c["num_experts_per_tok"] = s.n_experts_used;
    c["sliding_window"] = nullptr;
  }
  if (s.architecture == "Gemma3ForCausalLM") {  // transformers' keys
    c.erase("hidden_act");
    c["hidden_activation"] = "gelu_pytorch_tanh";
    c["sliding_window"] = s.sliding_window > 0 ? s.sliding_window : 4096;
    c["sliding_window_pattern"] = 2;
    c["query_pre_attn_scalar"] = random_hf_head_dim(s);
    c["rope_local_base_freq"] = 10000.0;
  }
  if (s.llama3_scaling) {
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", s.llama3_factor},
                         {"low_freq_factor", s.llama3_low_freq_factor},
                         {"high_freq_factor", s.llama3_high_freq_factor},
                         {"original_max_position_embeddings", s.llama3_original_context}};
  } else {
    c["rope_scaling"] = nullptr;
  }
  return c;
}

// The model's tensors in a fixed order, values rounded to spec.dtype.
inline std::vector<HfTensor> random_hf_tensors(const RandomHfSpec& s) {
  const int64_t D = s.dim, F = s.ffn_dim, V = s.vocab_size, Dh = random_hf_head_dim(s);
  const int64_t Q = s.n_heads * Dh, KV = s.n_kv_heads * Dh;
  PortableRng rng(s.seed);
  std::vector<HfTensor> out;
  auto rounded = [&](float v) {
    if (s.dtype == "F16") return f16_to_f32(f32_to_f16(v));
    if (s.dtype == "BF16") return bf16_to_f32(f32_to_bf16(v));
    return v;
  };
  auto add = [&](const std::string& name, std::vector<int64_t> shape, auto&& next) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    HfTensor t{name, std::move(shape), std::vector<float>(static_cast<size_t>(n))};
    for (float& v : t.values) v = rounded(next());
    out.push_back(std::move(t));
  };
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, float stddev) {
    add(name, {rows, cols}, [&] { return rng.symmetric(stddev); });
  };
  auto fan_in = [](int64_t k) { return 1.0f / std::sqrt(static_cast<float>(k)); };
  auto norm = [&](const std::string& name, int64_t n) {
    add(name, {n}, [&] { return 1.0f + 0.1f * rng.uniform_pm1(); });
  };
  auto bias = [&](const std::string& name, int64_t n) {
    add(name, {n}, [&] { return rng.symmetric(0.5f); });
  };
  const bool qkv_bias = random_hf_qkv_bias(s);
  const bool o_bias = s.attention_bias && s.architecture != "Qwen2ForCausalLM";
  const bool gemma = s.architecture == "Gemma3ForCausalLM";  // norms around each sublayer
  const bool qk_norm =
      s.architecture == "Qwen3ForCausalLM" || s.architecture == "Qwen3MoeForCausalLM" || gemma;
  matrix("model.embed_tokens.weight", V, D, 1.0f);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    norm(p + "input_layernorm.weight", D);
    matrix(p + "self_attn.q_proj.weight", Q, D, fan_in(D));
    matrix(p + "self_attn.k_proj.weight", KV, D, fan_in(D));
    matrix(p + "self_attn.v_proj.weight", KV, D, fan_in(D));
    matrix(p + "self_attn.o_proj.weight", D, Q, fan_in(Q));
    if (qkv_bias) {
      bias(p + "self_attn.q_proj.bias", Q);
      bias(p + "self_attn.k_proj.bias", KV);
      bias(p + "self_attn.v_proj.bias", KV);
    }
    if (o_bias) bias(p + "self_attn.o_proj.bias", D);
    if (qk_norm) {
      norm(p + "self_attn.q_norm.weight", Dh);
      norm(p + "self_attn.k_norm.weight", Dh);
    }
    norm(p + "post_attention_layernorm.weight", D);
    if (gemma) {
      norm(p + "pre_feedforward_layernorm.weight", D);
      norm(p + "post_feedforward_layernorm.weight", D);
    }
    if (s.architecture == "Qwen3MoeForCausalLM") {
      const int64_t Fe = s.expert_ffn_dim;
      // A router of 3x the fan-in spread, so that tokens take different experts.
      matrix(p + "mlp.gate.weight", s.n_experts, D, 3.0f * fan_in(D));
      for (int e = 0; e < s.n_experts; ++e) {
        const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
        matrix(x + "gate_proj.weight", Fe, D, fan_in(D));
        matrix(x + "up_proj.weight", Fe, D, fan_in(D));
        matrix(x + "down_proj.weight", D, Fe, fan_in(Fe));
      }
    } else if (s.architecture == "MixtralForCausalLM") {
      matrix(p + "block_sparse_moe.gate.weight", s.n_experts, D, 3.0f * fan_in(D));
      for (int e = 0; e < s.n_experts; ++e) {
        const std::string x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
        matrix(x + "w1.weight", F, D, fan_in(D));
        matrix(x + "w2.weight", D, F, fan_in(F));
        matrix(x + "w3.weight", F, D, fan_in(D));
      }
    } else {
      matrix(p + "mlp.gate_proj.weight", F, D, fan_in(D));
      matrix(p + "mlp.up_proj.weight", F, D, fan_in(D));
      matrix(p + "mlp.down_proj.weight", D, F, fan_in(F));
    }
  }
  norm("model.norm.weight", D);
  if (!s.tied_output) matrix("lm_head.weight", V, D, fan_in(D));
  return out;
}

// The shard file names of an n-way split: model-00001-of-0000n.safetensors, ...
inline std::string shard_name(int index, int count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", index + 1, count);
  return buf;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f) throw Error("cannot write " + path);
}

// Writes config.json and the safetensors of `tensors` into `dir` (which must exist): one
// model.safetensors, or `shards` files in contiguous runs of tensors plus the index.
inline void write_hf_folder(const std::string& dir, const nlohmann::json& config,
                            const std::vector<HfTensor>& tensors, int shards,
                            const std::string& dtype) {
  write_text(dir + "/config.json", config.dump(2));
  if (shards <= 1) {
    SafetensorsWriter w;
    w.add_metadata("format", "pt");
    for (const HfTensor& t : tensors) w.add_tensor(t.name, t.shape, t.values, dtype);
    w.write(dir + "/model.safetensors");
    return;
  }
  nlohmann::json index;
  index["metadata"] = {{"total_size", 0}};
  index["weight_map"] = nlohmann::json::object();
  const size_t n = tensors.size();
  for (int k = 0; k < shards; ++k) {
    SafetensorsWriter w;
    w.add_metadata("format", "pt");
    const size_t first = n * static_cast<size_t>(k) / static_cast<size_t>(shards);
    const size_t last = n * static_cast<size_t>(k + 1) / static_cast<size_t>(shards);
    for (size_t i = first; i < last; ++i) {
      w.add_tensor(tensors[i].name, tensors[i].shape, tensors[i].values, dtype);
      index["weight_map"][tensors[i].name] = shard_name(k, shards);
    }
    w.write(dir + "/" + shard_name(k, shards));
  }
  write_text(dir + "/model.safetensors.index.json", index.dump(2));
}

// A random model in a temporary directory, removed (with everything in it) at scope end.
class RandomHfFolder {
 public:
  RandomHfFolder(const std::string& name, const RandomHfSpec& spec)
      : path_((std::filesystem::temp_directory_path() /
               ("bitexact-hf-" + name + "-" + std::to_string(::getpid())))
                  .string()) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
    write_hf_folder(path_, random_hf_config(spec), random_hf_tensors(spec), spec.shards,
                    spec.dtype);
  }
  ~RandomHfFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  RandomHfFolder(const RandomHfFolder&) = delete;
  RandomHfFolder& operator=(const RandomHfFolder&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace bx::test
