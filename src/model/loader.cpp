#include "model/loader.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <vector>

#include "backend/cpu_backend.h"
#include "core/error.h"
#include "kernels/quant.h"
#include "model/architecture.h"
#include "model/gguf.h"
#include "model/hf_loader.h"
#include "model/random_model.h"
#include "model/tensor_dump.h"
#include "tokenizer/load_tokenizer.h"

namespace bx {
namespace {

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

int get_positive_int(const gguf::File& file, const std::string& key) {
  const int64_t value = file.get_int(key);
  check(
      value > 0 && value <= (int64_t{1} << 30),
      file.path() + ": " + key + " is " + std::to_string(value) + ", expected a positive integer");
  return static_cast<int>(value);
}

// Whether a GGUF file of `arch` has an optional weight group: a family that always has it, or
// (attention_bias: GGUF has no such key) one whose file holds the group's first tensor.
bool gguf_has(const gguf::File& file, Presence presence, const LayerWeight& first) {
  return presence == Presence::always || (presence == Presence::attention_bias &&
                                          file.find_tensor(gguf_layer_name(0, first)) != nullptr);
}

// RoPE scaling: none, or the per-pair frequency factors of rope_freqs.weight (F32 or F16
// [head_dim / 2]; Llama 3.1 / 3.2 as llama.cpp's converter writes them). A scaling type other than
// "none" (linear, yarn, longrope) is refused: its math is not implemented.
RopeScaling read_gguf_rope_scaling(const gguf::File& file, const Architecture& arch, int head_dim) {
  const std::string type_key = gguf_key(arch, kGgufRopeScalingType);
  RopeScaling scaling;
  if (file.has(type_key)) {
    const std::string type = file.get_string(type_key);
    check(type == "none" || type == "linear",
          file.path() + ": " + type_key + " is '" + type +
              "': supported are none, linear, and Llama 3 scaling as the tensor " +
              std::string(kGgufRopeFreqs));
    if (type == "linear") {
      const std::string factor_key = gguf_key(arch, kGgufRopeScalingFactor);
      check(file.has(factor_key), file.path() + ": " + type_key + " is 'linear' but " + factor_key +
                                      " is missing: expected the scaling factor, a number > 0");
      scaling.kind = RopeScaling::Kind::linear;
      scaling.factor = file.get_float(factor_key);
      check(scaling.factor > 0.0 && std::isfinite(scaling.factor),
            file.path() + ": " + factor_key + " is " + std::to_string(scaling.factor) +
                ", expected a finite number > 0");
      return scaling;
    }
  }
  const std::string name(kGgufRopeFreqs);
  const gguf::TensorInfo* info = file.find_tensor(name);
  if (info == nullptr) return scaling;
  const std::vector<int64_t> expected{head_dim / 2};
  check(info->dims == expected, file.path() + ": tensor '" + name + "' has shape " +
                                    shape_string(info->dims) + ", expected " +
                                    shape_string(expected) + " (head_dim / 2)");
  check(info->type == gguf::GgmlType::F32 || info->type == gguf::GgmlType::F16,
        file.path() + ": tensor '" + name + "' has type " + gguf::ggml_type_name(info->type) +
            ", expected F32 or F16");
  scaling.kind = RopeScaling::Kind::freq_factors;
  scaling.freq_factors.resize(static_cast<size_t>(head_dim / 2));
  gguf::dequantize_to_f32(*info, file.tensor_data(*info), scaling.freq_factors.data());
  for (size_t i = 0; i < scaling.freq_factors.size(); ++i) {
    const float f = scaling.freq_factors[i];
    check(f > 0.0f && std::isfinite(f), file.path() + ": tensor '" + name + "' element " +
                                            std::to_string(i) + " is " + std::to_string(f) +
                                            ", expected a finite number > 0");
  }
  return scaling;
}

// Gemma 3's per-layer sliding windows, RoPE bases, scales and its refusals (architecture.h).
void read_gguf_gemma3(const gguf::File& file, const Architecture& arch, ModelConfig& c) {
  const auto key = [&](std::string_view suffix) { return gguf_key(arch, suffix); };
  for (std::string_view softcap : {kGgufAttnSoftcap, kGgufFinalSoftcap}) {
    check(!file.has(key(softcap)) || file.get_float(key(softcap)) == 0.0,
          file.path() + ": " + key(softcap) + " is set: logit softcapping is not supported, " +
              "expected no such key");
  }
  check(file.has(key(kGgufSlidingWindow)),
        file.path() + ": " + key(kGgufSlidingWindow) + " is missing: a " +
            std::string(arch.family) + " file needs its sliding-window size, a positive integer");
  c.sliding_window = get_positive_int(file, key(kGgufSlidingWindow));
  c.windowed.assign(static_cast<size_t>(c.n_layers), 0);
  const gguf::Value* pattern = file.find(key(kGgufSlidingWindowPattern));
  if (pattern != nullptr && pattern->type == gguf::ValueType::array) {
    const gguf::Array& a = std::get<gguf::Array>(pattern->data);
    check(a.element_type == gguf::ValueType::boolean && a.elements.size() == c.windowed.size(),
          file.path() + ": " + key(kGgufSlidingWindowPattern) + " is an array of " +
              std::to_string(a.elements.size()) + " values: expected one bool per layer (" +
              std::to_string(c.n_layers) + "), or an integer period");
    for (size_t l = 0; l < a.elements.size(); ++l) {
      c.windowed[l] = std::get<bool>(a.elements[l].data) ? 1 : 0;
    }
  } else {
    const int period =
        pattern != nullptr ? get_positive_int(file, key(kGgufSlidingWindowPattern)) : 6;
    for (int l = 0; l < c.n_layers; ++l) c.windowed[static_cast<size_t>(l)] = (l + 1) % period != 0;
  }
  c.rope_local_theta =
      file.has(key(kGgufRopeFreqBaseSwa)) ? file.get_float(key(kGgufRopeFreqBaseSwa)) : 10000.0;
  check(c.rope_local_theta > 0.0 && std::isfinite(c.rope_local_theta),
        file.path() + ": " + key(kGgufRopeFreqBaseSwa) + " must be a finite number > 0");
  if (file.has(key(kGgufAttentionScale))) {
    c.attention_scale = static_cast<float>(file.get_float(key(kGgufAttentionScale)));
  } else {
    // llama.cpp: query_pre_attn_scalar is not in the file; it is D / H for the 62-layer 27B
    // model and head_dim for the others.
    const int scalar = c.n_layers == 62 ? c.dim / c.n_heads : c.head_dim;
    c.attention_scale = 1.0f / std::sqrt(static_cast<float>(scalar));
  }
  c.embed_scale = std::sqrt(static_cast<float>(c.dim));  // llama.cpp: sqrtf(n_embd), in f32
  c.post_norms = arch.post_norms;
  c.gelu_tanh_mlp = arch.gelu_tanh_mlp;
}

ModelConfig read_gguf_config(const gguf::File& file) {
  const std::string name = file.get_string("general.architecture");
  const Architecture* arch = find_gguf_architecture(name);
  check(arch != nullptr, file.path() + ": unsupported architecture '" + name + "': expected " +
                             gguf_architecture_list());
  const auto key = [&](std::string_view suffix) { return gguf_key(*arch, suffix); };
  ModelConfig c;
  c.architecture = name;
  for (const DimensionKey& k : dimension_keys()) {
    if (!k.gguf.empty()) c.*k.field = get_positive_int(file, key(k.gguf));
  }
  c.n_kv_heads =
      file.has(key(kGgufKvHeads)) ? get_positive_int(file, key(kGgufKvHeads)) : c.n_heads;
  c.rms_eps = static_cast<float>(file.get_float(key(kGgufRmsEps)));
  if (file.has(key(kGgufRopeTheta))) c.rope_theta = file.get_float(key(kGgufRopeTheta));
  check(c.dim % c.n_heads == 0 || file.has(key(kGgufHeadDim)),
        file.path() + ": embedding_length " + std::to_string(c.dim) +
            " is not a multiple of head_count " + std::to_string(c.n_heads));
  c.head_dim =
      file.has(key(kGgufHeadDim)) ? get_positive_int(file, key(kGgufHeadDim)) : c.dim / c.n_heads;
  if (file.has(key(kGgufValueDim))) {
    check(get_positive_int(file, key(kGgufValueDim)) == c.head_dim,
          file.path() + ": attention.value_length differs from key_length; expected them equal");
  }
  if (file.has(key(kGgufRopeDims))) {
    const int rot = get_positive_int(file, key(kGgufRopeDims));
    check(rot == c.head_dim, file.path() + ": rope.dimension_count " + std::to_string(rot) +
                                 " differs from the head dimension " + std::to_string(c.head_dim) +
                                 "; partial rotary embeddings are not supported");
  }
  c.rope_scaling = read_gguf_rope_scaling(file, *arch, c.head_dim);
  if (arch->sliding_window == SlidingWindow::per_layer) {
    read_gguf_gemma3(file, *arch, c);
  } else if (file.has(key(kGgufSlidingWindow))) {
    c.context_length = std::min(c.context_length, get_positive_int(file, key(kGgufSlidingWindow)));
  }
  const std::string embd_name(kTokenEmbedding.gguf);
  const gguf::TensorInfo* embd = file.find_tensor(embd_name);
  check(embd != nullptr, file.path() + ": missing tensor '" + embd_name + "'");
  check(embd->dims.size() == 2 && embd->dims[0] == c.dim,
        file.path() + ": tensor '" + embd_name + "' has shape " + shape_string(embd->dims) +
            ", expected [" + std::to_string(c.dim) + ", vocab]");
  c.vocab_size = static_cast<int>(embd->dims[1]);
  c.tied_output = file.find_tensor(std::string(kOutput.gguf)) == nullptr;
  c.rope_layout = arch->gguf_rope_layout;
  const auto first_of = [](WeightGroup g) -> const LayerWeight& {
    for (const LayerWeight& w : layer_weights()) {
      if (w.group == g) return w;
    }
    throw Error("architecture table: no weight of a group");
  };
  c.qkv_bias = gguf_has(file, arch->qkv_bias, first_of(WeightGroup::qkv_bias));
  c.output_bias = gguf_has(file, arch->output_bias, first_of(WeightGroup::output_bias));
  c.qk_norm = arch->qk_norm;
  // Experts in every layer where the file counts them (Mixtral: "llama" with experts).
  if (file.has(key(kGgufExpertCount)) && file.get_int(key(kGgufExpertCount)) != 0) {
    c.n_experts = get_positive_int(file, key(kGgufExpertCount));
    c.n_experts_used = get_positive_int(file, key(kGgufExpertUsedCount));
    c.expert_ffn_dim =
        file.has(key(kGgufExpertFfn)) ? get_positive_int(file, key(kGgufExpertFfn)) : c.ffn_dim;
    c.norm_topk_prob =
        !file.has(key(kGgufExpertWeightsNorm)) || file.get_bool(key(kGgufExpertWeightsNorm));
    check(!file.has(key(kGgufExpertGatingFunc)) || file.get_int(key(kGgufExpertGatingFunc)) == 1,
          file.path() + ": " + key(kGgufExpertGatingFunc) + " is not 1: only softmax routing " +
              "is supported, expected 1 (softmax)");
    check(!file.has(key(kGgufExpertSharedCount)) || file.get_int(key(kGgufExpertSharedCount)) == 0,
          file.path() + ": " + key(kGgufExpertSharedCount) + " is not 0: shared experts are " +
              "not supported, expected 0");
  }
  check(!arch->moe || c.is_moe(), file.path() + ": a " + std::string(arch->family) +
                                      " file without " + key(kGgufExpertCount) +
                                      ": expected its number of experts");
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
  // backend tensor [rows, cols]. Matmul weights and the embedding stay in their blocks (Q8_0,
  // Q4_K, ...: kernels/quant.h) when the file holds those (unless options.dequantize_weights, or
  // the backend cannot hold them); matmul weights stay BF16 when the file holds BF16; everything
  // else is widened or dequantized to F32.
  Tensor read(const std::string& name, std::vector<int64_t> dims, bool matmul_weight) {
    return read_as(name, std::move(dims), matmul_weight ? Role::matmul : Role::vector);
  }
  // The token embedding: F32, or its blocks kept like a matmul weight's (embed reads both).
  Tensor read_embedding(const std::string& name, std::vector<int64_t> dims) {
    return read_as(name, std::move(dims), Role::embedding);
  }

  // Counts a matmul weight (the tied output projection is passed here too).
  void note_matmul_weight(const Tensor& t) {
    matmul_dtypes_ |= t.dtype == DType::bf16 ? 2 : 1;
    storage_.insert(std::string(dtype_name(t.dtype)));
    const int64_t elements = t.rows * t.cols;
    matmul_bytes_ += quant::is_block_format(t.dtype) ? quant::bytes_for(t.dtype, elements)
                     : t.dtype == DType::bf16        ? 2 * elements
                                                     : 4 * elements;
  }

  std::string storage_name() const {
    std::string s;
    for (const std::string& name : storage_) s += (s.empty() ? "" : "+") + name;
    return s;
  }
  int64_t matmul_bytes() const { return matmul_bytes_; }

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
  // What a tensor is used for: which forms of it the backend ops accept.
  enum class Role { vector, embedding, matmul };

  Tensor read_as(const std::string& name, std::vector<int64_t> dims, Role role) {
    const gguf::TensorInfo* info = file_.find_tensor(name);
    check(info != nullptr, file_.path() + ": missing tensor '" + name + "'");
    const std::optional<DType> stored = gguf::to_dtype(info->type);
    check(stored.has_value(), file_.path() + ": tensor '" + name + "' has unsupported type " +
                                  gguf::ggml_type_name(info->type) + ": supported are " +
                                  gguf::supported_type_names());
    check(info->dims == dims, file_.path() + ": tensor '" + name + "' has shape " +
                                  shape_string(info->dims) + ", expected " + shape_string(dims));
    const int64_t cols = dims[0];
    int64_t rows = 1;  // {cols, n, E}: E matrices of n rows, stacked
    for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
    const bool keep_blocks = role != Role::vector && quant::is_block_format(*stored) &&
                             !options_.dequantize_weights && backend_.can_hold_blocks(*stored);
    Tensor t;
    if (keep_blocks) {
      t = backend_.upload_blocks(file_.tensor_data(*info).data(), rows, cols, *stored);
    } else {
      scratch_.resize(static_cast<size_t>(info->n_elements));
      gguf::dequantize_to_f32(*info, file_.tensor_data(*info), scratch_.data());
      const DType dtype =
          role == Role::matmul && info->type == gguf::GgmlType::BF16 ? DType::bf16 : DType::f32;
      t = backend_.upload_matrix(scratch_.data(), rows, cols, dtype);
    }
    if (role == Role::matmul) note_matmul_weight(t);
    done_bytes_ += info->n_bytes;
    if (options_.progress) options_.progress(done_bytes_, total_bytes_);
    return t;
  }

  const gguf::File& file_;
  Backend& backend_;
  const LoadOptions& options_;
  std::vector<float> scratch_;
  uint64_t total_bytes_ = 0;
  uint64_t done_bytes_ = 0;
  int matmul_dtypes_ = 0;  // bit 0: some F32 (or dequantized to F32), bit 1: some BF16
  std::set<std::string> storage_;
  int64_t matmul_bytes_ = 0;
};

}  // namespace

void check_backend_runs(const ModelConfig& c, Backend& backend, const std::string& path) {
  check(!c.is_moe() || backend.capabilities().moe != nullptr,
        path + ": " + c.architecture + " has Mixture-of-Experts layers, which backend " +
            backend.name() + " cannot run yet: expected --backend cpu");
  const std::string head_dims = backend.unsupported_head_dim(c.head_dim);
  check(head_dims.empty(), path + ": head_dim " + std::to_string(c.head_dim) +
                               " is not one backend " + backend.name() +
                               " runs attention for: it takes " + head_dims);
}

std::string LoadedModel::system_fingerprint() const {
  const std::string identity =
      weights_hash + "|" + backend->name() + "|w=" + weight_dtype + "|" + backend->numerics() +
      "|mode=" +
      (reduction_order == ReductionOrder::canonical ? "invariant" : "fast-split-k-by-m") + "|" +
      backend->kernel_version() +
      (weights_version == 0 ? "" : "|v=" + std::to_string(weights_version));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(identity.data(), identity.size())));
  return std::string("bx-") + hex;
}

