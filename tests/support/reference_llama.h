// A plain float64 Llama forward pass, the yardstick for the engine's accuracy tests (T2) and the
// independent check behind the golden ids (T4). Test code only.
//
// It reads the weights straight from a GGUF file (gguf::File + dequantize_to_f32, then widened to
// double) and does every step in double, in the most obvious order, with no cache and no
// cleverness. It shares no code with the engine beyond the GGUF reader and its dequantizer:
//
//   x = token_embd[tokens]                                         [T, D]
//   for each layer l:
//     h = rmsnorm(x) * attn_norm                                   x / sqrt(mean(x^2) + eps) * w
//     q = h Wq^T [T, H*Dh],  k = h Wk^T, v = h Wv^T [T, Hkv*Dh]
//     rope(q), rope(k): pair (2i, 2i+1) of a head at position p turns by p * theta^(-2i/Dh)
//     a[t, h] = sum_{s <= t} softmax_s(q[t,h] . k[s,g] / sqrt(Dh)) v[s,g],  g = h / (H / Hkv)
//     x += a Wo^T
//     h = rmsnorm(x) * ffn_norm
//     x += (silu(h Wg^T) * (h Wu^T)) Wd^T                          silu(z) = z / (1 + e^-z)
//   logits = (rmsnorm(x) * output_norm) Wout^T                     [T, V]; Wout = token_embd if
//                                                                  output.weight is absent
//
// GGUF stores a matrix W[N][K] (y = W x) row-major with dims {K, N}: dims[0] varies fastest.
//
// It also reads a Hugging Face folder (config.json read here with nlohmann::json, weights through
// safetensors::Checkpoint + convert_to_f32), with what those architectures add, written the way
// transformers writes it:
//   q = h Wq^T + bq, k = h Wk^T + bk, v = h Wv^T + bv       (Qwen2; attention_bias)
//   q[h] = rmsnorm(q[h]) * q_norm, k[g] = rmsnorm(k[g]) * k_norm, per head   (Qwen3)
//   rotate-half RoPE: x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[half:], x[:half]),
//     cos/sin = cat(cos(p f), cos(p f)) over the Dh/2 frequencies f_i
//   llama3 rope_scaling of f_i (see rope_frequency below)
//   x += a Wo^T + bo                                          (attention_bias)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"
#include "model/safetensors.h"

namespace bx::test {

struct ReferenceConfig {
  int64_t vocab_size = 0;  // V
  int64_t dim = 0;         // D
  int64_t n_layers = 0;    // L
  int64_t n_heads = 0;     // H
  int64_t n_kv_heads = 0;  // Hkv
  int64_t head_dim = 0;    // Dh
  int64_t ffn_dim = 0;     // F
  int64_t context_length = 0;
  double rms_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tied_output = false;
  // Hugging Face folders only:
  bool rotate_half = false;  // RoPE pairs (i, i + Dh/2) instead of (2i, 2i+1)
  bool qk_norm = false;      // per-head RMSNorm of q and k before RoPE
  bool llama3 = false;       // llama3 rope_scaling, with these parameters
  double llama3_factor = 1.0;
  double llama3_low_freq_factor = 1.0;
  double llama3_high_freq_factor = 4.0;
  double llama3_original_context = 8192.0;
};

// A weight matrix W[rows][cols] in double, row-major (rows = N outputs, cols = K inputs).
struct RefMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> w;
  const double* row(int64_t r) const { return w.data() + r * cols; }
};

class ReferenceLlama {
 public:
  struct Layer {
    std::vector<double> attn_norm;   // [D]
    RefMatrix wq, wk, wv, wo;        // [H*Dh, D], [Hkv*Dh, D], [Hkv*Dh, D], [D, H*Dh]
    std::vector<double> bq, bk, bv, bo;  // biases [H*Dh], [Hkv*Dh], [Hkv*Dh], [D]; empty if none
    std::vector<double> q_norm, k_norm;  // [Dh] per-head norm weights; empty if none
    std::vector<double> ffn_norm;    // [D]
    RefMatrix w_gate, w_up, w_down;  // [F, D], [F, D], [D, F]
  };

  // One greedy step: the chosen id (argmax, ties to the lowest id), its log-softmax, and the
  // margin between the best and the second-best logit (how close the choice was to a tie).
  struct GreedyStep {
    int32_t id = 0;
    double logprob = 0.0;
    double margin = 0.0;
  };

