// Generated weights on the device (model/random_model.h): element (r, c) of a [rows, cols]
// matrix is hash_weight(stream, r * cols + c, offset, scale) (core/counter_hash.h), computed in
// f32 exactly as the host computes it, then stored as f32 or rounded to bf16 (nearest even, as
// core/half.h f32_to_bf16). Rows are `stride` elements apart; padding columns are not written.
// Element-wise: no reduction, the same values whatever the launch shape.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

void generate_weights_bf16(uint16_t* out, int64_t rows, int64_t cols, int64_t stride,
                           uint64_t stream_key, float offset, float scale, cudaStream_t stream);
void generate_weights_f32(float* out, int64_t rows, int64_t cols, int64_t stride,
                          uint64_t stream_key, float offset, float scale, cudaStream_t stream);

}  // namespace bx::cuda
