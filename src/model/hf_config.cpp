#include "model/hf_config.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/json.h"
#include "model/architecture.h"

namespace bx {
namespace {

using nlohmann::json;

constexpr int kMaxConfigDepth = 8;
constexpr int64_t kMaxDimension = int64_t{1} << 30;

class ConfigReader {
 public:
  ConfigReader(const json& root, const std::string& name) : root_(root), name_(name) {}

  [[noreturn]] void fail(const std::string& message) const { throw Error(name_ + ": " + message); }

  // The value of `key`, or nullptr when it is absent or null.
  const json* find(const json& object, const std::string& key) const {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
  }
  const json* find(const std::string& key) const { return find(root_, key); }

  int positive_int(const json& v, const std::string& key) const {
    if (!v.is_number_integer()) {
      fail("\"" + key + "\" is " + json_type_name(v) + " " + v.dump().substr(0, 40) +
           ": expected a positive integer");
    }
    const bool fits = v.is_number_unsigned()
                          ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= uint64_t{kMaxDimension}
                          : v.get<int64_t>() >= 1 && v.get<int64_t>() <= kMaxDimension;
    if (!fits) {
      fail("\"" + key + "\" is " + v.dump() + ": expected a positive integer up to " +
           std::to_string(kMaxDimension));
    }
    return static_cast<int>(v.get<int64_t>());
  }
  int required_int(const std::string& key) const {
    const json* v = find(key);
    if (v == nullptr) fail("\"" + key + "\" is missing: expected a positive integer");
    return positive_int(*v, key);
  }
  int optional_int(const std::string& key, int fallback) const {
    const json* v = find(key);
    return v == nullptr ? fallback : positive_int(*v, key);
  }

  double positive_number(const json& v, const std::string& key) const {
    if (!v.is_number()) fail("\"" + key + "\" is " + json_type_name(v) + ": expected a number > 0");
    const double d = v.get<double>();
    if (!(d > 0.0) || !std::isfinite(d)) {
      fail("\"" + key + "\" is " + v.dump() + ": expected a finite number > 0");
    }
    return d;
  }
  double optional_number(const std::string& key, double fallback) const {
    const json* v = find(key);
    return v == nullptr ? fallback : positive_number(*v, key);
  }

  bool optional_bool(const std::string& key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean())
      fail("\"" + key + "\" is " + json_type_name(*v) + ": expected true or false");
    return v->get<bool>();
  }

  int32_t token_id(const json& v, const std::string& key) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      fail("\"" + key + "\" is " + v.dump().substr(0, 40) +
           ": expected a token id (an integer >= 0)");
    }
    return static_cast<int32_t>(v.get<int64_t>());
  }

 private:
  const json& root_;
  const std::string& name_;
};

std::string architecture_list() {
  return hf_architecture_list();
}

RopeScaling read_rope_scaling(const ConfigReader& r, const json& rs, const std::string& key) {
  if (!rs.is_object())
    r.fail("\"" + key + "\" is " + json_type_name(rs) + ": expected an object or null");
  const json* type = r.find(rs, "rope_type");
  if (type == nullptr) type = r.find(rs, "type");
  if (type == nullptr)
    r.fail("\"" + key + "\" has no \"rope_type\" (or \"type\"): expected \"llama3\"");
  if (!type->is_string())
    r.fail("\"" + key + ".rope_type\" is " + json_type_name(*type) + ": expected a string");
  const std::string kind = type->get<std::string>();
  RopeScaling s;
  if (kind == "default") return s;
  if (kind == "linear") {
    const json* factor = r.find(rs, "factor");
    if (factor == nullptr)
      r.fail("\"" + key + "\" of type linear has no \"factor\": expected a number > 0");
    s.kind = RopeScaling::Kind::linear;
    s.factor = r.positive_number(*factor, key + ".factor");
    return s;
  }
  if (kind != "llama3") {
    r.fail("rope scaling type \"" + kind.substr(0, 40) +
           "\" is not supported: supported are llama3, linear and none (null or \"default\")");
  }
  s.kind = RopeScaling::Kind::llama3;
  auto number = [&](const char* name) {
    const json* v = r.find(rs, name);
    if (v == nullptr)
      r.fail("\"" + key + "\" of type llama3 has no \"" + name + "\": expected a number > 0");
    return r.positive_number(*v, key + "." + name);
  };
  s.factor = number("factor");
  s.low_freq_factor = number("low_freq_factor");
  s.high_freq_factor = number("high_freq_factor");
  const json* original = r.find(rs, "original_max_position_embeddings");
  if (original == nullptr) {
    r.fail("\"" + key + "\" of type llama3 has no \"original_max_position_embeddings\": " +
           "expected a positive integer");
  }
  s.original_max_positions = r.positive_int(*original, key + ".original_max_position_embeddings");
  if (!(s.low_freq_factor < s.high_freq_factor)) {
    r.fail("\"" + key + "\": low_freq_factor " + std::to_string(s.low_freq_factor) +
           " is not below high_freq_factor " + std::to_string(s.high_freq_factor) +
           ": expected low_freq_factor < high_freq_factor");
  }
  return s;
}

