#include "model/hf_loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"  // quote_name
#include "model/hf_config.h"
#include "model/loader.h"
#include "model/safetensors.h"

namespace bx {
namespace {

constexpr uint64_t kMaxConfigBytes = 16ull << 20;

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string read_config_text(const std::string& path) {
  std::error_code ec;
  check(std::filesystem::is_regular_file(path, ec),
        path + " is missing: expected the config.json of a Hugging Face model folder");
  const auto size = std::filesystem::file_size(path, ec);
  check(!ec, path + ": cannot read: " + ec.message());
  check(size <= kMaxConfigBytes, path + ": " + std::to_string(size) +
                                     " bytes exceeds the limit of " +
                                     std::to_string(kMaxConfigBytes) + " for a config.json");
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  check(static_cast<bool>(in), path + ": cannot read " + std::to_string(size) + " bytes");
  return text;
}

class HfWeightReader {
 public:
  HfWeightReader(const safetensors::Checkpoint& checkpoint, Backend& backend,
                 const LoadOptions& options)
      : ckpt_(checkpoint), backend_(backend), options_(options), total_(checkpoint.total_bytes()) {}

  // The tensor `name` of shape `shape` ([rows, cols] or [n]) as a backend tensor [rows, cols].
  Tensor read(const std::string& name, std::vector<int64_t> shape, bool matmul_weight) {
    const auto entry = ckpt_.find(name);
    check(entry.has_value(), ckpt_.dir() + ": missing tensor " + gguf::quote_name(name));
    const safetensors::TensorInfo& info = *entry->info;
    check(safetensors::to_dtype(info.dtype).has_value(),
          entry->file->path() + ": tensor " + gguf::quote_name(name) + " has dtype " +
              std::string(safetensors::dtype_name(info.dtype)) + ": supported are F32, F16, BF16");
    check(info.shape == shape, entry->file->path() + ": tensor " + gguf::quote_name(name) +
                                   " has shape " + shape_string(info.shape) + ", expected " +
                                   shape_string(shape));
    used_.insert(name);
    scratch_.resize(static_cast<size_t>(info.n_elements));
    safetensors::convert_to_f32(info, entry->file->tensor_data(info), scratch_.data());
    const int64_t rows = shape.size() > 1 ? shape[0] : 1;
    const int64_t cols = shape.back();
    const DType dtype =
        matmul_weight && info.dtype == safetensors::Dtype::BF16 ? DType::bf16 : DType::f32;
    if (matmul_weight) matmul_dtypes_ |= dtype == DType::bf16 ? 2 : 1;
    Tensor t = backend_.upload_matrix(scratch_.data(), rows, cols, dtype);
    done_ += info.n_bytes();
    if (options_.progress) options_.progress(done_, total_);
    return t;
  }

  // lm_head.weight in a tied model: accepted only as a copy of the embedding.
  void accept_tied_copy(const std::string& name, const std::string& original) {
    const auto copy = ckpt_.find(name);
    if (!copy) return;
    const auto orig = ckpt_.find(original);
    const bool same =
        orig && copy->info->dtype == orig->info->dtype && copy->info->shape == orig->info->shape &&
        std::memcmp(copy->file->tensor_data(*copy->info).data(),
                    orig->file->tensor_data(*orig->info).data(), copy->info->n_bytes()) == 0;
    check(same, copy->file->path() + ": tensor " + gguf::quote_name(name) + " differs from " +
                    gguf::quote_name(original) + " but tie_word_embeddings is true: expected no " +
                    name + " or a copy");
    used_.insert(name);
  }

