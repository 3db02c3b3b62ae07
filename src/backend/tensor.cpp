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
