// The reference of the GPU Mixture-of-Experts layer (moe.h moe_layer_reference): the same
// contract through other code. Router: gemm_bf16_reference. Routing and grouping: the CPU's
// kernels/moe_routing.h on the copied logits. Experts: for each expert with rows, its rows
// gathered on the host, then gemm_bf16_reference for the gate and the up projection, rows.h
// silu_mul and to_bf16_padded, gemm_bf16_reference for the down projection. Combine: on the
// host, in rank order, one rounded product and one rounded sum at a time.
#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/rows.h"
#include "kernels/moe_routing.h"

namespace bx::cuda {
namespace {

int64_t round_up8(int64_t n) {
  return (n + 7) / 8 * 8;
}

// y[M, N] = x[M, K] W[N, K]^T through the reference kernel.
void reference_gemm(const uint16_t* x, int64_t x_stride, const uint16_t* w, int64_t w_stride,
                    float* y, int64_t y_stride, int64_t M, int64_t N, int64_t K,
                    cudaStream_t stream) {
  GemmArgs g;
  g.x = x;
  g.x_stride = x_stride;
  g.w = w;
  g.w_stride = w_stride;
  g.y = y;
  g.y_stride = y_stride;
  g.M = M;
  g.N = N;
  g.K = K;
  gemm_bf16_reference(g, stream);
}

// a * b + c with each operation rounded on its own (a volatile product keeps the host compiler
// from fusing them).
float mul_add(float a, float b, float c) {
  volatile float product = a * b;
  return c + product;
}

}  // namespace

void moe_layer_reference(const MoeLayerArgs& a, cudaStream_t stream) {
  check_moe_layer_args(a, "moe_layer_reference");
  if (a.T == 0) return;
  const int64_t T = a.T, D = a.D, F = a.F, Dp = round_up8(D), Fp = round_up8(F);
  const int E = a.n_experts, k = a.top_k;
  const int64_t S = T * k;

  DeviceBuffer xb(static_cast<size_t>(T * Dp) * 2), logits(static_cast<size_t>(T * E) * 4);
  to_bf16_padded(a.x, a.x_stride, xb.get<uint16_t>(), Dp, T, D, Dp, stream);
  reference_gemm(xb.get<uint16_t>(), Dp, a.router, a.router_stride, logits.get<float>(), E, T, E,
                 Dp, stream);
  check_cuda(cudaStreamSynchronize(stream), "moe_layer_reference: router");
  std::vector<float> logits_h(static_cast<size_t>(T * E)), weights(static_cast<size_t>(S));
  std::vector<int32_t> ids(static_cast<size_t>(S));
  logits.download(logits_h.data(), logits_h.size() * 4);
  const MoeRouting routing{E, k, a.normalize};
  route_tokens(logits_h.data(), E, T, routing, ids.data(), weights.data());
  std::vector<int64_t> offsets(static_cast<size_t>(E + 1)), slots(static_cast<size_t>(S));
  group_by_expert(ids.data(), T, k, E, offsets.data(), slots.data());

  std::vector<uint16_t> xb_h(static_cast<size_t>(T * Dp));
  xb.download(xb_h.data(), xb_h.size() * 2);
  std::vector<float> out(static_cast<size_t>(S * D));  // by slot
  for (int e = 0; e < E; ++e) {
    const int64_t first = offsets[e], n = offsets[e + 1] - first;
    if (n == 0) continue;
    std::vector<uint16_t> xe(static_cast<size_t>(n * Dp));
    for (int64_t j = 0; j < n; ++j) {
      const int64_t t = slots[first + j] / k;
      std::copy_n(xb_h.data() + t * Dp, Dp, xe.data() + j * Dp);
    }
    DeviceBuffer xe_d(xe.size() * 2), g(static_cast<size_t>(n * F) * 4),
        u(static_cast<size_t>(n * F) * 4), act(static_cast<size_t>(n * Fp) * 2),
        o(static_cast<size_t>(n * D) * 4);
    xe_d.upload(xe.data(), xe.size() * 2);
    reference_gemm(xe_d.get<uint16_t>(), Dp, a.gate + e * F * a.gate_up_stride, a.gate_up_stride,
                   g.get<float>(), F, n, F, Dp, stream);
    reference_gemm(xe_d.get<uint16_t>(), Dp, a.up + e * F * a.gate_up_stride, a.gate_up_stride,
                   u.get<float>(), F, n, F, Dp, stream);
    silu_mul(g.get<float>(), F, u.get<float>(), F, g.get<float>(), F, n, F, stream);
    to_bf16_padded(g.get<float>(), F, act.get<uint16_t>(), Fp, n, F, Fp, stream);
    reference_gemm(act.get<uint16_t>(), Fp, a.down + e * D * a.down_stride, a.down_stride,
                   o.get<float>(), D, n, D, Fp, stream);
    check_cuda(cudaStreamSynchronize(stream), "moe_layer_reference: expert");
    std::vector<float> o_h(static_cast<size_t>(n * D));
    o.download(o_h.data(), o_h.size() * 4);
    for (int64_t j = 0; j < n; ++j) {
      std::copy_n(o_h.data() + j * D, D, out.data() + slots[first + j] * D);
    }
  }

  std::vector<float> y(static_cast<size_t>((T - 1) * a.y_stride + D));
  check_cuda(cudaMemcpy(y.data(), a.y, y.size() * 4, cudaMemcpyDeviceToHost),
             "moe_layer_reference: y");
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < D; ++c) {
      volatile float acc = weights[t * k] * out[(t * k) * D + c];
      for (int r = 1; r < k; ++r) acc = mul_add(weights[t * k + r], out[(t * k + r) * D + c], acc);
      y[t * a.y_stride + c] = y[t * a.y_stride + c] + acc;
    }
  }
  check_cuda(cudaMemcpy(a.y, y.data(), y.size() * 4, cudaMemcpyHostToDevice),
             "moe_layer_reference: y");
}

}  // namespace bx::cuda
