// Test support: every Backend op as a case, in the spirit of llama.cpp's test-backend-ops. A case
// holds its host inputs, runs its op on any Backend through the interface alone (set-up,
// begin_batch, the op, copy_to_host), and computes the same outputs with a plain scalar loop in
// double precision. tests/unit/backend_ops_test.cpp checks the CPU backend against the references;
// tests/cuda/backend_ops_cuda_test.cpp checks the CUDA backend against the CPU backend.
//
// The batch every case runs under: two sequences, A with 7 tokens at positions 0..6 (KV blocks
// 0, 1) and B with 5 tokens at positions 0..4 (blocks 2, 3), block size 4, so attention crosses
// blocks; logit rows {6, 11} (each sequence's last token).
//
// Inputs of the GEMM cases are small integers and halves (|x| <= 8, |w| <= 4): every product and
// partial sum is exact in f32 and in bf16 inputs, so any correct backend gives the exact result,
// bit for bit (bounds 0); the epilogues with exp (swiglu) and the rows kernels get relative
// bounds. Errors are measured per output as max |got - want| / max |want|.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "core/half.h"
#include "kernels/quant.h"
#include "kernels/rope.h"
#include "support/random_model.h"

namespace bx::test {

using HostOutputs = std::vector<std::vector<double>>;

struct BackendOpCase {
  std::string name;
  // Runs the op on `be` (a fresh backend) and returns its outputs, each [rows * cols] row-major.
  std::function<HostOutputs(Backend& be)> run;
  // The same outputs from the scalar reference.
  std::function<HostOutputs()> reference;
  double cpu_bound = 0;   // CPU against the reference
  double cuda_bound = 0;  // CUDA against the CPU
  // A quantized input the CUDA backend cannot hold (can_hold_blocks): the CPU only.
  bool cpu_only = false;
};

// The largest |got - want| / max |want| over the outputs (0 when both are all zeros; +inf when
// the shapes differ or a value is not finite where the other is).
inline double max_relative_error(const HostOutputs& got, const HostOutputs& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t o = 0; o < got.size(); ++o) {
    if (got[o].size() != want[o].size()) return std::numeric_limits<double>::infinity();
    double scale = 0, err = 0;
    for (size_t i = 0; i < got[o].size(); ++i) {
      if (std::isfinite(got[o][i]) != std::isfinite(want[o][i])) {
        return std::numeric_limits<double>::infinity();
      }
      scale = std::max(scale, std::fabs(want[o][i]));
      err = std::max(err, std::fabs(got[o][i] - want[o][i]));
    }
    worst = std::max(worst, scale > 0 ? err / scale : err);
  }
  return worst;
}

namespace ops {

// The batch of every case (see the top of this file).
struct OpBatch {
  static constexpr int kBlockSize = 4;
  std::vector<int32_t> tokens = {5, 17, 3, 250, 99, 17, 42, 1, 2, 3, 299, 64};
  std::vector<int32_t> positions = {0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4};
  std::vector<int32_t> logit_rows = {6, 11};
  int32_t table_a[2] = {0, 1};
  int32_t table_b[2] = {2, 3};
  mutable std::vector<const int32_t*> tables;  // into this object's tables: made by view()
  int64_t T() const { return static_cast<int64_t>(tokens.size()); }
  ForwardBatch view() const {
    tables.clear();
    for (size_t t = 0; t < tokens.size(); ++t) tables.push_back(t < 7 ? table_a : table_b);
    return ForwardBatch{tokens, positions, tables, logit_rows};
  }
  // The sequence start of token t (tokens of one sequence are contiguous).
  int64_t first_of(int64_t t) const { return t < 7 ? 0 : 7; }
};

inline constexpr int kHeads = 4, kKvHeads = 2, kHeadDim = 64, kDim = 64, kVocab = 300;

inline RopeTable op_rope_table(RopeLayout layout) {
  return make_rope_table(kHeadDim, 10000.0, 64, layout);
}

// Host [rows, cols] values in [-1, 1) * scale (PortableRng, so the same on every machine).
inline std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  PortableRng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform_pm1() * scale;
  return v;
}
// Small integers in [-lim, lim] (times `step`): exact in f32 products and sums, and in bf16.
inline std::vector<float> integer_values(int64_t n, uint32_t seed, int lim, float step = 1.0f) {
  PortableRng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(static_cast<int>(rng.below(2 * lim + 1)) - lim) * step;
  return v;
}

