// The latency bound of the invariant GEMM's chain: every output element of gemm.h / gemm_quant.h
// is K / 16 dependent mma m16n8k16 steps, so no schedule runs an [M <= 16, K] x [K, N] GEMM faster
// than one warp issuing K / 16 dependent steps per n8 column, all columns at once. This launches
// exactly that (N / 8 warps in blocks of 4, each a chain of `steps` mma steps on register
// operands, no memory traffic but the final store) so a benchmark can set each decode GEMM's
// time beside the chain's.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

// out: n_chains * 4 floats (lane 0's fragment of each chain, so that no chain is dead code).
void mma_chain(int64_t n_chains, int64_t steps, float* out, cudaStream_t stream);

}  // namespace bx::cuda
