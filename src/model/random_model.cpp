#include "model/random_model.h"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/counter_hash.h"
#include "core/error.h"
#include "kernels/quant.h"
#include "model/architecture.h"

namespace bx {
namespace {

constexpr const char* kPrefix = "random:";
constexpr const char* kGeneratorVersion = "gen1";
constexpr const char* kModelNames =
    "qwen3-8b, qwen3-tiny, qwen3-30b-a3b, qwen3-moe-tiny or gemma3-tiny (each with an optional "
    "-q4k)";
constexpr const char* kQ4kSuffix = "-q4k";

// f16 bits of 2^e, e in [-24, 15] (normal from -14 on, subnormal below).
uint16_t f16_power_of_two(int e) {
  e = std::clamp(e, -24, 15);
  return static_cast<uint16_t>(e >= -14 ? (e + 15) << 10 : 1 << (e + 24));
}

// rows x cols / E random blocks of `format` (Q4_K or Q8_0) whose weights have a standard
// deviation near `stddev`: quant bytes from the counter hash of (stream, block), the f16 scales
// powers of two. Q4_K: d = 2^round(log2(stddev / 250)) (the spread of (sc q - 8 mn) with sc, mn
// uniform 6-bit and q uniform 4-bit is about 250), dmin = 8 d. Q8_0: d = 2^round(log2(stddev /
// 74)) (a uniform int8 has standard deviation 74).
std::vector<uint8_t> random_blocks(DType format, int64_t rows, int64_t cols, uint64_t stream,
                                   float stddev) {
  const quant::BlockFormat& f = quant::block_format(format);
  const int64_t blocks = rows * (cols / f.block_elements);
  std::vector<uint8_t> bytes(static_cast<size_t>(blocks * f.block_bytes));
  const bool k_quant = format == DType::q4_k;
  const int e = static_cast<int>(std::lround(std::log2(stddev / (k_quant ? 250.0f : 74.0f))));
  const uint16_t d = f16_power_of_two(e), dmin = f16_power_of_two(e + 3);
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* block = bytes.data() + b * f.block_bytes;
    const uint64_t key = hash_stream(stream, static_cast<uint64_t>(b));
    for (int64_t i = 0; i < f.block_bytes; i += 8) {
      const uint64_t word = mix64(key + static_cast<uint64_t>(i));
      std::memcpy(block + i, &word, static_cast<size_t>(std::min<int64_t>(8, f.block_bytes - i)));
    }
    std::memcpy(block, &d, 2);
    if (k_quant) std::memcpy(block + 2, &dmin, 2);
  }
  return bytes;
}

class WeightGenerator {
 public:
  WeightGenerator(uint64_t seed, Backend& backend, DType matmul_dtype)
      : seed_(seed), backend_(backend), matmul_dtype_(matmul_dtype) {}

  // W [rows, cols] with standard deviation 1 / sqrt(cols) (cols = fan_in). With a block
  // matmul dtype (Q4_K): Q4_K blocks where cols is whole super-blocks, else Q8_0 (as llama.cpp's
  // quantize falls back), held as blocks where the backend can, else dequantized at load.
  Tensor matrix(const std::string& name, int64_t rows, int64_t cols) {
    if (quant::is_block_format(matmul_dtype_)) return block_matrix(name, rows, cols);
    const float scale = std::sqrt(3.0f / static_cast<float>(cols));
    Tensor t = backend_.generate_matrix(rows, cols, matmul_dtype_, stream(name), 0.0f, scale);
    matmul_bytes_ += rows * cols * (t.dtype == DType::bf16 ? 2 : 4);
    return t;
  }
  // The token embedding [V, D], standard deviation 1; tied (it is the output projection too),
  // 1 / sqrt(D), a matrix's, so that the logits are spread and not one-hot (Gemma scales the
  // embedding by sqrt(D) on the way in).
  Tensor embedding(const std::string& name, int64_t rows, int64_t cols, bool tied) {
    const float scale = tied ? std::sqrt(3.0f / static_cast<float>(cols)) : std::sqrt(3.0f);
    return backend_.generate_matrix(rows, cols, DType::f32, stream(name), 0.0f, scale);
  }
  // A norm weight [1, n]: 1 + U[-0.1, 0.1).
  Tensor norm(const std::string& name, int64_t n) {
    return backend_.generate_matrix(1, n, DType::f32, stream(name), 1.0f, 0.1f);
  }
  // A bias [1, n]: U[-0.5, 0.5).
  Tensor bias(const std::string& name, int64_t n) {
    return backend_.generate_matrix(1, n, DType::f32, stream(name), 0.0f, 0.5f);
  }
  int64_t matmul_bytes() const { return matmul_bytes_; }