// Everything a case needs on the backend before its op: the RoPE table, a KV cache of one layer
// and the batch. Weights must be uploaded before (a backend sizes its GEMM input buffers from
// them at begin_batch).
inline void prepare(Backend& be, const OpBatch& batch, RopeLayout layout = RopeLayout::half_split) {
  be.set_rope_table(op_rope_table(layout));
  be.init_kv_cache(KvCacheShape{1, 4, OpBatch::kBlockSize, kKvHeads, kHeadDim});
  be.begin_batch(batch.view());
}

// A weight (upload_matrix: the CUDA backend holds matrices as bf16, vectors [1, n] as f32).
inline Tensor upload(Backend& be, const std::vector<float>& v, int64_t rows, int64_t cols) {
  return be.upload_matrix(v.data(), rows, cols, DType::f32);
}
// An activation: f32 on every backend.
inline Tensor activation(Backend& be, const std::vector<float>& v, int64_t rows, int64_t cols) {
  const Tensor t = be.alloc(DType::f32, rows, cols);
  be.copy_from_host(v.data(), t);
  return t;
}
inline std::vector<double> read(Backend& be, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.rows * t.cols));
  be.copy_to_host(t, host.data());
  return std::vector<double>(host.begin(), host.end());
}

// y[m, n] = sum_k x[m, k] w[n, k] in double.
inline std::vector<double> ref_matmul(const std::vector<float>& x, const std::vector<float>& w,
                                      int64_t M, int64_t N, int64_t K) {
  std::vector<double> y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += double{x[m * K + k]} * w[n * K + k];
      y[m * N + n] = acc;
    }
  }
  return y;
}
// gelu(g, approximate="tanh") * u
inline double ref_gelu_tanh_mul(double g, double u) {
  const double z = std::sqrt(2.0 / 3.14159265358979323846) * (g + 0.044715 * g * g * g);
  return 0.5 * g * (1.0 + std::tanh(z)) * u;
}
inline double ref_silu_mul(double g, double u) {
  return g / (1.0 + std::exp(-g)) * u;
}
inline std::vector<double> ref_rmsnorm_row(const double* x, const float* w, int64_t D, double eps) {
  double ss = 0;
  for (int64_t i = 0; i < D; ++i) ss += x[i] * x[i];
  const double r = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
  std::vector<double> out(static_cast<size_t>(D));
  for (int64_t i = 0; i < D; ++i) out[i] = x[i] * r * w[i];
  return out;
}
// RoPE of one head at position p from the table's (float) cos and sin.
inline void ref_rope_head(double* x, int p, const RopeTable& table) {
  const int half = table.head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double c = table.cos[static_cast<size_t>(p * half + i)];
    const double s = table.sin[static_cast<size_t>(p * half + i)];
    const int a = table.layout == RopeLayout::adjacent_pairs ? 2 * i : i;
    const int b = table.layout == RopeLayout::adjacent_pairs ? 2 * i + 1 : i + half;
    const double x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

// --- the cases ---

// GEMM with an epilogue; `parts` output parts of N_i rows (store only), biases where `bias`.
inline BackendOpCase gemm_case(const std::string& name, GemmEpilogue epilogue,
                               std::vector<int64_t> parts, bool bias, int64_t K) {
  struct In {
    std::vector<float> x, y0, w_up;
    std::vector<std::vector<float>> w, b;
  };
  auto in = std::make_shared<In>();
  const OpBatch batch;
  const int64_t M = batch.T();
  in->x = integer_values(M * K, 11, 8, 0.5f);
  for (size_t i = 0; i < parts.size(); ++i) {
    in->w.push_back(integer_values(parts[i] * K, 20 + static_cast<uint32_t>(i), 4));
    in->b.push_back(integer_values(parts[i], 30 + static_cast<uint32_t>(i), 8, 0.25f));
  }
  const int64_t N = parts[0];
  in->w_up = integer_values(N * K, 40, 4);
  in->y0 = integer_values(M * N, 50, 8);  // the residual accumulate adds to
  BackendOpCase c;
  c.name = name;
  c.run = [=](Backend& be) {
    Tensor x = activation(be, in->x, M, K);
    std::vector<Tensor> w, y, b;
    for (size_t i = 0; i < parts.size(); ++i) {
      w.push_back(upload(be, in->w[i], parts[i], K));
      y.push_back(be.alloc(DType::f32, M, parts[i]));
      b.push_back(bias ? upload(be, in->b[i], 1, parts[i]) : Tensor{});
    }
    if (parts.size() > 1) {  // back to back where the backend packs (one GEMM on CUDA)
      std::vector<Tensor*> packed;
      for (Tensor& t : w) packed.push_back(&t);
      be.pack_rows(packed);
    }
    const Tensor w_up = upload(be, in->w_up, N, K);
    const Tensor scratch = be.alloc(DType::f32, M, 2 * N);
    prepare(be, batch);
    GemmOp op;
    switch (epilogue) {
      case GemmEpilogue::store:
        op = GemmOp::parts(x, w, y, b);
        break;
      case GemmEpilogue::accumulate:
        y[0] = activation(be, in->y0, M, N);
        op = GemmOp::residual(x, w[0], y[0], scratch, b[0]);
        break;
      case GemmEpilogue::swiglu:
        op = GemmOp::swiglu(x, w[0], w_up, y[0], scratch);
        break;
      case GemmEpilogue::geglu:
        op = GemmOp::geglu(x, w[0], w_up, y[0], scratch);
        break;
    }
    be.gemm(op);
    HostOutputs out;
    for (const Tensor& t : y) out.push_back(read(be, t));
    return out;
  };
  c.reference = [=] {
    HostOutputs out;
    for (size_t i = 0; i < parts.size(); ++i) {
      std::vector<double> y = ref_matmul(in->x, in->w[i], M, parts[i], K);
      if (is_gated(epilogue)) {
        const std::vector<double> u = ref_matmul(in->x, in->w_up, M, N, K);
        for (size_t j = 0; j < y.size(); ++j) {
          y[j] = epilogue == GemmEpilogue::swiglu ? ref_silu_mul(y[j], u[j])
                                                  : ref_gelu_tanh_mul(y[j], u[j]);
        }
      }
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < parts[i]; ++n) {
          double& v = y[static_cast<size_t>(m * parts[i] + n)];
          if (bias) v += in->b[i][static_cast<size_t>(n)];
          if (epilogue == GemmEpilogue::accumulate) v += in->y0[static_cast<size_t>(m * N + n)];
        }
      }
      out.push_back(std::move(y));
    }
    return out;
  };
  // Exact inputs: store and accumulate are exact on any correct backend; swiglu and geglu round
  // their exp.
  const bool exact = !is_gated(epilogue);
  c.cpu_bound = exact ? 0 : 1e-6;
  c.cuda_bound = exact ? 0 : 1e-5;
  return c;
}

