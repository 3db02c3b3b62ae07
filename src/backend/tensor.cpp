#include <cstddef>
#include <vector>

#include "backend/backend.h"
#include "core/counter_hash.h"
#include "core/error.h"
#include "kernels/quant.h"
#include "kernels/rows.h"

namespace bx {

namespace {
// Bytes of `elements` consecutive elements (for block formats, a multiple of 32).
size_t bytes_of(DType dtype, int64_t elements) {
  switch (dtype) {
    case DType::f32: return static_cast<size_t>(elements) * 4;
    case DType::f16:
    case DType::bf16: return static_cast<size_t>(elements) * 2;
    default: return static_cast<size_t>(quant::bytes_for(dtype, elements));
  }
}
}  // namespace

Tensor Tensor::rows_view(int64_t first, int64_t count) const {
  BX_CHECK(first >= 0 && count >= 0 && first + count <= rows,
        "tensor rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
            ") outside the " + std::to_string(rows) + " rows it has");
  Tensor view = *this;
  view.data = static_cast<std::byte*>(data) + bytes_of(dtype, first * stride);
  view.rows = count;
  return view;
}

void Backend::add_bias(Tensor, const Tensor&) {
  throw Error("backend " + name() +
              " does not implement add_bias, which models with attention biases need");
}

namespace {
// Head h of x [T, n_heads * head_dim] as a [T, head_dim] view with x's row stride.
Tensor head_view(const Tensor& x, int h, int head_dim) {
  Tensor view = x;
  view.data = static_cast<std::byte*>(x.data) + bytes_of(x.dtype, int64_t{h} * head_dim);
  view.cols = head_dim;
  return view;
}

// rmsnorm of every head of x as a row: one call over [T * n_heads, head_dim] when the rows are
// dense, else one call per head (rows are independent, so the same bits).
void norm_heads(Backend& be, Tensor x, int n_heads, const Tensor& w, float eps) {
  const int head_dim = static_cast<int>(w.cols);
  BX_CHECK(x.cols == int64_t{n_heads} * head_dim,
           "qk_norm_rope: " + std::to_string(x.cols) + " columns are not " +
               std::to_string(n_heads) + " heads of the norm's " + std::to_string(head_dim));
  if (x.stride == x.cols) {
    const Tensor rows{x.data, x.dtype, x.rows * n_heads, head_dim, head_dim};
    be.rmsnorm(rows, w, eps, rows);
    return;
  }
  for (int h = 0; h < n_heads; ++h) {
    const Tensor head = head_view(x, h, head_dim);
    be.rmsnorm(head, w, eps, head);
  }
}
}  // namespace

void Backend::qk_norm_rope(Tensor q, int n_heads, Tensor k, int n_kv_heads, const Tensor* q_norm,
                           const Tensor* k_norm, float eps) {
  if (q_norm != nullptr) norm_heads(*this, q, n_heads, *q_norm, eps);
  if (k_norm != nullptr) norm_heads(*this, k, n_kv_heads, *k_norm, eps);
  rope(q, n_heads);
  rope(k, n_kv_heads);
}

void Backend::matmul_parts(const Tensor& x, std::span<const Tensor> w, std::span<Tensor> y) {
  BX_CHECK(w.size() == y.size(), "matmul_parts: one output per weight matrix");
  for (size_t i = 0; i < w.size(); ++i) matmul(x, w[i], y[i]);
}

void Backend::matmul_swiglu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor out,
                            Tensor up) {
  matmul(x, w_gate, out);
  matmul(x, w_up, up);
  silu_mul(out, up, out);
}

void Backend::matmul_add(const Tensor& x, const Tensor& w, Tensor y, Tensor scratch) {
  matmul(x, w, scratch);
  add_inplace(y, scratch);
}

void Backend::mlp_add(Tensor h, const Tensor& w_gate, const Tensor& w_up, const Tensor& w_down,
                      Tensor x, Tensor gate, Tensor up) {
  matmul_swiglu(h, w_gate, w_up, gate, up);
  matmul_add(gate, w_down, x, h);
}

Tensor Backend::generate_matrix(int64_t rows, int64_t cols, DType dtype, uint64_t stream,
                                float offset, float scale) {
  BX_CHECK(rows > 0 && cols > 0, "generate_matrix: the shape must be positive");
  std::vector<float> host(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < host.size(); ++i) host[i] = hash_weight(stream, i, offset, scale);
  return upload_matrix(host.data(), rows, cols, dtype);
}

void Backend::greedy_rows(const Tensor& logits, const Tensor& logprobs, int32_t* ids,
                          float* chosen) {
  BX_CHECK(logits.rows == logprobs.rows && logits.cols == logprobs.cols,
           "greedy_rows: logits and logprobs must have the same shape");
  std::vector<float> row(static_cast<size_t>(logits.cols));
  for (int64_t r = 0; r < logits.rows; ++r) {
    copy_to_host(logits.rows_view(r, 1), row.data());
    ids[r] = static_cast<int32_t>(argmax(row.data(), logits.cols));
    copy_to_host(logprobs.rows_view(r, 1), row.data());
    chosen[r] = row[static_cast<size_t>(ids[r])];
  }
}

void Backend::sample_rows(const Tensor& logits, const Tensor& logprobs,
                          std::span<const SamplingParams> params,
                          std::span<const uint64_t> token_indices, int32_t* ids, float* chosen) {
  BX_CHECK(logits.rows == logprobs.rows && logits.cols == logprobs.cols,
           "sample_rows: logits and logprobs must have the same shape");
  BX_CHECK(params.size() == static_cast<size_t>(logits.rows) &&
               token_indices.size() == static_cast<size_t>(logits.rows),
           "sample_rows: expected one SamplingParams and one token index per row");
  const auto V = static_cast<size_t>(logits.cols);
  std::vector<float> row_logits(V), row_logprobs(V);
  Sampler sampler;
  for (int64_t r = 0; r < logits.rows; ++r) {
    copy_to_host(logits.rows_view(r, 1), row_logits.data());
    copy_to_host(logprobs.rows_view(r, 1), row_logprobs.data());
    const auto i = static_cast<size_t>(r);
    const Sampler::Choice c = sampler.sample(row_logits, row_logprobs, params[i], token_indices[i]);
    ids[r] = c.id;
    chosen[r] = c.logprob;
  }
}

}  // namespace bx
