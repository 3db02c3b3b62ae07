#include "model/random_model.h"

#include <xxhash.h>

#include <charconv>
#include <cmath>

#include "core/counter_hash.h"
#include "core/error.h"

namespace bx {
namespace {

constexpr const char* kPrefix = "random:";
constexpr const char* kGeneratorVersion = "gen1";

class WeightGenerator {
 public:
  WeightGenerator(uint64_t seed, Backend& backend, DType matmul_dtype)
      : seed_(seed), backend_(backend), matmul_dtype_(matmul_dtype) {}

  // W [rows, cols] with standard deviation 1 / sqrt(cols) (cols = fan_in).
  Tensor matrix(const std::string& name, int64_t rows, int64_t cols) {
    const float scale = std::sqrt(3.0f / static_cast<float>(cols));
    Tensor t = backend_.generate_matrix(rows, cols, matmul_dtype_, stream(name), 0.0f, scale);
    matmul_bytes_ += rows * cols * (t.dtype == DType::bf16 ? 2 : 4);
    return t;
  }
  // The token embedding [V, D], standard deviation 1.
  Tensor embedding(const std::string& name, int64_t rows, int64_t cols) {
    return backend_.generate_matrix(rows, cols, DType::f32, stream(name), 0.0f, std::sqrt(3.0f));
  }
  // A norm weight [1, n]: 1 + U[-0.1, 0.1).
  Tensor norm(const std::string& name, int64_t n) {
    return backend_.generate_matrix(1, n, DType::f32, stream(name), 1.0f, 0.1f);
  }
  int64_t matmul_bytes() const { return matmul_bytes_; }

 private:
  uint64_t stream(const std::string& name) const {
    return hash_stream(seed_, XXH64(name.data(), name.size(), 0));
  }

  uint64_t seed_;
  Backend& backend_;
  DType matmul_dtype_;
  int64_t matmul_bytes_ = 0;
};

}  // namespace

bool is_random_model_spec(const std::string& path) {
  return path.rfind(kPrefix, 0) == 0;
}

RandomModelSpec parse_random_model_spec(const std::string& path) {
  const std::string usage =
      "expected random:NAME[:SEED] with NAME qwen3-8b or qwen3-tiny and SEED an integer from 0 "
      "to 18446744073709551615";
  check(is_random_model_spec(path), "model spec '" + path + "': " + usage);
  const std::string rest = path.substr(std::string(kPrefix).size());
  const size_t colon = rest.find(':');
  RandomModelSpec spec;
  spec.name = rest.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string seed = rest.substr(colon + 1);
    const char* end = seed.data() + seed.size();
    const auto [ptr, ec] = std::from_chars(seed.data(), end, spec.seed);
    check(!seed.empty() && ec == std::errc() && ptr == end,
          "model spec '" + path + "': the seed '" + seed + "' is not an integer; " + usage);
  }
  random_model_config(spec.name);  // names the bad model name
  return spec;
}

ModelConfig random_model_config(const std::string& name) {
  ModelConfig c;
  c.architecture = "Qwen3ForCausalLM";
  c.rms_eps = 1e-6f;
  c.rope_theta = 1e6;
  c.rope_layout = RopeLayout::half_split;
  c.qk_norm = true;
  c.tied_output = false;
  if (name == "qwen3-8b") {
    c.vocab_size = 151936;
    c.dim = 4096;
    c.n_layers = 36;
    c.n_heads = 32;
    c.n_kv_heads = 8;
    c.head_dim = 128;
    c.ffn_dim = 12288;
    c.context_length = 40960;
  } else if (name == "qwen3-tiny") {
    c.vocab_size = 1024;
    c.dim = 128;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.ffn_dim = 384;
    c.context_length = 4096;
  } else {
    throw Error("random model '" + name + "' is unknown: expected qwen3-8b or qwen3-tiny");
  }
  c.validate();
  return c;
}

std::string random_model_weights_hash(const RandomModelSpec& spec) {
  return std::string(kPrefix) + spec.name + ":seed=" + std::to_string(spec.seed) + ":" +
         kGeneratorVersion;
}

LlamaWeights generate_random_weights(const ModelConfig& c, uint64_t seed, Backend& backend,
                                     DType matmul_dtype, int64_t* matmul_bytes) {
  WeightGenerator gen(seed, backend, matmul_dtype);
  const int64_t D = c.dim, F = c.ffn_dim, Q = c.q_dim(), KV = c.kv_dim(), V = c.vocab_size;
  LlamaWeights w;
  w.token_embd = gen.embedding("model.embed_tokens.weight", V, D);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LlamaLayerWeights lw;
    lw.attn_norm = gen.norm(p + "input_layernorm.weight", D);
    lw.wq = gen.matrix(p + "self_attn.q_proj.weight", Q, D);
    lw.wk = gen.matrix(p + "self_attn.k_proj.weight", KV, D);
    lw.wv = gen.matrix(p + "self_attn.v_proj.weight", KV, D);
    lw.wo = gen.matrix(p + "self_attn.o_proj.weight", D, Q);
    lw.q_norm = gen.norm(p + "self_attn.q_norm.weight", c.head_dim);
    lw.k_norm = gen.norm(p + "self_attn.k_norm.weight", c.head_dim);
    lw.ffn_norm = gen.norm(p + "post_attention_layernorm.weight", D);
    lw.w_gate = gen.matrix(p + "mlp.gate_proj.weight", F, D);
    lw.w_up = gen.matrix(p + "mlp.up_proj.weight", F, D);
    lw.w_down = gen.matrix(p + "mlp.down_proj.weight", D, F);
    w.layers.push_back(lw);
  }
  w.output_norm = gen.norm("model.norm.weight", D);
  w.output = gen.matrix("lm_head.weight", V, D);
  *matmul_bytes += gen.matmul_bytes();
  return w;
}

}  // namespace bx