// The MLP as the model runs it: swiglu into the backend's gemm_input_dtype, then the down
// projection added to the residual. On CUDA the swiglu output is bf16 (2^-9 relative rounding
// before the down GEMM).
inline BackendOpCase mlp_case() {
  const OpBatch batch;
  const int64_t M = batch.T(), D = 64, F = 100;  // F: rows padded to 104 in bf16
  auto x = std::make_shared<std::vector<float>>(random_values(M * D, 61));
  auto wg = std::make_shared<std::vector<float>>(random_values(F * D, 62, 0.25f));
  auto wu = std::make_shared<std::vector<float>>(random_values(F * D, 63, 0.25f));
  auto wd = std::make_shared<std::vector<float>>(random_values(D * F, 64, 0.2f));
  auto y0 = std::make_shared<std::vector<float>>(random_values(M * D, 65));
  BackendOpCase c;
  c.name = "gemm swiglu -> gemm_input_dtype, then accumulate (the MLP)";
  c.run = [=](Backend& be) {
    const Tensor tx = activation(be, *x, M, D);
    const Tensor tg = upload(be, *wg, F, D), tu = upload(be, *wu, F, D);
    const Tensor td = upload(be, *wd, D, F);
    const Tensor y = activation(be, *y0, M, D);
    const Tensor act = be.alloc(be.gemm_input_dtype(), M, F);
    const Tensor scratch = be.alloc(DType::f32, M, 2 * F);
    const Tensor h = be.alloc(DType::f32, M, D);
    prepare(be, batch);
    be.gemm(GemmOp::swiglu(tx, tg, tu, act, scratch));
    be.gemm(GemmOp::residual(act, td, y, h));
    return HostOutputs{read(be, y)};
  };
  c.reference = [=] {
    const std::vector<double> g = ref_matmul(*x, *wg, M, F, D), u = ref_matmul(*x, *wu, M, F, D);
    std::vector<float> a(g.size());
    for (size_t i = 0; i < g.size(); ++i) a[i] = static_cast<float>(ref_silu_mul(g[i], u[i]));
    std::vector<double> y = ref_matmul(a, *wd, M, D, F);
    for (size_t i = 0; i < y.size(); ++i) y[i] += (*y0)[i];
    return HostOutputs{y};
  };
  c.cpu_bound = 1e-5;
  c.cuda_bound = 2e-2;  // bf16 weights, inputs and activation
  return c;
}