void LoadedModel::reserve_kv_blocks(int64_t n_blocks) {
  if (n_blocks <= kv_shape.n_blocks) return;
  KvCacheShape shape = kv_shape;
  shape.n_blocks = n_blocks + 1;  // block n_blocks: the scratch block of filler rows
  backend->init_kv_cache(shape);
  kv_shape.n_blocks = n_blocks;
  model->set_scratch_kv_block(static_cast<int32_t>(n_blocks));
  // The backend's step state (Backend::reserve_step_state), so that no forward pass allocates:
  // a step holds at most max_logit_rows sequences (Engine: max_seqs), each with the blocks of
  // the whole context, and the scratch block.
  const int64_t blocks_per_sequence =
      (int64_t{config.context_length} + kv_shape.block_size - 1) / kv_shape.block_size;
  StepLimits limits;
  limits.max_tokens = model->max_batch_tokens();
  limits.max_logit_rows = model->max_logit_rows();
  limits.max_table_blocks = limits.max_logit_rows * blocks_per_sequence + 1;
  limits.vocab = config.vocab_size;
  backend->reserve_step_state(limits);
}

namespace {

// The rope table, KV cache shape and model over weights already in `backend`.
void finish_loading(LoadedModel& m, std::unique_ptr<Backend> backend, LlamaWeights weights,
                    const LoadOptions& options) {
  const ModelConfig& c = m.config;
  backend->set_rope_table(
      make_rope_table(c.head_dim, c.rope_theta, c.context_length, c.rope_layout, c.rope_scaling));
  if (!c.windowed.empty()) {  // the sliding-window layers' RoPE: their own base, no scaling
    backend->set_local_rope_table(
        make_rope_table(c.head_dim, c.rope_local_theta, c.context_length, c.rope_layout));
  }
  m.kv_shape = KvCacheShape{c.n_layers, 0, options.kv_block_size, c.n_kv_heads, c.head_dim};
  // q | k | v back to back where the backend packs them, so it may run them as one matmul
  // (a GemmOp of parts; the same bits). `weights` holds the only copy of these tensors.
  for (LlamaLayerWeights& l : weights.layers) {
    Tensor* const qkv[] = {&l.wq, &l.wk, &l.wv};
    backend->pack_rows(qkv);
  }
  // The dense layers' weights, the embedding and the output are read by gemm and embed alone.
  for (const LlamaLayerWeights& l : weights.layers) {
    for (const Tensor* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      if (w->data != nullptr) backend->prefer_gemm_layout(*w);
    }
  }
  backend->prefer_gemm_layout(weights.token_embd);
  if (weights.output.data != nullptr) backend->prefer_gemm_layout(weights.output);
  m.model = std::make_unique<LlamaModel>(c, std::move(weights), *backend, options.max_batch_tokens,
                                         options.max_logit_rows);
  m.model->set_observer(tensor_dump_from_env());  // BITEXACT_DUMP=<folder>; unset: none
  m.backend = std::move(backend);
}

// options.make_backend's backend, or a CpuBackend.
std::unique_ptr<Backend> make_backend(LoadedModel& m, const LoadOptions& options) {
  std::unique_ptr<Backend> backend =
      options.make_backend ? options.make_backend()
                           : std::make_unique<CpuBackend>(options.threads, options.cpu_quant_dot);
  check(backend != nullptr, "load_model: make_backend returned no backend");
  backend->set_reduction_order(options.reduction_order);
  m.reduction_order = options.reduction_order;
  return backend;
}

// Makes `tokenizer` the model's after checking that the embedding has a row for each of its
// tokens; its EOS joins config.eos_token_ids. `where` names it in the error.
void install_tokenizer(LoadedModel& m, std::unique_ptr<Tokenizer> tokenizer,
                       const std::string& where) {
  check(tokenizer->vocab_size() <= m.config.vocab_size,
        where + ": the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
            " tokens but the embedding of " + m.path + " only " +
            std::to_string(m.config.vocab_size) + " rows");
  const int32_t eos = tokenizer->eos_id();
  if (eos >= 0 && std::find(m.config.eos_token_ids.begin(), m.config.eos_token_ids.end(), eos) ==
                      m.config.eos_token_ids.end()) {
    m.config.eos_token_ids.push_back(eos);
  }
  m.tokenizer = std::move(tokenizer);
}

LoadedModel load_hf(const std::string& path, const LoadOptions& options) {
  LoadedModel m;
  m.path = path;
  auto backend = make_backend(m, options);
  HfModel hf = load_hf_folder(path, *backend, options);
  m.config = hf.config;
  m.weights_hash = hf.weights_hash;
  m.weight_dtype = hf.weight_dtype;
  m.parameter_count = hf.parameter_count;
  m.weight_storage = hf.weight_dtype;
  const auto bytes = [](const Tensor& t) {
    return t.rows * t.cols * (t.dtype == DType::bf16 ? 2 : 4);
  };
  for (const LlamaLayerWeights& l : hf.weights.layers) {
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down, &l.router,
                            &l.expert_gate, &l.expert_up, &l.expert_down}) {
      m.matmul_weight_bytes += bytes(*t);  // 0 for a weight the model does not have
    }
  }
  m.matmul_weight_bytes += bytes(hf.weights.output);
  finish_loading(m, std::move(backend), std::move(hf.weights), options);
  if (std::filesystem::exists(std::filesystem::path(path) / "tokenizer.json")) {
    install_tokenizer(m, load_tokenizer_dir(path), path);
  }
  return m;
}

