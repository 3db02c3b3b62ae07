// Row-wise kernels: one row per worker, reductions in the canonical lane layout (lanes.h, R5).
//
// Each output row depends only on the same input row, so results never depend on M, on the
// other rows or on the thread count. Elementwise steps are plain IEEE operations in the order
// written below (the build forbids FMA contraction), so every ISA path gives the same bits.
#pragma once

#include <cstdint>

namespace bx {

class ThreadPool;

// RMSNorm of each row:  out[m,i] = (x[m,i] * r) * w[i],
//   r = 1.0f / sqrt(ss / D + eps),  ss = canonical dot(x[m,:], x[m,:]) over D.
// x [M, D] (row stride x_stride), w [D], out [M, D] (row stride out_stride); out may alias x.
void rmsnorm(const float* x, int64_t x_stride, const float* w, float eps, float* out,
             int64_t out_stride, int64_t M, int64_t D, ThreadPool& pool);

// Log-softmax of each row:  out[i] = (x[i] - mx) - log(s),  mx = row_max(x),
//   s = canonical sum over i of exp(x[i] - mx).   Uses exp_f32 / log_f32 (math.h).
// IEEE arithmetic as written decides the special cases: a row holding a NaN or a +inf, or whose
// elements are all -inf, comes out all NaN; an element of -inf in an otherwise finite row gives
// -inf. out may alias x.
void log_softmax(const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t M,
                 int64_t N, ThreadPool& pool);

// Largest element of x[0..n): NaN if any element is NaN, -inf if n == 0; +0 ranks above -0, so
// the result does not depend on the order of the elements.
float row_max(const float* x, int64_t n);

// Index of the largest element of x[0..n); ties go to the lowest index; NaNs are skipped.
// Returns 0 if n == 0 or every element is NaN.
int64_t argmax(const float* x, int64_t n);

// SwiGLU:  out[i] = (g[i] / (1.0f + exp(-g[i]))) * u[i]     -- F.silu(gate) * up
// gate and up are [M, F] with row strides; out may alias gate.
void silu_mul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
              float* out, int64_t out_stride, int64_t M, int64_t F, ThreadPool& pool);

// GEGLU with the tanh GELU (torch's gelu(approximate="tanh"), Gemma's gelu_pytorch_tanh):
//   gelu_tanh(g) = 0.5 g (1 + tanh(z)) = g / (1 + exp(-2z)),  z = sqrt(2/pi) (g + 0.044715 g^3)
//   out[i] = (g[i] / (1.0f + exp(-2.0f * z))) * u[i],  z = kSqrt2OverPi * (g + (0.044715f * g) * (g
//   * g))
// in f32 in that order, exp_f32 (math.h). gate, up [M, F] with row strides; out may alias gate.
inline constexpr float kSqrt2OverPi = 0.7978845608028654f;
float gelu_tanh(float g);
void gelu_tanh_mul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
                   float* out, int64_t out_stride, int64_t M, int64_t F, ThreadPool& pool);

// Residual add:  y[m,i] = y[m,i] + x[m,i].  x_stride may be 0: one row x[0,:] is added to every
// row of y (a bias).
void add_inplace(float* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t M, int64_t D,
                 ThreadPool& pool);

}  // namespace bx