inline BackendOpCase rmsnorm_case() {
  const OpBatch batch;
  const int64_t M = batch.T(), D = kDim;
  auto x = std::make_shared<std::vector<float>>(random_values(M * D, 71, 3.0f));
  auto w = std::make_shared<std::vector<float>>(random_values(D, 72, 1.0f));
  BackendOpCase c;
  c.name = "rmsnorm";
  c.run = [=](Backend& be) {
    const Tensor tx = activation(be, *x, M, D), tw = upload(be, *w, 1, D);
    const Tensor out = be.alloc(DType::f32, M, D);
    prepare(be, batch);
    be.rmsnorm(tx, tw, 1e-5f, out);
    return HostOutputs{read(be, out)};
  };
  c.reference = [=] {
    std::vector<double> out;
    for (int64_t m = 0; m < M; ++m) {
      const std::vector<double> row(x->begin() + m * D, x->begin() + (m + 1) * D);
      const std::vector<double> r = ref_rmsnorm_row(row.data(), w->data(), D, double{1e-5f});
      out.insert(out.end(), r.begin(), r.end());
    }
    return HostOutputs{out};
  };
  c.cpu_bound = 1e-6;
  c.cuda_bound = 1e-5;
  return c;
}

// RoPE of q and k at the batch positions, with (Qwen3) or without per-head q/k norms.
inline BackendOpCase rope_case(RopeLayout layout, bool norms) {
  const OpBatch batch;
  const int64_t T = batch.T(), Q = kHeads * kHeadDim, KV = kKvHeads * kHeadDim;
  auto q = std::make_shared<std::vector<float>>(random_values(T * Q, 81, 2.0f));
  auto k = std::make_shared<std::vector<float>>(random_values(T * KV, 82, 2.0f));
  auto qn = std::make_shared<std::vector<float>>(random_values(kHeadDim, 83));
  auto kn = std::make_shared<std::vector<float>>(random_values(kHeadDim, 84));
  BackendOpCase c;
  c.name = std::string("rope ") + (layout == RopeLayout::half_split ? "half_split" : "adjacent") +
           (norms ? " with q/k norms" : "");
  c.run = [=](Backend& be) {
    RopeOp op;
    op.q = activation(be, *q, T, Q);
    op.n_heads = kHeads;
    op.k = activation(be, *k, T, KV);
    op.n_kv_heads = kKvHeads;
    if (norms) {
      op.q_norm = upload(be, *qn, 1, kHeadDim);
      op.k_norm = upload(be, *kn, 1, kHeadDim);
      op.eps = 1e-6f;
    }
    prepare(be, batch, layout);
    be.rope(op);
    return HostOutputs{read(be, op.q), read(be, op.k)};
  };
  c.reference = [=] {
    const RopeTable table = op_rope_table(layout);
    HostOutputs out;
    for (const auto& [src, heads, norm] :
         {std::tuple{q, kHeads, qn}, std::tuple{k, kKvHeads, kn}}) {
      std::vector<double> v(src->begin(), src->end());
      for (int64_t t = 0; t < T; ++t) {
        for (int h = 0; h < heads; ++h) {
          double* head = v.data() + (t * heads + h) * kHeadDim;
          if (norms) {
            const std::vector<double> r =
                ref_rmsnorm_row(head, norm->data(), kHeadDim, double{1e-6f});
            std::copy(r.begin(), r.end(), head);
          }
          ref_rope_head(head, batch.positions[static_cast<size_t>(t)], table);
        }
      }
      out.push_back(std::move(v));
    }
    return out;
  };
  c.cpu_bound = 1e-6;
  c.cuda_bound = 1e-5;
  return c;
}

