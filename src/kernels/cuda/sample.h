// Seeded sampling per row on the device (Backend::sample_rows): the choice of sampling/sampler.h,
// bit for bit, without moving the rows to the host.
//
//   ids[r]    = Sampler::sample(logits[r], logprobs[r], params[r], params[r].token_index).id
//   chosen[r] = logprobs[r, ids[r]]
//
// Every step is sampler.h's, with the same IEEE operations in the same order: z = logits / T
// (NaN -> -inf, -0 -> +0), weights exp_steps(z - z_max) (kernels/exp_steps.h: exp_f32's own
// source), totals by the canonical 16-lane sum in id order (kernels/lanes.h), the top-p and draw
// walks as one sequential running float sum in sorted order, philox_uniform (sampling/philox.h:
// the host's own source). Temperature 0 is the greedy choice (greedy.h's argmax).
//
// One block per row (R5); nothing is shared between rows, so a row's choice is the same alone or
// in any batch. The parallel parts are exact by construction: maxima, minima and counts are
// order-free; a lane total is 16 sequential chains (lane j: ids j, j + 16, ... in increasing
// order) folded by lanes.h's fixed tree, with +0 terms skipped where that cannot change the bits
// (adding +0 to a sum >= +0 is exact); the sorted order is total (z descending, id ascending, as
// one 64-bit key), so any selection method finds the same ids.
//
// The walks run in rounds: a histogram of the candidates over bins of z_max - z (monotone in the
// key, so bins hold consecutive stretches of the sorted order) names the next stretch of at most
// 8192 ids (1024 in the first round); a bin larger than that is cut by radix selection on the
// exact key. One pass groups the candidates' ids by bin in a scratch array, so a round reads only
// its own bins' ids. The stretch is gathered, sorted in shared memory (bitonic), its weights
// computed in parallel; one thread runs the sum along it, and all threads search where that
// decides. A peaked row decides in the first round; a flat one walks about u * V ids.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

// One row's sampling parameters as the kernel reads them (SamplingParams plus the token index),
// already validated (bx::validate).
struct SampleRowParams {
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  uint64_t seed;
  uint64_t token_index;
};

// params, ids and chosen are device arrays of `rows` entries; scratch a device array of
// rows * cols entries (the candidates grouped by bin); cols < 2^31.
void sample_rows(const float* logits, int64_t logits_stride, const float* logprobs,
                 int64_t logprobs_stride, int64_t rows, int64_t cols, const SampleRowParams* params,
                 uint32_t* scratch, int32_t* ids, float* chosen, cudaStream_t stream);

// y[i] = exp_steps(x[i]) computed on the device, for tests (device arrays of n floats).
void exp_steps_on_device(const float* x, float* y, int64_t n, cudaStream_t stream);

}  // namespace bx::cuda
