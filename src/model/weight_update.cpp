#include "model/weight_update.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "kernels/quant.h"
#include "model/safetensors.h"

namespace bx {
namespace {

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// A weight the model reads, under one of its names.
struct Target {
  Tensor* tensor = nullptr;
  bool matmul = false;
  bool vector = false;  // shape [cols]
  int permute_heads = 0;
  bool tied_output = false;  // the output projection of a tied model (the embedding itself)
};

bool is_gguf_model(const LoadedModel& m) {
  return m.from_gguf;
}

// A GGUF whose q/k rows llama.cpp's converter permuted for RoPE on adjacent pairs (llama); the
// families it runs with rotate-half (qwen2, qwen3) keep Hugging Face's row order.
bool gguf_permutes_qk(const LoadedModel& m) {
  return m.from_gguf && m.config.rope_layout == RopeLayout::adjacent_pairs;
}

// Every name the model takes, with what it names.
std::map<std::string, Target> weight_names(LoadedModel& m) {
  LlamaWeights& w = m.model->weights();
  const ModelConfig& c = m.config;
  // Gemma 3 names its norms differently and applies them as 1 + w: not mapped here yet.
  check(!c.post_norms, "update_weights: " + c.architecture +
                           " (post-norms, 1 + w norms) is not supported yet: expected a model " +
                           "without post-norms");
  const bool gguf = is_gguf_model(m);
  const bool tied = w.output.data == w.token_embd.data;
  std::map<std::string, Target> names;
  const auto add = [&](const std::string& hf, const std::string& gguf_name, Tensor& t, bool matmul,
                       int permute_heads = 0) {
    if (t.data == nullptr) return;  // absent in this model (a bias, a q/k norm)
    const Target target{&t, matmul, t.rows == 1 && !matmul, 0, false};
    Target hf_target = target;
    hf_target.permute_heads = gguf_permutes_qk(m) ? permute_heads : 0;
    names[hf] = hf_target;
    if (gguf) names[gguf_name] = target;
  };
  add("model.embed_tokens.weight", "token_embd.weight", w.token_embd, false);
  for (int l = 0; l < c.n_layers; ++l) {
    LlamaLayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const std::string hf = "model.layers." + std::to_string(l) + ".";
    const std::string g = "blk." + std::to_string(l) + ".";
    add(hf + "input_layernorm.weight", g + "attn_norm.weight", lw.attn_norm, false);
    add(hf + "self_attn.q_proj.weight", g + "attn_q.weight", lw.wq, true, c.n_heads);
    add(hf + "self_attn.k_proj.weight", g + "attn_k.weight", lw.wk, true, c.n_kv_heads);
    add(hf + "self_attn.v_proj.weight", g + "attn_v.weight", lw.wv, true);
    add(hf + "self_attn.o_proj.weight", g + "attn_output.weight", lw.wo, true);
    add(hf + "self_attn.q_proj.bias", g + "attn_q.bias", lw.bq, false);
    add(hf + "self_attn.k_proj.bias", g + "attn_k.bias", lw.bk, false);
    add(hf + "self_attn.v_proj.bias", g + "attn_v.bias", lw.bv, false);
    add(hf + "self_attn.o_proj.bias", g + "attn_output.bias", lw.bo, false);
    add(hf + "self_attn.q_norm.weight", g + "attn_q_norm.weight", lw.q_norm, false);
    add(hf + "self_attn.k_norm.weight", g + "attn_k_norm.weight", lw.k_norm, false);
    add(hf + "post_attention_layernorm.weight", g + "ffn_norm.weight", lw.ffn_norm, false);
    add(hf + "mlp.gate_proj.weight", g + "ffn_gate.weight", lw.w_gate, true);
    add(hf + "mlp.up_proj.weight", g + "ffn_up.weight", lw.w_up, true);
    add(hf + "mlp.down_proj.weight", g + "ffn_down.weight", lw.w_down, true);
  }
  add("model.norm.weight", "output_norm.weight", w.output_norm, false);
  if (tied) {
    names["lm_head.weight"] = Target{&w.output, true, false, 0, true};
    if (gguf) names["output.weight"] = names["lm_head.weight"];
  } else {
    add("lm_head.weight", "output.weight", w.output, true);
  }
  return names;
}

size_t element_bytes(DType dtype) {
  return dtype == DType::bf16 ? 2 : 4;
}

}  // namespace

WeightUpdatePlan plan_weight_update(const LoadedModel& model, std::vector<WeightSource> sources) {
  // weight_names hands out pointers into the weights; planning itself writes nothing.
  LoadedModel& m = const_cast<LoadedModel&>(model);
  check(!m.config.is_moe(),
        "update_weights: " + m.config.architecture +
            " is a Mixture-of-Experts model, whose weights cannot be updated in "
            "place yet: expected a dense model; nothing was changed");
  const std::map<std::string, Target> names = weight_names(m);
  const bool device_backend = m.backend->kv_memory_available() >= 0;
  WeightUpdatePlan plan;
  std::set<std::string> seen;
  std::map<const Tensor*, size_t> source_of;  // target -> source index
  std::vector<size_t> tied_outputs;           // sources naming a tied output projection
  for (size_t i = 0; i < sources.size(); ++i) {
    const WeightSource& s = sources[i];
    const std::string quoted = "'" + s.name + "'";
    const auto it = names.find(s.name);
    if (it == names.end()) {
      throw Error("update_weights: unknown weight name " + quoted + " (expected a Hugging Face " +
                  "name such as model.layers.0.self_attn.q_proj.weight" +
                  (is_gguf_model(m) ? std::string(" or a GGUF name such as blk.0.attn_q.weight")
                                    : std::string()) +
                  "); nothing was changed");
    }
    const Target& t = it->second;
    check(seen.insert(s.name).second,
          "update_weights: " + quoted + " is given twice; nothing was changed");
    check(s.dtype == DType::f32 || s.dtype == DType::bf16,
          "update_weights: " + quoted + " has dtype " + std::string(dtype_name(s.dtype)) +
              ", expected float32 or bfloat16; nothing was changed");
    check(!s.on_device || device_backend,
          "update_weights: " + quoted + " is in device memory but the model runs on the CPU; " +
              "give host tensors (e.g. tensor.cpu()); nothing was changed");
    check(s.data != nullptr || t.tensor->rows * t.tensor->cols == 0,
          "update_weights: " + quoted + " has no data; nothing was changed");
    const std::vector<int64_t> expected =
        t.vector ? std::vector<int64_t>{t.tensor->cols}
                 : std::vector<int64_t>{t.tensor->rows, t.tensor->cols};
    check(s.shape == expected, "update_weights: " + quoted + " has shape " + shape_string(s.shape) +
                                   ", expected " + shape_string(expected) +
                                   "; nothing was changed");
    if (t.tied_output) {
      tied_outputs.push_back(i);
      continue;
    }
    const auto [previous, inserted] = source_of.emplace(t.tensor, i);
    if (!inserted) {
      throw Error("update_weights: " + quoted + " names a weight that another name in this " +
                  "update names too (" + sources[previous->second].name + "); nothing was changed");
    }
    plan.items.push_back(WeightUpdatePlan::Item{i, t.tensor, t.matmul, t.permute_heads});
  }
  // A tied output projection is the embedding: accepted only as a copy of the embedding given
  // in the same update (the same memory, or equal bytes in host memory).
  const Tensor* embedding = &m.model->weights().token_embd;
  for (const size_t i : tied_outputs) {
    const WeightSource& s = sources[i];
    const auto e = source_of.find(embedding);
    bool same = false;
    if (e != source_of.end()) {
      const WeightSource& emb = sources[e->second];
      const size_t bytes =
          static_cast<size_t>(embedding->rows * embedding->cols) * element_bytes(s.dtype);
      same = emb.dtype == s.dtype && emb.on_device == s.on_device &&
             (emb.data == s.data || (!s.on_device && std::memcmp(emb.data, s.data, bytes) == 0));
    }
    check(same, "update_weights: '" + s.name + "' is tied to the token embedding in this model; " +
                    "update the embedding instead (or give both with the same values); " +
                    "nothing was changed");
  }
  plan.sources = std::move(sources);
  return plan;
}

void apply_weight_update(LoadedModel& m, const WeightUpdatePlan& plan) {
  Backend& backend = *m.backend;
  LlamaWeights& w = m.model->weights();
  const bool tied = w.output.data == w.token_embd.data;
  // 1. The dtype each target is held in from now on; new tensors where it changes.
  std::vector<Tensor> fresh(plan.items.size());
  try {
    for (size_t k = 0; k < plan.items.size(); ++k) {
      const WeightUpdatePlan::Item& item = plan.items[k];
      const Tensor& t = *item.target;
      const DType want =
          backend.held_dtype(item.matmul ? plan.sources[item.source].dtype : DType::f32, t.rows);
      if (t.dtype != want) fresh[k] = backend.alloc(want, t.rows, t.cols);
    }
  } catch (...) {
    for (const Tensor& t : fresh) {
      if (t.data != nullptr) backend.free_tensor(t);
    }
    throw;
  }
  // 2. The values.
  for (size_t k = 0; k < plan.items.size(); ++k) {
    const WeightUpdatePlan::Item& item = plan.items[k];
    const WeightSource& s = plan.sources[item.source];
    Tensor& target = *item.target;
    const Tensor dst = fresh[k].data != nullptr ? fresh[k] : target;
    const int64_t cols = dst.cols;
    const auto* src = static_cast<const unsigned char*>(s.data);
    const size_t row_bytes = static_cast<size_t>(cols) * element_bytes(s.dtype);
    if (item.permute_heads == 0) {
      backend.write_rows(dst, 0, 1, dst.rows, src, s.dtype, s.on_device);
    } else {
      // GGUF row h*Dh + 2i + j holds Hugging Face row h*Dh + j*Dh/2 + i (i < Dh/2, j in {0, 1}).
      const int64_t heads = item.permute_heads, head_dim = dst.rows / heads, half = head_dim / 2;
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t j = 0; j < 2; ++j) {
          backend.write_rows(dst, h * head_dim + j, 2, half,
                             src + static_cast<size_t>(h * head_dim + j * half) * row_bytes,
                             s.dtype, s.on_device);
        }
      }
    }
    if (fresh[k].data != nullptr) {
      const Tensor old = target;
      target = fresh[k];
      if (tied && &target == &w.token_embd) w.output = target;
      backend.free_tensor(old);
    }
  }
  // 3. What the fingerprint and the statistics say about the matmul weights.
  int dtypes = 0;
  std::set<std::string> storage;
  int64_t bytes = 0;
  const auto note = [&](const Tensor& t) {
    if (t.data == nullptr) return;  // absent in this model
    dtypes |= t.dtype == DType::bf16 ? 2 : 1;
    storage.insert(std::string(dtype_name(t.dtype)));
    const int64_t elements = t.rows * t.cols;
    bytes += quant::is_block_format(t.dtype) ? quant::bytes_for(t.dtype, elements)
             : t.dtype == DType::bf16        ? 2 * elements
                                             : 4 * elements;
  };
  for (const LlamaLayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) note(*t);
  }
  note(w.output);
  m.weight_dtype = dtypes == 1 ? "F32" : dtypes == 2 ? "BF16" : "F32+BF16";
  std::string names;
  for (const std::string& n : storage) names += (names.empty() ? "" : "+") + n;
  m.weight_storage = names;
  m.matmul_weight_bytes = bytes;
  m.weights_version += 1;
}