// kv_write of every token, then causal attention of every token over its own sequence (GQA).
// window > 0: each token attends to the last `window` positions of its sequence only.
inline BackendOpCase attention_case(int window = 0) {
  const OpBatch batch;
  const int64_t T = batch.T(), Q = kHeads * kHeadDim, KV = kKvHeads * kHeadDim;
  auto q = std::make_shared<std::vector<float>>(random_values(T * Q, 91, 1.0f));
  auto k = std::make_shared<std::vector<float>>(random_values(T * KV, 92, 1.0f));
  auto v = std::make_shared<std::vector<float>>(random_values(T * KV, 93, 1.0f));
  const float scale = 1.0f / 8.0f;
  BackendOpCase c;
  c.name = window > 0 ? "kv_write + attention, window " + std::to_string(window)
                      : "kv_write + attention";
  c.run = [=](Backend& be) {
    const Tensor tq = activation(be, *q, T, Q), tk = activation(be, *k, T, KV);
    const Tensor tv = activation(be, *v, T, KV);
    const Tensor out = be.alloc(DType::f32, T, Q);
    prepare(be, batch);
    be.kv_write(0, tk, tv);
    be.attention(0, tq, kHeads, scale, window, out);
    return HostOutputs{read(be, out)};
  };
  c.reference = [=] {
    std::vector<double> out(static_cast<size_t>(T * Q));
    for (int64_t t = 0; t < T; ++t) {
      const int64_t first =
          window > 0 ? std::max(batch.first_of(t), t - window + 1) : batch.first_of(t);
      for (int h = 0; h < kHeads; ++h) {
        const int g = h / (kHeads / kKvHeads);
        std::vector<double> s;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = first; j <= t; ++j) {
          double dot = 0;
          for (int d = 0; d < kHeadDim; ++d) {
            dot += double{(*q)[(t * kHeads + h) * kHeadDim + d]} *
                   (*k)[(j * kKvHeads + g) * kHeadDim + d];
          }
          s.push_back(dot * scale);
          mx = std::max(mx, s.back());
        }
        double l = 0;
        for (double& e : s) l += (e = std::exp(e - mx));
        for (int d = 0; d < kHeadDim; ++d) {
          double o = 0;
          for (int64_t j = first; j <= t; ++j) {
            o += s[static_cast<size_t>(j - first)] * (*v)[(j * kKvHeads + g) * kHeadDim + d];
          }
          out[static_cast<size_t>((t * kHeads + h) * kHeadDim + d)] = o / l;
        }
      }
    }
    return HostOutputs{out};
  };
  c.cpu_bound = 1e-5;
  c.cuda_bound = 2e-2;  // bf16 KV cache
  return c;
}