LoadedModel load_gguf(const std::string& path, const LoadOptions& options) {
  gguf::File file = gguf::File::open(path);
  LoadedModel m;
  m.path = path;
  m.from_gguf = true;
  m.config = read_gguf_config(file);
  const ModelConfig& c = m.config;
  m.tokenizer = load_gguf_tokenizer(file);
  check(m.tokenizer->vocab_size() <= c.vocab_size,
        path + ": the tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
            " tokens but the embedding only " + std::to_string(c.vocab_size) + " rows");
  m.config.bos_token_id = m.tokenizer->bos_id();
  if (m.tokenizer->eos_id() >= 0) m.config.eos_token_ids = {m.tokenizer->eos_id()};
  for (const gguf::TensorInfo& t : file.tensors()) m.parameter_count += t.n_elements;

  auto backend = make_backend(m, options);
  check_backend_runs(c, *backend, path);
  WeightReader reader(file, *backend, options);
  const int64_t D = c.dim, V = c.vocab_size;
  LlamaWeights w;
  w.token_embd = reader.read_embedding(std::string(kTokenEmbedding.gguf), {D, V});
  for (int l = 0; l < c.n_layers; ++l) {
    LlamaLayerWeights lw;
    for (const LayerWeight& spec : layer_weights()) {
      if (!has_group(spec.group, c)) continue;
      const int64_t cols = weight_dim(spec.cols, c);
      // GGUF dims: the fastest first ({cols, rows} for a matrix, {cols, n, E} for experts).
      std::vector<int64_t> dims{cols};
      if (spec.rows != WeightDim::one) dims.push_back(expert_rows(spec, c));
      if (spec.per_expert) dims.push_back(c.n_experts);
      lw.*spec.field = reader.read(gguf_layer_name(l, spec), dims, spec.kind == WeightKind::matmul);
    }
    w.layers.push_back(lw);
  }
  w.output_norm = reader.read(std::string(kOutputNorm.gguf), {D}, false);
  if (c.tied_output) {
    w.output = w.token_embd;
    reader.note_matmul_weight(w.output);
  } else {
    w.output = reader.read(std::string(kOutput.gguf), {D, V}, true);
  }
  m.weight_dtype = reader.matmul_dtype_name();
  m.weight_storage = reader.storage_name();
  m.matmul_weight_bytes = reader.matmul_bytes();
  m.weights_hash = file.content_hash();
  finish_loading(m, std::move(backend), std::move(w), options);
  return m;
}

