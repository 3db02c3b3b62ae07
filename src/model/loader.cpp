#include "model/loader.h"

#include <xxhash.h>

#include <cstdio>
#include <vector>

#include "backend/cpu_backend.h"
#include "core/error.h"
#include "model/gguf.h"
#include "tokenizer/spm_tokenizer.h"

namespace bx {
namespace {

// Version of the kernels' arithmetic: bump it whenever a kernel's reduction order or any
// operation that decides output bits changes. It is part of the system fingerprint.
constexpr const char* kKernelVersion = "cpu-k1";

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

int get_positive_int(const gguf::File& file, const std::string& key) {
  const int64_t value = file.get_int(key);
  check(value > 0 && value <= (int64_t{1} << 30),
        file.path() + ": " + key + " is " + std::to_string(value) +
            ", expected a positive integer");
  return static_cast<int>(value);
}

ModelConfig read_llama_config(const gguf::File& file) {
  const std::string arch = file.get_string("general.architecture");
  check(arch == "llama", file.path() + ": unsupported architecture '" + arch +
                             "': expected llama");
  ModelConfig c;
  c.architecture = arch;
  c.dim = get_positive_int(file, "llama.embedding_length");
  c.n_layers = get_positive_int(file, "llama.block_count");
  c.ffn_dim = get_positive_int(file, "llama.feed_forward_length");
  c.n_heads = get_positive_int(file, "llama.attention.head_count");
  c.n_kv_heads = file.has("llama.attention.head_count_kv")
                     ? get_positive_int(file, "llama.attention.head_count_kv")
                     : c.n_heads;
  c.context_length = get_positive_int(file, "llama.context_length");
  c.rms_eps = static_cast<float>(file.get_float("llama.attention.layer_norm_rms_epsilon"));
  if (file.has("llama.rope.freq_base")) c.rope_theta = file.get_float("llama.rope.freq_base");
  check(c.dim % c.n_heads == 0 || file.has("llama.attention.key_length"),
        file.path() + ": embedding_length " + std::to_string(c.dim) +
            " is not a multiple of head_count " + std::to_string(c.n_heads));
  c.head_dim = file.has("llama.attention.key_length")
                   ? get_positive_int(file, "llama.attention.key_length")
                   : c.dim / c.n_heads;
  if (file.has("llama.attention.value_length")) {
    check(get_positive_int(file, "llama.attention.value_length") == c.head_dim,
          file.path() + ": attention.value_length differs from key_length; expected them equal");
  }
  if (file.has("llama.rope.dimension_count")) {
    const int rot = get_positive_int(file, "llama.rope.dimension_count");
    check(rot == c.head_dim, file.path() + ": rope.dimension_count " + std::to_string(rot) +
                                 " differs from the head dimension " +
                                 std::to_string(c.head_dim) +
                                 "; partial rotary embeddings are not supported");
  }
  const gguf::TensorInfo* embd = file.find_tensor("token_embd.weight");
  check(embd != nullptr, file.path() + ": missing tensor 'token_embd.weight'");
  check(embd->dims.size() == 2 && embd->dims[0] == c.dim,
        file.path() + ": tensor 'token_embd.weight' has shape " + shape_string(embd->dims) +
            ", expected [" + std::to_string(c.dim) + ", vocab]");
  c.vocab_size = static_cast<int>(embd->dims[1]);
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  c.rope_layout = RopeLayout::adjacent_pairs;
  c.validate();
  return c;
}

class WeightReader {
 public:
  WeightReader(const gguf::File& file, Backend& backend, const LoadOptions& options)
      : file_(file), backend_(backend), options_(options) {
    for (const gguf::TensorInfo& t : file.tensors()) total_bytes_ += t.n_bytes;
  }

  // The tensor `name`, which must have GGUF dims `dims` ({cols, rows} for a matrix), as a
  // backend tensor [rows, cols]. Matmul weights stay BF16 when the file holds BF16; every other
  // type is widened or dequantized to F32.
  Tensor read(const std::string& name, std::vector<int64_t> dims, bool matmul_weight) {
    const gguf::TensorInfo* info = file_.find_tensor(name);
    check(info != nullptr, file_.path() + ": missing tensor '" + name + "'");
    check(gguf::to_dtype(info->type).has_value(),
          file_.path() + ": tensor '" + name + "' has unsupported type " +
              gguf::ggml_type_name(info->type) + ": supported are F32, F16, BF16, Q8_0, Q4_0, Q4_1");
    check(info->dims == dims, file_.path() + ": tensor '" + name + "' has shape " +
                                  shape_string(info->dims) + ", expected " + shape_string(dims));
    scratch_.resize(static_cast<size_t>(info->n_elements));
    gguf::dequantize_to_f32(*info, file_.tensor_data(*info), scratch_.data());
    const int64_t cols = dims[0];
    const int64_t rows = dims.size() > 1 ? dims[1] : 1;
    const DType dtype =
        matmul_weight && info->type == gguf::GgmlType::BF16 ? DType::bf16 : DType::f32;
    if (matmul_weight) matmul_dtypes_ |= dtype == DType::bf16 ? 2 : 1;
    Tensor t = backend_.upload_matrix(scratch_.data(), rows, cols, dtype);
    done_bytes_ += info->n_bytes;
    if (options_.progress) options_.progress(done_bytes_, total_bytes_);
    return t;
  }

