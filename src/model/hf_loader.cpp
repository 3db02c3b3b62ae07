#include "model/hf_loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "model/architecture.h"
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
  // offset is added to every value in f32 first (Gemma's norm weights w, applied as 1 + w).
  Tensor read(const std::string& name, std::vector<int64_t> shape, bool matmul_weight,
              float offset = 0.0f) {
    return read_stacked({name}, std::move(shape), matmul_weight, offset);
  }

  // The matrices `names`, each of shape [rows, cols], one after the other as one backend tensor
  // [names.size() * rows, cols] (a layer's experts). BF16 where every one of them is BF16.
  Tensor read_stacked(const std::vector<std::string>& names, std::vector<int64_t> shape,
                      bool matmul_weight, float offset = 0.0f) {
    const int64_t rows = shape.size() > 1 ? shape[0] : 1;
    const int64_t cols = shape.back();
    const auto each = static_cast<size_t>(rows * cols);
    scratch_.resize(each * names.size());
    bool all_bf16 = true;
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& name = names[i];
      const auto entry = ckpt_.find(name);
      check(entry.has_value(), ckpt_.dir() + ": missing tensor " + gguf::quote_name(name));
      const safetensors::TensorInfo& info = *entry->info;
      check(safetensors::to_dtype(info.dtype).has_value(),
            entry->file->path() + ": tensor " + gguf::quote_name(name) + " has dtype " +
                std::string(safetensors::dtype_name(info.dtype)) +
                ": supported are F32, F16, BF16");
      check(info.shape == shape, entry->file->path() + ": tensor " + gguf::quote_name(name) +
                                     " has shape " + shape_string(info.shape) + ", expected " +
                                     shape_string(shape));
      used_.insert(name);
      safetensors::convert_to_f32(info, entry->file->tensor_data(info), scratch_.data() + i * each);
      all_bf16 = all_bf16 && info.dtype == safetensors::Dtype::BF16;
      done_ += info.n_bytes();
    }
    if (offset != 0.0f) {
      for (float& v : scratch_) v = v + offset;
    }
    const DType dtype = matmul_weight && all_bf16 ? DType::bf16 : DType::f32;
    if (matmul_weight) matmul_dtypes_ |= dtype == DType::bf16 ? 2 : 1;
    Tensor t = backend_.upload_matrix(scratch_.data(), rows * static_cast<int64_t>(names.size()),
                                      cols, dtype);
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
  check_backend_runs(c, backend, dir);
  const Architecture* arch = find_hf_architecture(c.architecture);
  const safetensors::Checkpoint ckpt = safetensors::Checkpoint::open(dir);

  HfWeightReader reader(ckpt, backend, options);
  const int64_t D = c.dim, V = c.vocab_size;
  LlamaWeights& w = m.weights;
  w.token_embd = reader.read(std::string(kTokenEmbedding.hf), {V, D}, false);
  if (arch->scaled_embedding) {
    // Gemma3TextScaledWordEmbedding: the float32 sqrt(D) rounded to the embedding's dtype.
    const auto embd = ckpt.find(std::string(kTokenEmbedding.hf));
    if (embd->info->dtype == safetensors::Dtype::BF16) {
      m.config.embed_scale = bf16_to_f32(f32_to_bf16(c.embed_scale));
    } else if (embd->info->dtype == safetensors::Dtype::F16) {
      m.config.embed_scale = static_cast<float>(static_cast<_Float16>(c.embed_scale));
    }
  }
  const float norm_offset = arch->hf_norm_plus_one ? 1.0f : 0.0f;
  for (int l = 0; l < c.n_layers; ++l) {
    LlamaLayerWeights lw;
    for (const LayerWeight& spec : layer_weights()) {
      if (!has_group(spec.group, c)) continue;
      const int64_t rows = expert_rows(spec, c), cols = weight_dim(spec.cols, c);
      std::vector<int64_t> shape{cols};  // [n] for a vector, [rows, cols] for a matrix
      if (spec.rows != WeightDim::one) shape.insert(shape.begin(), rows);
      const bool matmul = spec.kind == WeightKind::matmul;
      if (spec.group != WeightGroup::experts) {
        const float offset = spec.kind == WeightKind::norm ? norm_offset : 0.0f;
        lw.*spec.field = reader.read(hf_layer_name(*arch, l, spec), shape, matmul, offset);
        continue;
      }
      // A MoE layer: the router, and each expert's matrix stacked in expert order.
      std::vector<std::string> names;
      for (int e = 0; e < (spec.per_expert ? c.n_experts : 1); ++e) {
        names.push_back(hf_expert_name(*arch, l, spec, e));
      }
      lw.*spec.field = reader.read_stacked(names, shape, matmul);
    }
    w.layers.push_back(lw);
  }
  w.output_norm = reader.read(std::string(kOutputNorm.hf), {D}, false, norm_offset);
  if (c.tied_output) {
    w.output = w.token_embd;
    reader.accept_tied_copy(std::string(kOutput.hf), std::string(kTokenEmbedding.hf));
  } else {
    w.output = reader.read(std::string(kOutput.hf), {V, D}, true);
  }
  reader.check_all_used(c.architecture);
  m.weight_dtype = reader.matmul_dtype_name();
  m.parameter_count = ckpt.parameter_count();
  m.weights_hash = ckpt.content_hash(config_text);
  return m;
}

}  // namespace bx