// x * factor, then y + x (Gemma's embedding scale and post-norm residual add): one f32 product
// and one f32 sum per element, exact on these halves.
inline BackendOpCase scale_add_case() {
  const OpBatch batch;
  const int64_t T = batch.T();
  auto x = std::make_shared<std::vector<float>>(integer_values(T * kDim, 61, 8, 0.5f));
  auto y = std::make_shared<std::vector<float>>(integer_values(T * kDim, 62, 8, 0.5f));
  BackendOpCase c;
  c.name = "scale + add";
  c.run = [=](Backend& be) {
    const Tensor tx = activation(be, *x, T, kDim), ty = activation(be, *y, T, kDim);
    prepare(be, batch);
    be.scale(tx, 0.75f);
    be.add(tx, ty);
    return HostOutputs{read(be, tx), read(be, ty)};
  };
  c.reference = [=] {
    std::vector<double> sx(x->size()), sy(y->size());
    for (size_t i = 0; i < x->size(); ++i) {
      sx[i] = 0.75 * (*x)[i];
      sy[i] = (*y)[i] + sx[i];
    }
    return HostOutputs{sx, sy};
  };
  return c;
}

// The embedding rows of the batch's tokens. Table values are halves (exact in bf16, which the
// CUDA backend stores); with `quantized`, Q8_0 blocks the CPU backend reads directly.
inline BackendOpCase embed_case(bool quantized) {
  const OpBatch batch;
  const int64_t V = kVocab, D = kDim;
  auto table = std::make_shared<std::vector<float>>(integer_values(V * D, 101, 64, 0.5f));
  auto blocks = std::make_shared<std::vector<uint8_t>>();
  if (quantized) {  // Q8_0: d = 1 (f16 0x3c00), q = random int8
    PortableRng rng(102);
    const int64_t n_blocks = V * D / quant::kBlockElements[quant::kQ8_0];
    for (int64_t b = 0; b < n_blocks; ++b) {
      blocks->push_back(0x00);
      blocks->push_back(0x3c);
      for (int64_t j = 0; j < quant::kBlockElements[quant::kQ8_0]; ++j)
        blocks->push_back(static_cast<uint8_t>(rng.below(256)));
    }
    quant::dequantize_row(DType::q8_0, blocks->data(), V * D, table->data());
  }
  BackendOpCase c;
  c.name = quantized ? "embed (Q8_0 blocks)" : "embed";
  c.cpu_only = quantized;
  c.run = [=](Backend& be) {
    const Tensor t =
        quantized ? be.upload_blocks(blocks->data(), V, D, DType::q8_0) : upload(be, *table, V, D);
    const Tensor out = be.alloc(DType::f32, batch.T(), D);
    prepare(be, batch);
    be.embed(t, out);
    return HostOutputs{read(be, out)};
  };
  c.reference = [=] {
    std::vector<double> out;
    for (int32_t id : batch.tokens) {
      out.insert(out.end(), table->begin() + id * D, table->begin() + (id + 1) * D);
    }
    return HostOutputs{out};
  };
  return c;  // exact on both
}