  // Every tensor of the checkpoint was read (or is a buffer the engine recomputes).
  void check_all_used(const std::string& architecture) const {
    static constexpr std::string_view kInvFreq = "rotary_emb.inv_freq";
    for (const auto& [name, entry] : ckpt_.tensors()) {
      if (used_.count(name) != 0) continue;
      if (name.size() >= kInvFreq.size() &&
          name.compare(name.size() - kInvFreq.size(), kInvFreq.size(), kInvFreq) == 0) {
        continue;
      }
      throw Error(entry.file->path() + ": tensor " + gguf::quote_name(name) + " is not used by " +
                  architecture + " with this config.json: expected only the tensors it reads " +
                  "(is a config key such as attention_bias or tie_word_embeddings wrong?)");
    }
  }

  std::string matmul_dtype_name() const {
    switch (matmul_dtypes_) {
      case 1:
        return "F32";
      case 2:
        return "BF16";
      default:
        return "F32+BF16";
    }
  }

 private:
  const safetensors::Checkpoint& ckpt_;
  Backend& backend_;
  const LoadOptions& options_;
  std::vector<float> scratch_;
  std::set<std::string, std::less<>> used_;
  uint64_t total_ = 0;
  uint64_t done_ = 0;
  int matmul_dtypes_ = 0;  // bit 0: some F32, bit 1: some BF16
};

}  // namespace

bool is_hf_folder(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

HfModel load_hf_folder(const std::string& dir, Backend& backend, const LoadOptions& options) {
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  const std::string config_text = read_config_text(config_path);
  HfModel m;
  m.config = parse_hf_config(config_text, config_path);
  const ModelConfig& c = m.config;
  const safetensors::Checkpoint ckpt = safetensors::Checkpoint::open(dir);

  HfWeightReader reader(ckpt, backend, options);
  const int64_t D = c.dim, F = c.ffn_dim, Q = c.q_dim(), KV = c.kv_dim(), V = c.vocab_size;
  const int64_t Dh = c.head_dim;
  LlamaWeights& w = m.weights;
  w.token_embd = reader.read("model.embed_tokens.weight", {V, D}, false);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string a = p + "self_attn.";
    LlamaLayerWeights lw;
    lw.attn_norm = reader.read(p + "input_layernorm.weight", {D}, false);
    lw.wq = reader.read(a + "q_proj.weight", {Q, D}, true);
    lw.wk = reader.read(a + "k_proj.weight", {KV, D}, true);
    lw.wv = reader.read(a + "v_proj.weight", {KV, D}, true);
    lw.wo = reader.read(a + "o_proj.weight", {D, Q}, true);
    if (c.qkv_bias) {
      lw.bq = reader.read(a + "q_proj.bias", {Q}, false);
      lw.bk = reader.read(a + "k_proj.bias", {KV}, false);
      lw.bv = reader.read(a + "v_proj.bias", {KV}, false);
    }
    if (c.output_bias) lw.bo = reader.read(a + "o_proj.bias", {D}, false);
    if (c.qk_norm) {
      lw.q_norm = reader.read(a + "q_norm.weight", {Dh}, false);
      lw.k_norm = reader.read(a + "k_norm.weight", {Dh}, false);
    }
    lw.ffn_norm = reader.read(p + "post_attention_layernorm.weight", {D}, false);
    lw.w_gate = reader.read(p + "mlp.gate_proj.weight", {F, D}, true);
    lw.w_up = reader.read(p + "mlp.up_proj.weight", {F, D}, true);
    lw.w_down = reader.read(p + "mlp.down_proj.weight", {D, F}, true);
    w.layers.push_back(lw);
  }
  w.output_norm = reader.read("model.norm.weight", {D}, false);
  if (c.tied_output) {
    w.output = w.token_embd;
    reader.accept_tied_copy("lm_head.weight", "model.embed_tokens.weight");
  } else {
    w.output = reader.read("lm_head.weight", {V, D}, true);
  }
  reader.check_all_used(c.architecture);
  m.weight_dtype = reader.matmul_dtype_name();
  m.parameter_count = ckpt.parameter_count();
  m.weights_hash = ckpt.content_hash(config_text);
  return m;
}

}  // namespace bx