 private:
  Tensor block_matrix(const std::string& name, int64_t rows, int64_t cols) {
    const DType format = cols % 256 == 0 ? DType::q4_k : DType::q8_0;
    const std::vector<uint8_t> blocks =
        random_blocks(format, rows, cols, stream(name), 1.0f / std::sqrt(static_cast<float>(cols)));
    if (backend_.can_hold_blocks(format)) {
      matmul_bytes_ += static_cast<int64_t>(blocks.size());
      return backend_.upload_blocks(blocks.data(), rows, cols, format);
    }
    std::vector<float> values(static_cast<size_t>(rows * cols));
    const int64_t row_bytes = quant::bytes_for(format, cols);
    for (int64_t r = 0; r < rows; ++r) {
      quant::dequantize_row(format, blocks.data() + r * row_bytes, cols, values.data() + r * cols);
    }
    Tensor t = backend_.upload_matrix(values.data(), rows, cols, DType::f32);
    matmul_bytes_ += rows * cols * (t.dtype == DType::bf16 ? 2 : 4);
    return t;
  }

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
  const std::string usage = std::string("expected random:NAME[:SEED] with NAME ") + kModelNames +
                            " and SEED an integer from 0 to 18446744073709551615";
  check(is_random_model_spec(path), "model spec '" + path + "': " + usage);
  const std::string rest = path.substr(std::string(kPrefix).size());
  const size_t colon = rest.find(':');
  RandomModelSpec spec;
  spec.name = rest.substr(0, colon);
  const size_t suffix = spec.name.size() >= 4 ? spec.name.size() - 4 : std::string::npos;
  if (suffix != std::string::npos && spec.name.compare(suffix, 4, kQ4kSuffix) == 0) {
    spec.base_name = spec.name.substr(0, suffix);
    spec.matmul_dtype = DType::q4_k;
  } else {
    spec.base_name = spec.name;
  }
  if (colon != std::string::npos) {
    const std::string seed = rest.substr(colon + 1);
    const char* end = seed.data() + seed.size();
    const auto [ptr, ec] = std::from_chars(seed.data(), end, spec.seed);
    check(!seed.empty() && ec == std::errc() && ptr == end,
          "model spec '" + path + "': the seed '" + seed + "' is not an integer; " + usage);
  }
  const ModelConfig config = random_model_config(spec.base_name);  // names a bad model name
  check(spec.matmul_dtype == DType::f32 || config.n_experts == 0,
        "model spec '" + path + "': -q4k is for the dense models (qwen3-8b, qwen3-tiny)");
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
  } else if (name == "qwen3-30b-a3b" || name == "qwen3-moe-tiny") {
    c.architecture = "Qwen3MoeForCausalLM";
    c.norm_topk_prob = true;
    if (name == "qwen3-30b-a3b") {
      c.vocab_size = 151936;
      c.dim = 2048;
      c.n_layers = 48;
      c.n_heads = 32;
      c.n_kv_heads = 4;
      c.head_dim = 128;
      c.ffn_dim = 6144;  // config.json's intermediate_size: no layer of this model is dense
      c.n_experts = 128;
      c.n_experts_used = 8;
      c.expert_ffn_dim = 768;
      c.context_length = 40960;
    } else {
      c.vocab_size = 1024;
      c.dim = 128;
      c.n_layers = 2;
      c.n_heads = 4;
      c.n_kv_heads = 2;
      c.head_dim = 64;
      c.ffn_dim = 384;
      c.n_experts = 16;
      c.n_experts_used = 4;
      c.expert_ffn_dim = 64;
      c.context_length = 4096;
    }
  } else if (name == "gemma3-tiny") {
    c.architecture = "Gemma3ForCausalLM";
    c.vocab_size = 1024;
    c.dim = 128;
    c.n_layers = 4;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.ffn_dim = 384;
    c.context_length = 4096;
    c.tied_output = true;
    c.embed_scale = std::sqrt(128.0f);
    c.attention_scale = 1.0f / std::sqrt(64.0f);  // query_pre_attn_scalar = head_dim
    c.post_norms = true;
    c.gelu_tanh_mlp = true;
    // Layers 0, 1 and 3 slide over 80 positions (a window that starts mid-chunk), layer 2 sees
    // everything; global RoPE 1e6 with linear scaling 8, local 1e4.
    c.sliding_window = 80;
    c.windowed = {1, 1, 0, 1};
    c.rope_local_theta = 10000.0;
    c.rope_scaling.kind = RopeScaling::Kind::linear;
    c.rope_scaling.factor = 8.0;
  } else {
    throw Error("random model '" + name + "' is unknown: expected " + kModelNames);
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
  const Architecture* arch = find_hf_architecture(c.architecture);
  check(arch != nullptr, "random model: unknown architecture " + c.architecture);
  const int64_t D = c.dim, V = c.vocab_size;
  LlamaWeights w;
  w.token_embd = gen.embedding(std::string(kTokenEmbedding.hf), V, D, c.tied_output);
  for (int l = 0; l < c.n_layers; ++l) {
    LlamaLayerWeights lw;
    for (const LayerWeight& spec : layer_weights()) {
      if (!has_group(spec.group, c)) continue;
      // A MoE weight is one generated tensor (the experts stacked), named by its GGUF name.
      const std::string name =
          spec.group == WeightGroup::experts
              ? "model.layers." + std::to_string(l) + "." + std::string(spec.gguf)
              : hf_layer_name(*arch, l, spec);
      const int64_t rows = weight_dim(spec.rows, c), cols = weight_dim(spec.cols, c);
      switch (spec.kind) {
        case WeightKind::matmul:
          lw.*spec.field = gen.matrix(name, rows, cols);
          break;
        case WeightKind::norm:
          lw.*spec.field = gen.norm(name, cols);
          break;
        case WeightKind::bias:
          lw.*spec.field = gen.bias(name, cols);
          break;
      }
    }
    w.layers.push_back(lw);
  }
  w.output_norm = gen.norm(std::string(kOutputNorm.hf), D);
  w.output = c.tied_output ? w.token_embd : gen.matrix(std::string(kOutput.hf), V, D);
  *matmul_bytes += gen.matmul_bytes();
  return w;
}

}  // namespace bx