// A `random:NAME[:SEED]` spec (model/random_model.h): weights generated inside the backend.
LoadedModel load_random(const std::string& path, const LoadOptions& options) {
  const RandomModelSpec spec = parse_random_model_spec(path);
  LoadedModel m;
  m.path = path;
  m.config = random_model_config(spec.base_name);
  const ModelConfig& c = m.config;
  m.parameter_count = parameter_count(c);
  auto backend = make_backend(m, options);
  check_backend_runs(c, *backend, path);
  check(m.parameter_count < (int64_t{1} << 30) || backend->kv_memory_available() >= 0,
        path + ": " + std::to_string(m.parameter_count) +
            " parameters are too many for host memory in f32; use --backend cuda");
  m.weights_hash = random_model_weights_hash(spec);
  // Generated f32 values (a backend rounds them as its numerics say), or Q4_K / Q8_0 blocks.
  m.weight_dtype = spec.matmul_dtype == DType::f32 ? "F32" : "Q4_K+Q8_0";
  m.weight_storage = m.weight_dtype;
  LlamaWeights w =
      generate_random_weights(c, spec.seed, *backend, spec.matmul_dtype, &m.matmul_weight_bytes);
  finish_loading(m, std::move(backend), std::move(w), options);
  return m;
}

}  // namespace

void attach_tokenizer(LoadedModel& m, const std::string& path) {
  install_tokenizer(m, load_tokenizer(path), path);
  if (m.config.bos_token_id < 0) m.config.bos_token_id = m.tokenizer->bos_id();
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  check(options.kv_block_size > 0, "KV block size must be positive");
  if (is_random_model_spec(path)) return load_random(path, options);
  return is_hf_folder(path) ? load_hf(path, options) : load_gguf(path, options);
}

}  // namespace bx