// The Mixture-of-Experts keys of a family with experts in every layer.
void read_moe(const ConfigReader& r, const MoeNames& names, ModelConfig& c) {
  const std::string experts_key(names.experts_key), alias(names.experts_alias_key);
  if (r.find(experts_key) != nullptr || alias.empty()) {
    c.n_experts = r.required_int(experts_key);
  } else {
    if (r.find(alias) == nullptr) {
      r.fail("\"" + experts_key + "\" (or \"" + alias + "\") is missing: expected the number " +
             "of experts, a positive integer");
    }
    c.n_experts = r.required_int(alias);
  }
  c.n_experts_used = r.required_int(std::string(names.used_key));
  c.expert_ffn_dim = r.required_int(std::string(names.expert_ffn_key));
  c.norm_topk_prob =
      names.norm_topk_key.empty() || r.optional_bool(std::string(names.norm_topk_key), false);
  // Qwen3-MoE may keep some layers dense; bitexact runs experts in every layer.
  if (r.optional_int("decoder_sparse_step", 1) != 1) {
    r.fail("\"decoder_sparse_step\" is " +
           std::to_string(r.optional_int("decoder_sparse_step", 1)) +
           ": layers without experts are not supported, expected 1");
  }
  if (const json* dense = r.find("mlp_only_layers"); dense != nullptr) {
    if (!dense->is_array() || !dense->empty()) {
      r.fail("\"mlp_only_layers\" is " + dense->dump().substr(0, 40) +
             ": layers without experts are not supported, expected []");
    }
  }
  for (const std::string key : {"shared_expert_intermediate_size", "n_shared_experts"}) {
    const json* v = r.find(key);
    if (v != nullptr && !(v->is_number() && v->get<double>() == 0)) {
      std::string message = "\"";
      message += key;
      message += "\" is " + v->dump().substr(0, 40);
      message += ": shared experts are not supported, expected none";
      r.fail(message);
    }
  }
}