  // A GGUF file, or a directory holding a Hugging Face model.
  explicit ReferenceLlama(const std::string& path) {
    if (std::filesystem::is_directory(path)) {
      read_hf(path);
      return;
    }
    gguf::File file = gguf::File::open(path);
    read_config(file);
    token_embd_ = read_matrix(file, "token_embd.weight", c_.vocab_size, c_.dim);
    output_norm_ = read_vector(file, "output_norm.weight", c_.dim);
    c_.tied_output = file.find_tensor("output.weight") == nullptr;
    if (!c_.tied_output) output_ = read_matrix(file, "output.weight", c_.vocab_size, c_.dim);
    const int64_t q_dim = c_.n_heads * c_.head_dim;
    const int64_t kv_dim = c_.n_kv_heads * c_.head_dim;
    for (int64_t l = 0; l < c_.n_layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      Layer layer;
      layer.attn_norm = read_vector(file, p + "attn_norm.weight", c_.dim);
      layer.wq = read_matrix(file, p + "attn_q.weight", q_dim, c_.dim);
      layer.wk = read_matrix(file, p + "attn_k.weight", kv_dim, c_.dim);
      layer.wv = read_matrix(file, p + "attn_v.weight", kv_dim, c_.dim);
      layer.wo = read_matrix(file, p + "attn_output.weight", c_.dim, q_dim);
      layer.ffn_norm = read_vector(file, p + "ffn_norm.weight", c_.dim);
      layer.w_gate = read_matrix(file, p + "ffn_gate.weight", c_.ffn_dim, c_.dim);
      layer.w_up = read_matrix(file, p + "ffn_up.weight", c_.ffn_dim, c_.dim);
      layer.w_down = read_matrix(file, p + "ffn_down.weight", c_.dim, c_.ffn_dim);
      layers_.push_back(std::move(layer));
    }
  }

  const ReferenceConfig& config() const { return c_; }
  // For negative controls: a test switches a feature off (rotate_half, qk_norm, llama3, a bias)
  // to show that the comparison notices it.
  ReferenceConfig& mutable_config() { return c_; }
  std::vector<Layer>& mutable_layers() { return layers_; }