// gather_logit_rows, log_softmax, a strided copy_to_host, and the greedy choice (bx::greedy_rows:
// on the device where the backend can) of the batch's logit rows.
inline BackendOpCase logits_case() {
  const OpBatch batch;
  const int64_t T = batch.T(), V = kVocab, R = static_cast<int64_t>(batch.logit_rows.size());
  auto x = std::make_shared<std::vector<float>>(random_values(T * V, 111, 6.0f));
  BackendOpCase c;
  c.name = "gather_logit_rows + log_softmax + greedy_rows";
  c.run = [=](Backend& be) {
    const Tensor tx = activation(be, *x, T, V);
    const Tensor rows = be.alloc(DType::f32, R, V), lp = be.alloc(DType::f32, R, V);
    prepare(be, batch);
    be.gather_logit_rows(tx, rows);
    be.log_softmax(rows, lp);
    std::vector<int32_t> ids(static_cast<size_t>(R));
    std::vector<float> chosen(static_cast<size_t>(R));
    greedy_rows(be, rows, lp, ids.data(), chosen.data());
    Tensor middle = tx.rows_view(2, 3);  // a strided view: columns 10..19 of rows 2..4
    middle.data = static_cast<float*>(middle.data) + 10;
    middle.cols = 10;
    return HostOutputs{read(be, rows), read(be, lp), std::vector<double>(ids.begin(), ids.end()),
                       std::vector<double>(chosen.begin(), chosen.end()), read(be, middle)};
  };
  c.reference = [=] {
    HostOutputs out(5);
    for (int32_t r : batch.logit_rows) {
      const float* row = x->data() + r * V;
      out[0].insert(out[0].end(), row, row + V);
      double mx = -std::numeric_limits<double>::infinity(), s = 0;
      int64_t best = 0;
      for (int64_t i = 0; i < V; ++i) {
        if (row[i] > mx) mx = row[i], best = i;
      }
      for (int64_t i = 0; i < V; ++i) s += std::exp(row[i] - mx);
      for (int64_t i = 0; i < V; ++i) out[1].push_back(row[i] - mx - std::log(s));
      out[2].push_back(static_cast<double>(best));
      out[3].push_back(-std::log(s));
    }
    for (int64_t r = 2; r < 5; ++r) {
      for (int64_t i = 10; i < 20; ++i) out[4].push_back((*x)[static_cast<size_t>(r * V + i)]);
    }
    return out;
  };
  c.cpu_bound = 1e-6;
  c.cuda_bound = 1e-5;
  return c;
}

}  // namespace ops

// Every case, each op at least once: embed, rmsnorm, gemm (every epilogue, parts, biases), rope,
// kv_write, attention, gather_logit_rows, log_softmax, copy_to_host, greedy_rows.
inline std::vector<BackendOpCase> backend_op_cases() {
  using ops::gemm_case;
  std::vector<BackendOpCase> cases;
  cases.push_back(ops::embed_case(false));
  cases.push_back(ops::embed_case(true));
  cases.push_back(ops::rmsnorm_case());
  cases.push_back(gemm_case("gemm store", GemmEpilogue::store, {72}, false, 64));
  cases.push_back(gemm_case("gemm store K=100 (padded)", GemmEpilogue::store, {40}, false, 100));
  cases.push_back(gemm_case("gemm store + bias", GemmEpilogue::store, {40}, true, 64));
  cases.push_back(
      gemm_case("gemm store q|k|v parts", GemmEpilogue::store, {64, 32, 32}, false, 64));
  cases.push_back(
      gemm_case("gemm store q|k|v parts + biases", GemmEpilogue::store, {64, 32, 32}, true, 64));
  cases.push_back(gemm_case("gemm accumulate", GemmEpilogue::accumulate, {64}, false, 64));
  cases.push_back(gemm_case("gemm accumulate + bias", GemmEpilogue::accumulate, {64}, true, 64));
  cases.push_back(gemm_case("gemm swiglu", GemmEpilogue::swiglu, {48}, false, 64));
  cases.push_back(gemm_case("gemm geglu", GemmEpilogue::geglu, {48}, false, 64));
  cases.push_back(ops::mlp_case());
  cases.push_back(ops::rope_case(RopeLayout::half_split, false));
  cases.push_back(ops::rope_case(RopeLayout::adjacent_pairs, false));
  cases.push_back(ops::rope_case(RopeLayout::half_split, true));
  cases.push_back(ops::attention_case());
  cases.push_back(ops::attention_case(3));
  cases.push_back(ops::scale_add_case());
  cases.push_back(ops::logits_case());
  return cases;
}

}  // namespace bx::test
