// Greedy choice per row on the device (Backend::greedy_rows), so decode steps move 8 bytes per
// row to the host instead of two rows of V floats.
//
//   ids[r]    = argmax_i logits[r, i]: ties to the lowest i, NaNs skipped, 0 if every value is
//               NaN (bx::argmax, kernels/rows.h)
//   chosen[r] = logprobs[r, ids[r]]
//
// One block per row (R5). Each thread scans a strided slice, then a fixed tree combines the
// candidates. The comparison "larger value, or equal value and lower index" is a total order on
// (value, index) pairs of non-NaN values (-0 and +0 compare equal, as under ==), so its maximum
// is unique and equals what the sequential scan of bx::argmax returns, whatever the order of
// combination: the result is exact, not just reproducible.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

void greedy_rows(const float* logits, int64_t logits_stride, const float* logprobs,
                 int64_t logprobs_stride, int64_t rows, int64_t cols, int32_t* ids, float* chosen,
                 cudaStream_t stream);

}  // namespace bx::cuda