SafetensorsWeights read_safetensors_weights(const std::string& path) {
  namespace fs = std::filesystem;
  SafetensorsWeights out;
  std::vector<std::pair<const safetensors::File*, const safetensors::TensorInfo*>> entries;
  if (fs::is_directory(path)) {
    auto checkpoint =
        std::make_shared<safetensors::Checkpoint>(safetensors::Checkpoint::open(path));
    for (const auto& [name, e] : checkpoint->tensors()) entries.emplace_back(e.file, e.info);
    out.mapping = checkpoint;
  } else {
    auto file = std::make_shared<safetensors::File>(safetensors::File::open(path));
    for (const safetensors::TensorInfo& info : file->tensors())
      entries.emplace_back(file.get(), &info);
    out.mapping = file;
  }
  for (const auto& [file, info] : entries) {
    if (info->name.size() > 10 && info->name.ends_with(".inv_freq")) continue;  // RoPE buffers
    const std::optional<DType> dtype = safetensors::to_dtype(info->dtype);
    check(dtype == DType::f32 || dtype == DType::bf16,
          file->path() + ": tensor '" + info->name + "' has dtype " +
              std::string(safetensors::dtype_name(info->dtype)) +
              ", expected F32 or BF16 for a weight update");
    out.sources.push_back(
        WeightSource{info->name, file->tensor_data(*info).data(), *dtype, info->shape, false});
  }
  return out;
}

}  // namespace bx