// Gemma 3's keys (transformers' Gemma3TextConfig, old and new forms): the sliding window and which
// layers use it (layer_types, else sliding_window_pattern, default 6), the RoPE of each kind of
// layer (rope_parameters.{full_attention, sliding_attention}, else rope_theta / rope_scaling and
// rope_local_base_freq), query_pre_attn_scalar, and the refusals (softcapping, bidirectional).
void read_gemma3(const ConfigReader& r, ModelConfig& c) {
  for (const std::string key : {"attn_logit_softcapping", "final_logit_softcapping"}) {
    if (const json* v = r.find(key); v != nullptr) {
      r.fail("\"" + key + "\" is " + v->dump().substr(0, 40) +
             ": logit softcapping is not supported, expected null");
    }
  }
  if (r.optional_bool("use_bidirectional_attention", false)) {
    r.fail("\"use_bidirectional_attention\" is true: only causal attention is supported, " +
           std::string("expected false"));
  }
  c.sliding_window = r.optional_int("sliding_window", 4096);  // transformers' default
  c.windowed.assign(static_cast<size_t>(c.n_layers), 0);
  if (const json* types = r.find("layer_types"); types != nullptr) {
    if (!types->is_array() || types->size() != static_cast<size_t>(c.n_layers)) {
      r.fail("\"layer_types\" is " + types->dump().substr(0, 60) + ": expected a list of " +
             std::to_string(c.n_layers) + " (num_hidden_layers) layer types");
    }
    for (size_t l = 0; l < types->size(); ++l) {
      const json& t = (*types)[l];
      const bool sliding = t.is_string() && t.get<std::string>() == "sliding_attention";
      if (!sliding && !(t.is_string() && t.get<std::string>() == "full_attention")) {
        r.fail("\"layer_types\"[" + std::to_string(l) + "] is " + t.dump().substr(0, 40) +
               ": expected \"sliding_attention\" or \"full_attention\"");
      }
      c.windowed[l] = sliding ? 1 : 0;
    }
  } else {
    const int period = r.optional_int("sliding_window_pattern", 6);
    for (int l = 0; l < c.n_layers; ++l) c.windowed[static_cast<size_t>(l)] = (l + 1) % period != 0;
  }
  // RoPE: theta (default 1e6) and scaling for the full-attention layers, theta (default 1e4)
  // without scaling for the sliding ones.
  c.rope_theta = r.optional_number("rope_theta", 1000000.0);
  c.rope_local_theta = r.optional_number("rope_local_base_freq", 10000.0);
  if (const json* rs = r.find("rope_scaling"); rs != nullptr) {
    c.rope_scaling = read_rope_scaling(r, *rs, "rope_scaling");
  }
  if (const json* rp = r.find("rope_parameters"); rp != nullptr) {
    if (!rp->is_object()) {
      r.fail("\"rope_parameters\" is " + json_type_name(*rp) +
             ": expected an object of full_attention and sliding_attention parameters");
    }
    for (const std::string kind : {"full_attention", "sliding_attention"}) {
      const json* p = r.find(*rp, kind);
      if (p == nullptr) continue;
      const std::string key = "rope_parameters." + kind;
      const bool full = kind == "full_attention";
      if (r.find(*p, "rope_theta") != nullptr) {
        (full ? c.rope_theta : c.rope_local_theta) =
            r.positive_number(*r.find(*p, "rope_theta"), key + ".rope_theta");
      }
      const RopeScaling scaling = read_rope_scaling(r, *p, key);
      if (full) {
        c.rope_scaling = scaling;
      } else if (scaling.kind != RopeScaling::Kind::none) {
        r.fail("\"" + key + "\" scales RoPE: scaling of the sliding-window layers is not " +
               "supported, expected rope_type \"default\"");
      }
    }
  }
  const int scalar = r.optional_int("query_pre_attn_scalar", 256);
  c.attention_scale = static_cast<float>(std::pow(static_cast<double>(scalar), -0.5));
  // transformers: torch.tensor(hidden_size ** 0.5), a float32; the loader rounds it to the
  // embedding's dtype as Gemma3TextScaledWordEmbedding does (model/hf_loader.cpp).
  c.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.dim)));
  c.post_norms = true;
  c.gelu_tanh_mlp = true;
}

}  // namespace

const std::vector<std::string>& supported_hf_architectures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Architecture& a : architectures()) v.emplace_back(a.hf_class);
    return v;
  }();
  return names;
}