  std::string matmul_dtype_name() const {
    switch (matmul_dtypes_) {
      case 1: return "F32";
      case 2: return "BF16";
      default: return "F32+BF16";
    }
  }

 private:
  const gguf::File& file_;
  Backend& backend_;
  const LoadOptions& options_;
  std::vector<float> scratch_;
  uint64_t total_bytes_ = 0;
  uint64_t done_bytes_ = 0;
  int matmul_dtypes_ = 0;  // bit 0: some F32, bit 1: some BF16
};

}  // namespace

std::string LoadedModel::system_fingerprint() const {
  const std::string identity = weights_hash + "|" + backend->name() + "|w=" + weight_dtype +
                               "|act=F32|kv=F32|mode=" +
                               (reduction_order == ReductionOrder::canonical ? "invariant"
                                                                             : "split-k-control") +
                               "|" + kKernelVersion;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(identity.data(), identity.size())));
  return std::string("bx-") + hex;
}

void LoadedModel::reserve_kv_blocks(int64_t n_blocks) {
  if (n_blocks <= kv_shape.n_blocks) return;
  KvCacheShape shape = kv_shape;
  shape.n_blocks = n_blocks;
  backend->init_kv_cache(shape);
  kv_shape = shape;
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  check(options.kv_block_size > 0, "KV block size must be positive");
  gguf::File file = gguf::File::open(path);
  LoadedModel m;
  m.path = path;
  m.config = read_llama_config(file);
  const ModelConfig& c = m.config;
  m.tokenizer = std::make_unique<SpmTokenizer>(SpmTokenizer::from_gguf(file));
  check(m.tokenizer->vocab_size() <= c.vocab_size,
        path + ": the tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
            " tokens but the embedding only " + std::to_string(c.vocab_size) + " rows");
  for (const gguf::TensorInfo& t : file.tensors()) m.parameter_count += t.n_elements;

  std::unique_ptr<Backend> backend = options.make_backend
                                         ? options.make_backend()
                                         : std::make_unique<CpuBackend>(options.threads);
  check(backend != nullptr, "load_model: make_backend returned no backend");
  backend->set_reduction_order(options.reduction_order);
  m.reduction_order = options.reduction_order;
  WeightReader reader(file, *backend, options);
  const int64_t D = c.dim, F = c.ffn_dim, Q = c.q_dim(), KV = c.kv_dim(), V = c.vocab_size;
  LlamaWeights w;
  w.token_embd = reader.read("token_embd.weight", {D, V}, false);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LlamaLayerWeights lw;
    lw.attn_norm = reader.read(p + "attn_norm.weight", {D}, false);
    lw.wq = reader.read(p + "attn_q.weight", {D, Q}, true);
    lw.wk = reader.read(p + "attn_k.weight", {D, KV}, true);
    lw.wv = reader.read(p + "attn_v.weight", {D, KV}, true);
    lw.wo = reader.read(p + "attn_output.weight", {Q, D}, true);
    lw.ffn_norm = reader.read(p + "ffn_norm.weight", {D}, false);
    lw.w_gate = reader.read(p + "ffn_gate.weight", {D, F}, true);
    lw.w_up = reader.read(p + "ffn_up.weight", {D, F}, true);
    lw.w_down = reader.read(p + "ffn_down.weight", {F, D}, true);
    w.layers.push_back(lw);
  }
  w.output_norm = reader.read("output_norm.weight", {D}, false);
  w.output = c.tied_output ? w.token_embd : reader.read("output.weight", {D, V}, true);
  m.weight_dtype = reader.matmul_dtype_name();
  m.weights_hash = file.content_hash();

  backend->set_rope_table(make_rope_table(c.head_dim, c.rope_theta, c.context_length,
                                          c.rope_layout));
  m.kv_shape = KvCacheShape{c.n_layers, 0, options.kv_block_size, c.n_kv_heads, c.head_dim};
  m.model = std::make_unique<LlamaModel>(c, std::move(w), *backend, options.max_batch_tokens,
                                         options.max_logit_rows);
  m.backend = std::move(backend);
  return m;
}

}  // namespace bx
