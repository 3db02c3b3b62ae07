#include "kernels/rows.h"

#include <cmath>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/cpu/exp_isa.h"
#include "kernels/lanes.h"
#include "kernels/math.h"
#include "kernels/matmul.h"

namespace bx {

// rmsnorm: out[m,i] = (x[m,i] * r) * w[i],  r = 1 / sqrt(dot(x[m,:], x[m,:]) / D + eps).
void rmsnorm(const float* x, int64_t x_stride, const float* w, float eps, float* out,
             int64_t out_stride, int64_t M, int64_t D, ThreadPool& pool) {
  const float d = static_cast<float>(D);
  pool.parallel_for(M, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* xr = x + m * x_stride;
      float* o = out + m * out_stride;
      const float ss = dot(xr, xr, D);  // read all of the row before writing (out may alias x)
      const float r = 1.0f / std::sqrt(ss / d + eps);
      for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] * r) * w[i];
    }
  });
}

float row_max(const float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isnan(v)) return v;
    // +0 wins over -0, so the result does not depend on which zero comes first.
    if (v > mx || (v == mx && !std::signbit(v))) mx = v;
  }
  return mx;
}

// log_softmax: out[i] = (x[i] - mx) - log(s),  s = canonical sum of exp(x[i] - mx).
// The AVX2 / AVX-512 paths (kernels/cpu/exp_{avx2,avx512}.cpp) compute the same sum with the
// vector exp_f32 in the same lane layout and tree, so every path gives the same bits.
void log_softmax(const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t M,
                 int64_t N, ThreadPool& pool) {
  const Isa isa = active_isa();
  pool.parallel_for(M, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* xr = x + m * x_stride;
      float* o = out + m * out_stride;
      if (isa == Isa::avx512) {
        const float mx = cpu::row_max_avx512(xr, N);
        const float log_s = log_f32(cpu::exp_sum_avx512(xr, N, mx));
        cpu::sub_sub_avx512(xr, N, mx, log_s, o);
        continue;
      }
      if (isa == Isa::avx2) {
        const float mx = cpu::row_max_avx2(xr, N);
        const float log_s = log_f32(cpu::exp_sum_avx2(xr, N, mx));
        cpu::sub_sub_avx2(xr, N, mx, log_s, o);
        continue;
      }
      const float mx = row_max(xr, N);
      // The canonical sum of lanes.h, with the exp computed as each term is added.
      float acc[lanes::kLanes] = {};
      const int64_t steps = (N + lanes::kLanes - 1) / lanes::kLanes;
      for (int64_t t = 0; t < steps; ++t) {
        for (int j = 0; j < lanes::kLanes; ++j) {
          const int64_t i = t * lanes::kLanes + j;
          acc[j] = acc[j] + (i < N ? exp_f32(xr[i] - mx) : 0.0f);
        }
      }
      const float log_s = log_f32(lanes::tree_reduce(acc));
      for (int64_t i = 0; i < N; ++i) o[i] = (xr[i] - mx) - log_s;
    }
  });
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) continue;
    if (best < 0 || x[i] > x[best]) best = i;  // strict: ties keep the lowest index
  }
  return best < 0 ? 0 : best;
}

// silu_mul: out[i] = (g[i] / (1 + exp(-g[i]))) * u[i]    -- F.silu(gate) * up
void silu_mul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
              float* out, int64_t out_stride, int64_t M, int64_t F, ThreadPool& pool) {
  pool.parallel_for(M, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* g = gate + m * gate_stride;
      const float* u = up + m * up_stride;
      float* o = out + m * out_stride;
      for (int64_t i = 0; i < F; ++i) o[i] = (g[i] / (1.0f + exp_f32(-g[i]))) * u[i];
    }
  });
}

// gelu_tanh(g) = g / (1 + exp(-2z)),  z = sqrt(2/pi) * (g + 0.044715 g^3)   (rows.h)
float gelu_tanh(float g) {
  const float z = kSqrt2OverPi * (g + (0.044715f * g) * (g * g));
  return g / (1.0f + exp_f32(-2.0f * z));
}

// gelu_tanh_mul: out[i] = gelu_tanh(g[i]) * u[i]
void gelu_tanh_mul(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
                   float* out, int64_t out_stride, int64_t M, int64_t F, ThreadPool& pool) {
  pool.parallel_for(M, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* g = gate + m * gate_stride;
      const float* u = up + m * up_stride;
      float* o = out + m * out_stride;
      for (int64_t i = 0; i < F; ++i) o[i] = gelu_tanh(g[i]) * u[i];
    }
  });
}

// add_inplace: y[m,i] = y[m,i] + x[m,i]
void add_inplace(float* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t M, int64_t D,
                 ThreadPool& pool) {
  pool.parallel_for(M, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      float* yr = y + m * y_stride;
      const float* xr = x + m * x_stride;
      for (int64_t i = 0; i < D; ++i) yr[i] = yr[i] + xr[i];
    }
  });
}

}  // namespace bx
