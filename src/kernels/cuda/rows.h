// Row-wise and elementwise kernels on the GPU (f32 activations), and the small data movers of
// the forward pass (embedding rows, logit rows, bf16 conversion for the GEMM).
//
// Reduction order (INVARIANCE.md R1, R5): one block of kRowThreads = 256 threads per row.
//   thread j:  acc_j = op over i = j, j + 256, j + 512, ... < D, in increasing i, from +0.0f
//              (dot: acc = fmaf(a[i], b[i], acc); sum: acc = acc + a[i])
//   warp w:    butterfly over lanes, offsets 16, 8, 4, 2, 1: v = v + shfl_xor(v, o)
//              (every lane ends with the same value: IEEE addition is commutative)
//   block:     total = w_0 + w_1 + ... + w_7, left to right
// The order depends only on D: never on M, on the other rows or on the grid. Row max is
// order-free. Elementwise steps are the IEEE operations written below, compiled with
// --fmad=false so no product is fused into an add unless fmaf is written. expf and logf are
// CUDA's (not the CPU's exp_f32): the GPU backend has its own fingerprint.
//
// All pointers are device memory; row strides are in elements. Asynchronous on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace bx::cuda {

inline constexpr int kRowThreads = 256;

// out[m,i] = (x[m,i] * r) * w[i],  r = 1.0f / sqrtf(ss / D + eps),  ss = dot(x[m,:], x[m,:]).
// out may alias x. threads_per_row other than kRowThreads (128 is the one other choice) changes
// the order: the negative control of the tests, never used by the backend.
// Paths, each in the order above (the same bits): D <= 1024, one warp a row and 8 rows a block,
// lane l playing the 8 threads l + 32 q of the 256 (q/k norm: D = 128); D <= 8192, a block a
// row that reads x once: staged in shared memory by 16-byte copies when x, out, w, the strides
// and D are multiples of 16 bytes, else held in registers; longer rows, rmsnorm_two_pass.
void rmsnorm(const float* x, int64_t x_stride, const float* w, float eps, float* out,
             int64_t out_stride, int64_t M, int64_t D, cudaStream_t stream,
             int threads_per_row = kRowThreads);

// rmsnorm by a block a row that reads x twice (the sum, then the scaling): any D. The baseline
// of the tests and the benchmark.
void rmsnorm_two_pass(const float* x, int64_t x_stride, const float* w, float eps, float* out,
                      int64_t out_stride, int64_t M, int64_t D, cudaStream_t stream,
                      int threads_per_row = kRowThreads);

// out[i] = (x[i] - mx) - logf(s),  mx = max_i x[i],  s = sum_i expf(x[i] - mx).  out may alias x.
void log_softmax(const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t M,
                 int64_t N, cudaStream_t stream);

// out[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i]   (F.silu(gate) * up); out may alias gate.
void silu_mul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
              float* out, int64_t out_stride, int64_t M, int64_t F, cudaStream_t stream);

// out[i] = (g[i] / (1.0f + expf(-2.0f * z))) * u[i],  z = 0.7978845608f * (g + (0.044715f * g) *
// (g * g))  (gelu(gate, approximate="tanh") * up, kernels/rows.h's expression with CUDA's expf);
// out may alias gate.
void gelu_tanh_mul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
                   float* out, int64_t out_stride, int64_t M, int64_t F, cudaStream_t stream);

// x[m,i] = x[m,i] * factor.
void scale_inplace(float* x, int64_t x_stride, float factor, int64_t M, int64_t D,
                   cudaStream_t stream);

// y[m,i] = y[m,i] + x[m,i]; x_stride 0 adds the one row x to every row of y (a bias).
void add_inplace(float* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t M, int64_t D,
                 cudaStream_t stream);

// out[m, k] = bf16_rne(x[m, k]) for k < K and +0 for K <= k < K_padded (the GEMM's zero pad).
void to_bf16_padded(const float* x, int64_t x_stride, uint16_t* out, int64_t out_stride, int64_t M,
                    int64_t K, int64_t K_padded, cudaStream_t stream);

// out[t, :] = widen(table[ids[t], :]) for t < T; table bf16 (uint16_t bits) or f32 (table_bf16
// chooses); ids on the device, each in [0, table rows) (the caller checks).
void embed_rows(const void* table, bool table_bf16, int64_t table_stride, const int32_t* ids,
                float* out, int64_t out_stride, int64_t T, int64_t D, cudaStream_t stream);

// out[r, :] = x[rows[r], :] for r < R (rows on the device).
void gather_rows(const float* x, int64_t x_stride, const int32_t* rows, float* out,
                 int64_t out_stride, int64_t R, int64_t D, cudaStream_t stream);

}  // namespace bx::cuda