  // Logits [T][V] at every position of one sequence, token t at position t.
  std::vector<std::vector<double>> forward(std::span<const int32_t> tokens) const {
    const int64_t T = static_cast<int64_t>(tokens.size());
    const int64_t D = c_.dim, H = c_.n_heads, Hkv = c_.n_kv_heads, Dh = c_.head_dim;
    const int64_t group = H / Hkv;  // query heads per kv head
    const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));

    // x = token_embd[tokens]
    std::vector<std::vector<double>> x(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      const int32_t id = tokens[static_cast<size_t>(t)];
      check(id >= 0 && id < c_.vocab_size,
            "reference: token id " + std::to_string(id) + " out of range");
      x[static_cast<size_t>(t)].assign(token_embd_.row(id), token_embd_.row(id) + D);
    }

    for (const Layer& layer : layers_) {
      // Attention block. q [T][H*Dh], k, v [T][Hkv*Dh].
      std::vector<std::vector<double>> q(static_cast<size_t>(T)), k(static_cast<size_t>(T)),
          v(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t) {
        const std::vector<double> h = rmsnorm(x[static_cast<size_t>(t)], layer.attn_norm);
        q[static_cast<size_t>(t)] = matvec(layer.wq, h);
        k[static_cast<size_t>(t)] = matvec(layer.wk, h);
        v[static_cast<size_t>(t)] = matvec(layer.wv, h);
        if (!layer.bq.empty()) {
          add_inplace(q[static_cast<size_t>(t)], layer.bq);
          add_inplace(k[static_cast<size_t>(t)], layer.bk);
          add_inplace(v[static_cast<size_t>(t)], layer.bv);
        }
        if (c_.qk_norm) {
          norm_heads(q[static_cast<size_t>(t)], H, layer.q_norm);
          norm_heads(k[static_cast<size_t>(t)], Hkv, layer.k_norm);
        }
        rope(q[static_cast<size_t>(t)], H, t);
        rope(k[static_cast<size_t>(t)], Hkv, t);
      }
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> a(static_cast<size_t>(H * Dh), 0.0);  // [H*Dh]
        for (int64_t hd = 0; hd < H; ++hd) {
          const int64_t g = hd / group;
          const double* qh = q[static_cast<size_t>(t)].data() + hd * Dh;
          // s_j = q . k_j / sqrt(Dh) for j <= t; p = softmax(s); a = sum_j p_j v_j
          std::vector<double> s(static_cast<size_t>(t + 1));
          double s_max = -std::numeric_limits<double>::infinity();
          for (int64_t j = 0; j <= t; ++j) {
            const double* kj = k[static_cast<size_t>(j)].data() + g * Dh;
            double dot = 0.0;
            for (int64_t d = 0; d < Dh; ++d) dot += qh[d] * kj[d];
            s[static_cast<size_t>(j)] = dot * scale;
            s_max = std::max(s_max, s[static_cast<size_t>(j)]);
          }
          double sum = 0.0;
          for (double& sj : s) {
            sj = std::exp(sj - s_max);
            sum += sj;
          }
          double* ah = a.data() + hd * Dh;
          for (int64_t j = 0; j <= t; ++j) {
            const double p = s[static_cast<size_t>(j)] / sum;
            const double* vj = v[static_cast<size_t>(j)].data() + g * Dh;
            for (int64_t d = 0; d < Dh; ++d) ah[d] += p * vj[d];
          }
        }
        std::vector<double> o = matvec(layer.wo, a);
        if (!layer.bo.empty()) add_inplace(o, layer.bo);
        add_inplace(x[static_cast<size_t>(t)], o);
      }
      // MLP block: x += down(silu(gate(h)) * up(h)).
      for (int64_t t = 0; t < T; ++t) {
        const std::vector<double> h = rmsnorm(x[static_cast<size_t>(t)], layer.ffn_norm);
        std::vector<double> gate = matvec(layer.w_gate, h);
        const std::vector<double> up = matvec(layer.w_up, h);
        for (size_t i = 0; i < gate.size(); ++i) {
          gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
        }
        add_inplace(x[static_cast<size_t>(t)], matvec(layer.w_down, gate));
      }
    }

    const RefMatrix& out = c_.tied_output ? token_embd_ : output_;
    std::vector<std::vector<double>> logits(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      logits[static_cast<size_t>(t)] =
          matvec(out, rmsnorm(x[static_cast<size_t>(t)], output_norm_));
    }
    return logits;
  }

  // log_softmax(z)_i = z_i - max(z) - log(sum_j exp(z_j - max(z)))
  static std::vector<double> log_softmax(const std::vector<double>& z) {
    const double z_max = *std::max_element(z.begin(), z.end());
    double sum = 0.0;
    for (double zi : z) sum += std::exp(zi - z_max);
    const double log_sum = std::log(sum);
    std::vector<double> out(z.size());
    for (size_t i = 0; i < z.size(); ++i) out[i] = (z[i] - z_max) - log_sum;
    return out;
  }

  // The first index of the largest value (ties to the lowest id) and its margin over the runner-up.
  static GreedyStep argmax(const std::vector<double>& z) {
    GreedyStep step;
    size_t best = 0;
    for (size_t i = 1; i < z.size(); ++i) {
      if (z[i] > z[best]) best = i;
    }
    double second = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < z.size(); ++i) {
      if (i != best) second = std::max(second, z[i]);
    }
    step.id = static_cast<int32_t>(best);
    step.margin = z[best] - second;
    step.logprob = log_softmax(z)[best];
    return step;
  }

  // Greedy decoding: n_new tokens after `prompt`, each the argmax of the last position's logits.
  // Recomputes the whole sequence every step (slow, obviously right). Stops early at eos_id
  // if eos_id >= 0.
  std::vector<GreedyStep> greedy(std::vector<int32_t> prompt, int n_new,
                                 int32_t eos_id = -1) const {
    std::vector<GreedyStep> steps;
    for (int i = 0; i < n_new; ++i) {
      const std::vector<std::vector<double>> logits = forward(prompt);
      const GreedyStep step = argmax(logits.back());
      steps.push_back(step);
      prompt.push_back(step.id);
      if (step.id == eos_id) break;
    }
    return steps;
  }

 private:
  // x / sqrt(mean(x^2) + eps) * w
  std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& w) const {
    double ss = 0.0;
    for (double xi : x) ss += xi * xi;
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + c_.rms_eps);
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * r * w[i];
    return out;
  }

  // y = W x:  y[n] = sum_k W[n][k] x[k]
  static std::vector<double> matvec(const RefMatrix& m, const std::vector<double>& x) {
    std::vector<double> y(static_cast<size_t>(m.rows));
    for (int64_t n = 0; n < m.rows; ++n) {
      const double* wn = m.row(n);
      double acc = 0.0;
      for (int64_t kk = 0; kk < m.cols; ++kk) acc += wn[kk] * x[static_cast<size_t>(kk)];
      y[static_cast<size_t>(n)] = acc;
    }
    return y;
  }

  static void add_inplace(std::vector<double>& y, const std::vector<double>& x) {
    for (size_t i = 0; i < y.size(); ++i) y[i] += x[i];
  }

  // Frequency of pair i: theta^(-2i/Dh), then, with llama3 scaling, as transformers'
  // _compute_llama3_parameters: wavelength w = 2 pi / f; w < L / high_freq_factor keeps f,
  // w > L / low_freq_factor gives f / factor, and in between
  // f' = (1 - s) f / factor + s f with s = (L / w - low_freq_factor) / (high - low).
  double rope_frequency(int64_t i) const {
    const double f =
        std::pow(c_.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(c_.head_dim));
    if (!c_.llama3) return f;
    const double wavelength = 2.0 * 3.14159265358979323846 / f;
    const double L = c_.llama3_original_context;
    if (wavelength < L / c_.llama3_high_freq_factor) return f;
    if (wavelength > L / c_.llama3_low_freq_factor) return f / c_.llama3_factor;
    const double smooth = (L / wavelength - c_.llama3_low_freq_factor) /
                          (c_.llama3_high_freq_factor - c_.llama3_low_freq_factor);
    return (1.0 - smooth) * f / c_.llama3_factor + smooth * f;
  }

  // GGUF llama layout: within each head, pair (2i, 2i+1) turns by angle pos * f_i.
  // Hugging Face layout: out = x * cos + rotate_half(x) * sin over the head, with
  // cos[d] = cos(pos f_{d mod Dh/2}) and rotate_half(x) = cat(-x[Dh/2:], x[:Dh/2]).
  void rope(std::vector<double>& x, int64_t n_heads, int64_t pos) const {
    const int64_t Dh = c_.head_dim, half = Dh / 2;
    for (int64_t hd = 0; hd < n_heads; ++hd) {
      double* xh = x.data() + hd * Dh;
      if (c_.rotate_half) {
        std::vector<double> rotated(static_cast<size_t>(Dh));
        for (int64_t d = 0; d < Dh; ++d)
          rotated[static_cast<size_t>(d)] = d < half ? -xh[d + half] : xh[d - half];
        for (int64_t d = 0; d < Dh; ++d) {
          const double angle = static_cast<double>(pos) * rope_frequency(d % half);
          xh[d] = xh[d] * std::cos(angle) + rotated[static_cast<size_t>(d)] * std::sin(angle);
        }
        continue;
      }
      for (int64_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(pos) * rope_frequency(i);
        const double c = std::cos(angle), s = std::sin(angle);
        const double x0 = xh[2 * i], x1 = xh[2 * i + 1];
        xh[2 * i] = x0 * c - x1 * s;
        xh[2 * i + 1] = x0 * s + x1 * c;
      }
    }
  }

  // Each head of x [n_heads * Dh]: x[h] / sqrt(mean(x[h]^2) + eps) * w.
  void norm_heads(std::vector<double>& x, int64_t n_heads, const std::vector<double>& w) const {
    const size_t Dh = static_cast<size_t>(c_.head_dim);
    for (size_t hd = 0; hd < static_cast<size_t>(n_heads); ++hd) {
      const std::vector<double> head(x.begin() + static_cast<std::ptrdiff_t>(hd * Dh),
                                     x.begin() + static_cast<std::ptrdiff_t>((hd + 1) * Dh));
      const std::vector<double> normed = rmsnorm(head, w);
      std::copy(normed.begin(), normed.end(), x.begin() + static_cast<std::ptrdiff_t>(hd * Dh));
    }
  }

  // --- Hugging Face folders ---

  void read_hf(const std::string& dir) {
    std::ifstream in(dir + "/config.json");
    check(in.good(), "reference: cannot open " + dir + "/config.json");
    std::stringstream text;
    text << in.rdbuf();
    const nlohmann::json j = nlohmann::json::parse(text.str());
    const std::string arch = j.at("architectures").at(0).get<std::string>();
    check(arch == "LlamaForCausalLM" || arch == "MistralForCausalLM" ||
              arch == "Qwen2ForCausalLM" || arch == "Qwen3ForCausalLM",
          "reference: unknown architecture " + arch);
    auto get_or = [&](const char* key, double fallback) {
      return j.contains(key) && !j[key].is_null() ? j[key].get<double>() : fallback;
    };
    c_.dim = j.at("hidden_size").get<int64_t>();
    c_.ffn_dim = j.at("intermediate_size").get<int64_t>();
    c_.n_layers = j.at("num_hidden_layers").get<int64_t>();
    c_.n_heads = j.at("num_attention_heads").get<int64_t>();
    c_.n_kv_heads =
        static_cast<int64_t>(get_or("num_key_value_heads", static_cast<double>(c_.n_heads)));
    c_.head_dim =
        static_cast<int64_t>(get_or("head_dim", static_cast<double>(c_.dim / c_.n_heads)));
    c_.vocab_size = j.at("vocab_size").get<int64_t>();
    c_.context_length = j.at("max_position_embeddings").get<int64_t>();
    c_.rms_eps = get_or("rms_norm_eps", 1e-6);
    c_.rope_theta = get_or("rope_theta", 10000.0);
    c_.tied_output = j.value("tie_word_embeddings", false);
    c_.rotate_half = true;
    c_.qk_norm = arch == "Qwen3ForCausalLM";
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
      const nlohmann::json& rs = j["rope_scaling"];
      check(rs.value("rope_type", rs.value("type", "")) == "llama3",
            "reference: only llama3 rope_scaling is implemented");
      c_.llama3 = true;
      c_.llama3_factor = rs.at("factor").get<double>();
      c_.llama3_low_freq_factor = rs.at("low_freq_factor").get<double>();
      c_.llama3_high_freq_factor = rs.at("high_freq_factor").get<double>();
      c_.llama3_original_context = rs.at("original_max_position_embeddings").get<double>();
    }
    const bool qkv_bias = arch == "Qwen2ForCausalLM" || j.value("attention_bias", false);
    const bool o_bias = arch != "Qwen2ForCausalLM" && j.value("attention_bias", false);

    const safetensors::Checkpoint ckpt = safetensors::Checkpoint::open(dir);
    auto tensor = [&](const std::string& name, std::vector<int64_t> shape) {
      const auto e = ckpt.find(name);
      check(e.has_value(), "reference: tensor " + name + " missing");
      check(e->info->shape == shape, "reference: tensor " + name + " has unexpected shape");
      std::vector<float> f32(static_cast<size_t>(e->info->n_elements));
      safetensors::convert_to_f32(*e->info, e->file->tensor_data(*e->info), f32.data());
      return std::vector<double>(f32.begin(), f32.end());
    };
    auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
      RefMatrix m;
      m.rows = rows;
      m.cols = cols;
      m.w = tensor(name, {rows, cols});
      return m;
    };
    const int64_t D = c_.dim, F = c_.ffn_dim, V = c_.vocab_size, Dh = c_.head_dim;
    const int64_t Q = c_.n_heads * Dh, KV = c_.n_kv_heads * Dh;
    token_embd_ = matrix("model.embed_tokens.weight", V, D);
    output_norm_ = tensor("model.norm.weight", {D});
    if (!c_.tied_output) output_ = matrix("lm_head.weight", V, D);
    for (int64_t l = 0; l < c_.n_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      Layer layer;
      layer.attn_norm = tensor(p + "input_layernorm.weight", {D});
      layer.wq = matrix(p + "self_attn.q_proj.weight", Q, D);
      layer.wk = matrix(p + "self_attn.k_proj.weight", KV, D);
      layer.wv = matrix(p + "self_attn.v_proj.weight", KV, D);
      layer.wo = matrix(p + "self_attn.o_proj.weight", D, Q);
      if (qkv_bias) {
        layer.bq = tensor(p + "self_attn.q_proj.bias", {Q});
        layer.bk = tensor(p + "self_attn.k_proj.bias", {KV});
        layer.bv = tensor(p + "self_attn.v_proj.bias", {KV});
      }
      if (o_bias) layer.bo = tensor(p + "self_attn.o_proj.bias", {D});
      if (c_.qk_norm) {
        layer.q_norm = tensor(p + "self_attn.q_norm.weight", {Dh});
        layer.k_norm = tensor(p + "self_attn.k_norm.weight", {Dh});
      }
      layer.ffn_norm = tensor(p + "post_attention_layernorm.weight", {D});
      layer.w_gate = matrix(p + "mlp.gate_proj.weight", F, D);
      layer.w_up = matrix(p + "mlp.up_proj.weight", F, D);
      layer.w_down = matrix(p + "mlp.down_proj.weight", D, F);
      layers_.push_back(std::move(layer));
    }
  }

  static uint64_t get_uint_or(const gguf::File& f, std::string_view key, uint64_t fallback) {
    return f.has(key) ? f.get_uint(key) : fallback;
  }

  void read_config(const gguf::File& f) {
    check(f.get_string("general.architecture") == "llama",
          "reference: general.architecture must be \"llama\"");
    c_.dim = static_cast<int64_t>(f.get_uint("llama.embedding_length"));
    c_.n_layers = static_cast<int64_t>(f.get_uint("llama.block_count"));
    c_.ffn_dim = static_cast<int64_t>(f.get_uint("llama.feed_forward_length"));
    c_.n_heads = static_cast<int64_t>(f.get_uint("llama.attention.head_count"));
    c_.n_kv_heads = static_cast<int64_t>(
        get_uint_or(f, "llama.attention.head_count_kv", static_cast<uint64_t>(c_.n_heads)));
    c_.rms_eps = f.get_float("llama.attention.layer_norm_rms_epsilon");
    c_.rope_theta = f.has("llama.rope.freq_base") ? f.get_float("llama.rope.freq_base") : 10000.0;
    c_.context_length = static_cast<int64_t>(f.get_uint("llama.context_length"));
    check(c_.n_heads > 0 && c_.dim % c_.n_heads == 0, "reference: dim % head_count != 0");
    check(c_.n_kv_heads > 0 && c_.n_heads % c_.n_kv_heads == 0,
          "reference: head_count % head_count_kv != 0");
    c_.head_dim = c_.dim / c_.n_heads;
    check(c_.head_dim % 2 == 0, "reference: head_dim must be even");
    check(get_uint_or(f, "llama.rope.dimension_count", static_cast<uint64_t>(c_.head_dim)) ==
              static_cast<uint64_t>(c_.head_dim),
          "reference: only full-head RoPE (rope.dimension_count == head_dim) is implemented");
    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    check(embd != nullptr && embd->dims.size() == 2, "reference: token_embd.weight missing");
    c_.vocab_size = embd->dims[1];
  }

  static std::vector<double> read_tensor(const gguf::File& f, const std::string& name,
                                         std::vector<int64_t> dims) {
    const gguf::TensorInfo* info = f.find_tensor(name);
    check(info != nullptr, "reference: tensor " + name + " missing");
    // Trailing 1-dims are allowed (some writers store a vector as {D, 1}).
    std::vector<int64_t> got = info->dims;
    while (got.size() > dims.size() && got.back() == 1) got.pop_back();
    check(got == dims, "reference: tensor " + name + " has unexpected dims");
    std::vector<float> f32(static_cast<size_t>(info->n_elements));
    gguf::dequantize_to_f32(*info, f.tensor_data(*info), f32.data());
    return std::vector<double>(f32.begin(), f32.end());
  }

  static std::vector<double> read_vector(const gguf::File& f, const std::string& name, int64_t n) {
    return read_tensor(f, name, {n});
  }

  // GGUF dims {K, N} for W[N][K].
  static RefMatrix read_matrix(const gguf::File& f, const std::string& name, int64_t rows,
                               int64_t cols) {
    RefMatrix m;
    m.rows = rows;
    m.cols = cols;
    m.w = read_tensor(f, name, {cols, rows});
    return m;
  }

  ReferenceConfig c_;
  RefMatrix token_embd_;             // [V, D]
  std::vector<double> output_norm_;  // [D]
  RefMatrix output_;                 // [V, D], empty when tied
  std::vector<Layer> layers_;
};

}  // namespace bx::test