ModelConfig parse_hf_config(std::string_view text, const std::string& name) {
  const json root = parse_json_strict(text, name, kMaxConfigDepth);
  ConfigReader r(root, name);
  if (!root.is_object()) r.fail("config is " + json_type_name(root) + ": expected a JSON object");

  const json* archs = r.find("architectures");
  if (archs == nullptr) {
    r.fail("\"architectures\" is missing: expected one of " + architecture_list());
  }
  if (!archs->is_array() || archs->size() != 1 || !(*archs)[0].is_string()) {
    r.fail("\"architectures\" is " + archs->dump().substr(0, 80) +
           ": expected a list of one name, one of " + architecture_list());
  }
  ModelConfig c;
  c.architecture = (*archs)[0].get<std::string>();
  const Architecture* arch = find_hf_architecture(c.architecture);
  if (arch == nullptr) {
    r.fail("unsupported architecture \"" + c.architecture.substr(0, 80) + "\": supported are " +
           architecture_list());
  }

  if (r.find("quantization_config") != nullptr) {
    r.fail("\"quantization_config\" is present: quantized checkpoints are not supported, " +
           std::string("expected F32, F16 or BF16 weights"));
  }
  const std::string activation = arch->gelu_tanh_mlp ? "gelu_pytorch_tanh" : "silu";
  for (const std::string key : {"hidden_act", "hidden_activation"}) {
    const json* act = r.find(key);
    if (act == nullptr || (key == "hidden_activation" && !arch->gelu_tanh_mlp)) continue;
    if (!act->is_string() || act->get<std::string>() != activation) {
      r.fail("\"" + key + "\" is " + act->dump().substr(0, 40) + ": expected \"" + activation +
             "\"");
    }
  }
  for (const DimensionKey& k : dimension_keys()) c.*k.field = r.required_int(std::string(k.hf));
  c.n_kv_heads = r.optional_int(std::string(kHfKvHeads), c.n_heads);
  if (r.find(std::string(kHfHeadDim)) != nullptr) {
    c.head_dim = r.optional_int(std::string(kHfHeadDim), 0);
  } else {
    if (c.dim % c.n_heads != 0) {
      r.fail("\"hidden_size\" " + std::to_string(c.dim) + " is not a multiple of " +
             "\"num_attention_heads\" " + std::to_string(c.n_heads) + " and there is no " +
             "\"head_dim\": expected one of them");
    }
    c.head_dim = c.dim / c.n_heads;
  }
  c.rms_eps = static_cast<float>(r.optional_number(std::string(kHfRmsEps), 1e-6));
  c.rope_layout = arch->hf_rope_layout;

  // rope_theta and rope_scaling, or (newer transformers) both inside rope_parameters.
  c.rope_theta = r.optional_number(std::string(kHfRopeTheta), 10000.0);
  if (arch->sliding_window == SlidingWindow::per_layer) {
    read_gemma3(r, c);
  } else if (const json* rp = r.find("rope_parameters"); rp != nullptr) {
    if (rp->is_object() && r.find(*rp, "rope_theta") != nullptr) {
      c.rope_theta = r.positive_number(*r.find(*rp, "rope_theta"), "rope_parameters.rope_theta");
    }
    c.rope_scaling = read_rope_scaling(r, *rp, "rope_parameters");
  }
  if (const json* rs = r.find("rope_scaling");
      rs != nullptr && arch->sliding_window != SlidingWindow::per_layer) {
    c.rope_scaling = read_rope_scaling(r, *rs, "rope_scaling");
  }
  if (const json* prf = r.find("partial_rotary_factor"); prf != nullptr) {
    if (!prf->is_number() || prf->get<double>() != 1.0) {
      r.fail("\"partial_rotary_factor\" is " + prf->dump().substr(0, 40) +
             ": partial rotary embeddings are not supported, expected 1");
    }
  }

  // Gemma 3 ties by default (transformers' Gemma3TextConfig); the others do not.
  c.tied_output = r.optional_bool("tie_word_embeddings", arch->scaled_embedding);
  if (arch->refuses_mlp_bias && r.optional_bool("mlp_bias", false)) {
    r.fail("\"mlp_bias\" is true: MLP biases are not supported, expected false");
  }
  const auto present = [&](Presence p) {
    return p == Presence::always ||
           (p == Presence::attention_bias && r.optional_bool("attention_bias", false));
  };
  c.qkv_bias = present(arch->qkv_bias);
  c.output_bias = present(arch->output_bias);
  c.qk_norm = arch->qk_norm;

  if (arch->moe != nullptr) read_moe(r, *arch->moe, c);

  // Sliding-window attention equals full attention below the window: cap the context there.
  const bool always_window = arch->sliding_window == SlidingWindow::always;
  const bool window_used = always_window || arch->sliding_window == SlidingWindow::when_set ||
                           (arch->sliding_window == SlidingWindow::use_sliding_window &&
                            r.optional_bool("use_sliding_window", false));
  // A Mistral config without the key gets transformers' default window, 4096; null is none.
  const int default_window = always_window && !root.contains("sliding_window") ? 4096 : 0;
  if (window_used && (r.find("sliding_window") != nullptr || default_window > 0)) {
    const int window = r.optional_int("sliding_window", default_window);
    if (window < c.context_length) c.context_length = window;
  }

  if (const json* bos = r.find("bos_token_id"); bos != nullptr) {
    c.bos_token_id = r.token_id(*bos, "bos_token_id");
  }
  if (const json* eos = r.find("eos_token_id"); eos != nullptr) {
    if (eos->is_array()) {
      for (const json& id : *eos) c.eos_token_ids.push_back(r.token_id(id, "eos_token_id"));
    } else {
      c.eos_token_ids.push_back(r.token_id(*eos, "eos_token_id"));
    }
  }
  for (int32_t id : c.eos_token_ids) {
    if (id >= c.vocab_size) {
      r.fail("\"eos_token_id\" " + std::to_string(id) + " is outside the vocabulary of " +
             std::to_string(c.vocab_size) + ": expected an id below vocab_size");
    }
  }
  if (c.bos_token_id >= c.vocab_size) {
    r.fail("\"bos_token_id\" " + std::to_string(c.bos_token_id) + " is outside the vocabulary of " +
           std::to_string(c.vocab_size) + ": expected an id below vocab_size");
  }
  try {
    c.validate();
  } catch (const Error& e) {
    r.fail(e.what());
  }
  return c;
}

}  // namespace bx
