// The parts of the Backend interface that are the same for every backend: GemmOp's constructors
// and checks, the host fallbacks of the optional capabilities, and generated weights.
#include "backend/backend.h"

#include <vector>

#include "core/counter_hash.h"
#include "core/error.h"
#include "kernels/rows.h"

namespace bx {

GemmOp GemmOp::projection(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& bias) {
  GemmOp op;
  op.x = x;
  op.w[0] = w;
  op.y[0] = y;
  op.bias[0] = bias;
  return op;
}

GemmOp GemmOp::parts(const Tensor& x, std::span<const Tensor> w, std::span<const Tensor> y,
                     std::span<const Tensor> bias) {
  BX_CHECK(!w.empty() && w.size() <= static_cast<size_t>(kMaxParts),
           "gemm: 1 to " + std::to_string(kMaxParts) + " parts, not " + std::to_string(w.size()));
  BX_CHECK(y.size() == w.size() && (bias.empty() || bias.size() == w.size()),
           "gemm: one output (and bias, if any) per weight part");
  GemmOp op;
  op.x = x;
  op.n_parts = static_cast<int>(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    op.w[i] = w[i];
    op.y[i] = y[i];
    if (!bias.empty()) op.bias[i] = bias[i];
  }
  return op;
}

GemmOp GemmOp::residual(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& scratch,
                        const Tensor& bias) {
  GemmOp op = projection(x, w, y, bias);
  op.epilogue = GemmEpilogue::accumulate;
  op.scratch = scratch;
  return op;
}

GemmOp GemmOp::swiglu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, const Tensor& y,
                      const Tensor& scratch) {
  GemmOp op = projection(x, w_gate, y);
  op.epilogue = GemmEpilogue::swiglu;
  op.w_up = w_up;
  op.scratch = scratch;
  return op;
}

GemmOp GemmOp::geglu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, const Tensor& y,
                     const Tensor& scratch) {
  GemmOp op = swiglu(x, w_gate, w_up, y, scratch);
  op.epilogue = GemmEpilogue::geglu;
  return op;
}

int64_t GemmOp::n_total() const {
  int64_t n = 0;
  for (int i = 0; i < n_parts; ++i) n += w[i].rows;
  return n;
}

namespace {
std::string shape(const Tensor& t) {
  return "[" + std::to_string(t.rows) + ", " + std::to_string(t.cols) + "]";
}
}  // namespace

void check_gemm_op(const GemmOp& op, const std::string& who) {
  const std::string prefix = who + ": gemm ";
  BX_CHECK(op.n_parts >= 1 && op.n_parts <= GemmOp::kMaxParts,
           prefix + "needs 1 to " + std::to_string(GemmOp::kMaxParts) + " parts, not " +
               std::to_string(op.n_parts));
  BX_CHECK(op.n_parts == 1 || op.epilogue == GemmEpilogue::store,
           prefix + "parts only with the store epilogue");
  BX_CHECK(op.x.data != nullptr, prefix + "has no input");
  for (int i = 0; i < op.n_parts; ++i) {
    const Tensor& w = op.w[i];
    const Tensor& y = op.y[i];
    BX_CHECK(w.data != nullptr && y.data != nullptr,
             prefix + "part " + std::to_string(i) + " has no weight or no output");
    BX_CHECK(w.cols == op.x.cols && y.rows == op.x.rows && y.cols == w.rows,
             prefix + "shapes do not match: x " + shape(op.x) + ", W " + shape(w) + ", y " +
                 shape(y) + ": expected x [M, K], W [N, K], y [M, N]");
    const Tensor& b = op.bias[i];
    BX_CHECK(b.data == nullptr || (b.dtype == DType::f32 && b.rows == 1 && b.cols == w.rows),
             prefix + "bias " + shape(b) + " for " + std::to_string(w.rows) +
                 " outputs: expected an F32 [1, " + std::to_string(w.rows) + "]");
    BX_CHECK(b.data == nullptr || !is_gated(op.epilogue),
             prefix + "a gated epilogue (swiglu, geglu) takes no bias");
  }
  const int64_t N = op.w[0].rows;
  if (is_gated(op.epilogue)) {
    const Tensor& u = op.w_up;
    BX_CHECK(
        u.data != nullptr && u.rows == N && u.cols == op.x.cols && u.dtype == op.w[0].dtype,
        prefix + "gated up weight " + shape(u) + " must match the gate weight " + shape(op.w[0]));
  }
  if (op.epilogue != GemmEpilogue::store) {
    const int64_t need = is_gated(op.epilogue) ? 2 * N : N;
    BX_CHECK(op.scratch.data != nullptr && op.scratch.dtype == DType::f32 &&
                 op.scratch.rows >= op.x.rows && op.scratch.cols >= need,
             prefix + "scratch " + shape(op.scratch) + " is smaller than the [" +
                 std::to_string(op.x.rows) + ", " + std::to_string(need) + "] F32 it needs");
  }
}

Tensor Backend::generate_matrix(int64_t rows, int64_t cols, DType dtype, uint64_t stream,
                                float offset, float scale) {
  BX_CHECK(rows > 0 && cols > 0, "generate_matrix: the shape must be positive");
  std::vector<float> host(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < host.size(); ++i) host[i] = hash_weight(stream, i, offset, scale);
  return upload_matrix(host.data(), rows, cols, dtype);
}

void greedy_rows(Backend& backend, const Tensor& logits, const Tensor& logprobs, int32_t* ids,
                 float* chosen) {
  if (DeviceSampling* device = backend.capabilities().device_sampling) {
    device->greedy_rows(logits, logprobs, ids, chosen);
    return;
  }
  BX_CHECK(logits.rows == logprobs.rows && logits.cols == logprobs.cols,
           "greedy_rows: logits and logprobs must have the same shape");
  std::vector<float> row(static_cast<size_t>(logits.cols));
  for (int64_t r = 0; r < logits.rows; ++r) {
    backend.copy_to_host(logits.rows_view(r, 1), row.data());
    ids[r] = static_cast<int32_t>(argmax(row.data(), logits.cols));
    backend.copy_to_host(logprobs.rows_view(r, 1), row.data());
    chosen[r] = row[static_cast<size_t>(ids[r])];
  }
}

void sample_rows(Backend& backend, const Tensor& logits, const Tensor& logprobs,
                 std::span<const SamplingParams> params, std::span<const uint64_t> token_indices,
                 int32_t* ids, float* chosen) {
  if (DeviceSampling* device = backend.capabilities().device_sampling) {
    device->sample_rows(logits, logprobs, params, token_indices, ids, chosen);
    return;
  }
  BX_CHECK(logits.rows == logprobs.rows && logits.cols == logprobs.cols,
           "sample_rows: logits and logprobs must have the same shape");
  BX_CHECK(params.size() == static_cast<size_t>(logits.rows) &&
               token_indices.size() == static_cast<size_t>(logits.rows),
           "sample_rows: expected one SamplingParams and one token index per row");
  const auto V = static_cast<size_t>(logits.cols);
  std::vector<float> row_logits(V), row_logprobs(V);
  Sampler sampler;
  for (int64_t r = 0; r < logits.rows; ++r) {
    backend.copy_to_host(logits.rows_view(r, 1), row_logits.data());
    backend.copy_to_host(logprobs.rows_view(r, 1), row_logprobs.data());
    const auto i = static_cast<size_t>(r);
    const Sampler::Choice c = sampler.sample(row_logits, row_logprobs, params[i], token_indices[i]);
    ids[r] = c.id;
    chosen[r] = c.logprob;
  }
}

}  // namespace bx
