// The Mixture-of-Experts layer (kernels/cuda/moe.h) on Qwen3-30B-A3B's shape: D = 2048, 128
// experts of F = 768, top-8, normalized weights.
//
// Decode (T = 1, 2, 8 tokens): the invariant layer (also with early starts, and replayed as a
// CUDA graph as the engine's decode steps are, which removes the host's launch costs: at T = 1
// they exceed the GPU's time) and the fast mode (cuBLAS router, atomicAdd combine) against the
// floor of the bytes the layer must read: the router [128, 2048] and, for each distinct expert the
// tokens chose, its gate, up and down rows (3 x 768 x 2048 bf16 = 9.4 MB), over the measured copy
// bandwidth (timing.h copy_bandwidth). Eight input sets rotate, each routing to other experts, so
// the weights come from memory rather than L2.
//
// Prefill (T = 4096, 32768 routed rows, about 256 per expert): the whole invariant layer (router,
// routing, grouping, both grouped GEMMs, combine) against cuBLAS's strided batched GEMM doing
// only the experts' three projections on 128 x 256 rows (cublasGemmStridedBatchedEx, bf16 in,
// f32 compute; the gate and up outputs f32, no SwiGLU, no routing, no combine): the baseline
// does less work than the layer.
//
// It also checks the layer against moe_layer_reference at T = 1 and T = 8 (bitwise), prints the
// time of each launch (differences of prefixes, MoeLayerArgs::launches) at T = 1 and 4096, and
// last times the expert GEMMs through gemm_bf16_grouped (MoeExpertGemm::wgmma) at T = 1, 2, 8 and
// 4096 after checking that they give the mma.sync path's bits, and at 4096 the gathered copy
// (MoeLayerArgs::gather_in_gemm off) against the gathering producer (bits and time).
//
// Usage: moe_bench [--quick]   (--quick: fewer samples)
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"
#include "kernels/cuda/moe.h"
#include "timing.h"

namespace {

using bx::bench::median_us;
using bx::cuda::check_cuda;
using bx::cuda::DeviceBuffer;

constexpr int64_t D = 2048, F = 768;
constexpr int E = 128, K_TOP = 8;
constexpr int kRotations = 8;

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: %s\n", what, cublasGetStatusString(s));
    std::exit(1);
  }
}

struct Weights {
  DeviceBuffer router, gate, up, down;
  Weights()
      : router(static_cast<size_t>(E * D) * 2),
        gate(static_cast<size_t>(E * F * D) * 2),
        up(static_cast<size_t>(E * F * D) * 2),
        down(static_cast<size_t>(E * D * F) * 2) {
    const float s_in = 1.0f / std::sqrt(static_cast<float>(D));
    bx::cuda::fill_uniform_bf16(router.get<uint16_t>(), E * D, 1, -1, 1, nullptr);
    bx::cuda::fill_uniform_bf16(gate.get<uint16_t>(), E * F * D, 2, -s_in, s_in, nullptr);
    bx::cuda::fill_uniform_bf16(up.get<uint16_t>(), E * F * D, 3, -s_in, s_in, nullptr);
    const float s_f = 1.0f / std::sqrt(static_cast<float>(F));
    bx::cuda::fill_uniform_bf16(down.get<uint16_t>(), E * D * F, 4, -s_f, s_f, nullptr);
  }
};

bx::cuda::MoeLayerArgs layer_args(const Weights& w, const float* x, float* y, int64_t T, void* ws) {
  bx::cuda::MoeLayerArgs a;
  a.x = x;
  a.x_stride = D;
  a.y = y;
  a.y_stride = D;
  a.T = T;
  a.D = D;
  a.F = F;
  a.n_experts = E;
  a.top_k = K_TOP;
  a.normalize = true;
  a.router = w.router.get<uint16_t>();
  a.router_stride = D;
  a.gate = w.gate.get<uint16_t>();
  a.up = w.up.get<uint16_t>();
  a.gate_up_stride = D;
  a.down = w.down.get<uint16_t>();
  a.down_stride = F;
  a.workspace = ws;
  a.expert_gemm = bx::cuda::MoeExpertGemm::mma_sync;  // the tables' first half; wgmma: the last
  return a;
}

// Distinct experts the T tokens of input set r choose (read back from a run's routing).
int distinct_experts(const Weights& w, const DeviceBuffer& x, int64_t T) {
  DeviceBuffer logits(static_cast<size_t>(T * E) * 4), ids(static_cast<size_t>(T * K_TOP) * 4),
      wts(static_cast<size_t>(T * K_TOP) * 4), xb(static_cast<size_t>(T * D) * 2);
  // The router logits through the reference path's pieces would be slower; run the layer's
  // routing on its own: to_bf16 + router GEMM + moe_route, via a T-token layer workspace.
  DeviceBuffer ws(bx::cuda::moe_layer_workspace_bytes(T, D, F, E, K_TOP));
  DeviceBuffer y(static_cast<size_t>(T * D) * 4);
  bx::cuda::moe_layer(layer_args(w, x.get<float>(), y.get<float>(), T, ws.get()), nullptr);
  check_cuda(cudaDeviceSynchronize(), "routing run");
  // The layer's workspace starts with xb [T, D] bf16 then logits [T, E] (256-byte aligned).
  const size_t xb_bytes = (static_cast<size_t>(T * D) * 2 + 255) / 256 * 256;
  std::vector<float> l(static_cast<size_t>(T * E));
  check_cuda(cudaMemcpy(l.data(), static_cast<const char*>(ws.get()) + xb_bytes, l.size() * 4,
                        cudaMemcpyDeviceToHost),
             "logits");
  std::set<int> chosen;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int> order(E);
    for (int e = 0; e < E; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + K_TOP, order.end(), [&](int a, int b) {
      return l[t * E + a] > l[t * E + b] || (l[t * E + a] == l[t * E + b] && a < b);
    });
    for (int r = 0; r < K_TOP; ++r) chosen.insert(order[r]);
  }
  return static_cast<int>(chosen.size());
}

bool layer_equals_reference(const Weights& w, int64_t T) {
  DeviceBuffer x(static_cast<size_t>(T * D) * 4), y1(x.bytes()), y2(x.bytes());
  bx::cuda::fill_uniform_f32(x.get<float>(), T * D, 77, -1, 1, nullptr);
  bx::cuda::fill_uniform_f32(y1.get<float>(), T * D, 78, -1, 1, nullptr);
  check_cuda(cudaMemcpy(y2.get(), y1.get(), y1.bytes(), cudaMemcpyDeviceToDevice), "copy");
  DeviceBuffer ws(bx::cuda::moe_layer_workspace_bytes(T, D, F, E, K_TOP));
  bx::cuda::moe_layer(layer_args(w, x.get<float>(), y1.get<float>(), T, ws.get()), nullptr);
  bx::cuda::moe_layer_reference(layer_args(w, x.get<float>(), y2.get<float>(), T, ws.get()),
                                nullptr);
  check_cuda(cudaDeviceSynchronize(), "reference check");
  std::vector<float> a(static_cast<size_t>(T * D)), b(a.size());
  y1.download(a.data(), a.size() * 4);
  y2.download(b.data(), b.size() * 4);
  return std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Microseconds of one layer call at T tokens replayed as a CUDA graph (one graph per input set,
// as the engine replays decode steps): the GPU's time without the host's launch costs.
double graph_us(const Weights& w, int64_t T, bool wgmma, int samples, int launches = 0) {
  cudaStream_t stream;
  check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");  // blocking: ordered with stream 0
  std::vector<DeviceBuffer> xs, ys;
  DeviceBuffer ws(bx::cuda::moe_layer_workspace_bytes(T, D, F, E, K_TOP));
  std::vector<cudaGraphExec_t> execs;
  for (int r = 0; r < kRotations; ++r) {
    xs.emplace_back(static_cast<size_t>(T * D) * 4);
    ys.emplace_back(static_cast<size_t>(T * D) * 4);
    bx::cuda::fill_uniform_f32(xs.back().get<float>(), T * D, 100 + r, -1, 1, nullptr);
    bx::cuda::fill_uniform_f32(ys.back().get<float>(), T * D, 200 + r, -1, 1, nullptr);
    bx::cuda::MoeLayerArgs a = layer_args(w, xs[r].get<float>(), ys[r].get<float>(), T, ws.get());
    if (wgmma) a.expert_gemm = bx::cuda::MoeExpertGemm::wgmma;
    a.launches = launches;
    check_cuda(cudaDeviceSynchronize(), "fill");
    bx::cuda::moe_layer(a, stream);  // once outside the capture (one-time kernel attributes)
    check_cuda(cudaStreamSynchronize(stream), "warm-up");
    cudaGraph_t graph;
    check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), "begin capture");
    bx::cuda::moe_layer(a, stream);
    check_cuda(cudaStreamEndCapture(stream, &graph), "end capture");
    cudaGraphExec_t exec;
    check_cuda(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
    cudaGraphDestroy(graph);
    execs.push_back(exec);
  }
  const double us =
      median_us([&](int r) { check_cuda(cudaGraphLaunch(execs[r], stream), "cudaGraphLaunch"); },
                kRotations, samples);
  for (cudaGraphExec_t e : execs) cudaGraphExecDestroy(e);
  cudaStreamDestroy(stream);
  return us;
}

// Each launch of the layer at T tokens: the time of its first k launches minus its first k - 1
// (MoeLayerArgs::launches), medians over 8 rotated input sets replayed as CUDA graphs at small T.
void breakdown(const Weights& w, int64_t T, bool wgmma, int samples,
               bool gather_in_gemm = bx::cuda::MoeLayerArgs{}.gather_in_gemm) {
  const int rot = T <= 64 ? kRotations : 1;
  std::vector<DeviceBuffer> xs, ys;
  for (int r = 0; r < rot; ++r) {
    xs.emplace_back(static_cast<size_t>(T * D) * 4);
    ys.emplace_back(static_cast<size_t>(T * D) * 4);
    bx::cuda::fill_uniform_f32(xs.back().get<float>(), T * D, 500 + r, -1, 1, nullptr);
    bx::cuda::fill_uniform_f32(ys.back().get<float>(), T * D, 600 + r, -1, 1, nullptr);
  }
  DeviceBuffer ws(bx::cuda::moe_layer_workspace_bytes(T, D, F, E, K_TOP));
  bx::cuda::MoeLayerArgs shape = layer_args(w, nullptr, nullptr, T, nullptr);
  if (wgmma) shape.expert_gemm = bx::cuda::MoeExpertGemm::wgmma;
  shape.gather_in_gemm = gather_in_gemm;
  const std::vector<std::string> names = bx::cuda::moe_layer_launch_names(shape);
  std::printf("\nsteps at T = %lld (%s experts%s):", static_cast<long long>(T),
              wgmma ? "wgmma" : "mma.sync", gather_in_gemm ? ", gather_in_gemm" : "");
  double previous = 0;
  for (size_t k = 1; k <= names.size(); ++k) {
    // Small T: as CUDA graphs (direct launches would time the host).
    const double us = T <= 64 ? graph_us(w, T, wgmma, samples, static_cast<int>(k))
                              : median_us(
                                    [&](int r) {
                                      bx::cuda::MoeLayerArgs a = layer_args(
                                          w, xs[r].get<float>(), ys[r].get<float>(), T, ws.get());
                                      if (wgmma) a.expert_gemm = bx::cuda::MoeExpertGemm::wgmma;
                                      a.gather_in_gemm = gather_in_gemm;
                                      a.launches = static_cast<int>(k);
                                      bx::cuda::moe_layer(a, nullptr);
                                    },
                                    rot, samples);
    std::printf(" %s %.1f", names[k - 1].c_str(), us - previous);
    previous = us;
  }
  std::printf(" (total %.1f us)\n", previous);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const int samples = quick ? 5 : 11;
  if (!bx::bench::report_device("moe_bench")) return 0;
  const double bw = bx::bench::copy_bandwidth();
  std::printf("copy bandwidth: %.0f GB/s (read + written)\n", bw * 1e-9);
  std::printf("shape: D %lld, %d experts of F %lld, top-%d (Qwen3-30B-A3B)\n",
              static_cast<long long>(D), E, static_cast<long long>(F), K_TOP);
  Weights w;
  int status = 0;
  for (const int64_t T : {int64_t{1}, int64_t{8}}) {
    const bool same = layer_equals_reference(w, T);
    std::printf("layer = reference at T=%lld: %s\n", static_cast<long long>(T),
                same ? "yes" : "NO");
    status |= same ? 0 : 1;
  }

  std::printf(
      "\n| decode T (mma.sync experts) | mode | us | distinct experts (set 0) | floor us | "
      "floor/us |\n");
  std::printf("|---|---|---|---|---|---|\n");
  const double expert_bytes = 3.0 * F * D * 2;
  for (const int64_t T : {int64_t{1}, int64_t{2}, int64_t{8}}) {
    std::vector<DeviceBuffer> xs, ys;
    for (int r = 0; r < kRotations; ++r) {
      xs.emplace_back(static_cast<size_t>(T * D) * 4);
      ys.emplace_back(static_cast<size_t>(T * D) * 4);
      bx::cuda::fill_uniform_f32(xs.back().get<float>(), T * D, 100 + r, -1, 1, nullptr);
      bx::cuda::fill_uniform_f32(ys.back().get<float>(), T * D, 200 + r, -1, 1, nullptr);
    }
    DeviceBuffer ws(bx::cuda::moe_layer_workspace_bytes(T, D, F, E, K_TOP));
    const int experts = distinct_experts(w, xs[0], T);
    const double floor_us = (experts * expert_bytes + 2.0 * E * D) / bw * 1e6;
    // invariant; invariant with early starts (programmatic dependent launch); fast.
    for (const char* mode : {"invariant", "invariant, early start", "fast"}) {
      const std::string m = mode;
      const double us = median_us(
          [&](int r) {
            bx::cuda::MoeLayerArgs a =
                layer_args(w, xs[r].get<float>(), ys[r].get<float>(), T, ws.get());
            a.early_start = m == "invariant, early start";
            if (m == "fast") {
              a.router_gemm = bx::cuda::MoeRouterGemm::cublas;
              a.combine = bx::cuda::MoeCombineOrder::atomic;
            }
            bx::cuda::moe_layer(a, nullptr);
          },
          kRotations, samples);
      std::printf("| %lld | %s | %.1f | %d | %.1f | %.2f |\n", static_cast<long long>(T), mode, us,
                  experts, floor_us, floor_us / us);
    }
    const double us = graph_us(w, T, false, samples);
    std::printf("| %lld | invariant, CUDA graph | %.1f | %d | %.1f | %.2f |\n",
                static_cast<long long>(T), us, experts, floor_us, floor_us / us);
    std::fflush(stdout);
  }

  // Prefill.
  const int64_t T = 4096, S = T * K_TOP, per_expert = S / E;
  DeviceBuffer x(static_cast<size_t>(T * D) * 4), y(x.bytes());
  bx::cuda::fill_uniform_f32(x.get<float>(), T * D, 300, -1, 1, nullptr);
  bx::cuda::fill_uniform_f32(y.get<float>(), T * D, 301, -1, 1, nullptr);
  DeviceBuffer ws(bx::cuda::moe_layer_workspace_bytes(T, D, F, E, K_TOP));
  double layer_us[2];
  for (const bool fast : {false, true}) {
    layer_us[fast] = median_us(
        [&](int) {
          bx::cuda::MoeLayerArgs a = layer_args(w, x.get<float>(), y.get<float>(), T, ws.get());
          if (fast) {
            a.router_gemm = bx::cuda::MoeRouterGemm::cublas;
            a.combine = bx::cuda::MoeCombineOrder::atomic;
          }
          bx::cuda::moe_layer(a, nullptr);
        },
        1, samples);
  }
  DeviceBuffer xe(static_cast<size_t>(S * D) * 2), act(static_cast<size_t>(S * F) * 2),
      g(static_cast<size_t>(S * F) * 4), u(g.bytes()), o(static_cast<size_t>(S * D) * 4);
  bx::cuda::fill_uniform_bf16(xe.get<uint16_t>(), S * D, 302, -1, 1, nullptr);
  bx::cuda::fill_uniform_bf16(act.get<uint16_t>(), S * F, 303, -1, 1, nullptr);
  cublasHandle_t h;
  check_cublas(cublasCreate(&h), "cublasCreate");
  const float alpha = 1.0f, beta = 0.0f;
  // Row-major out[M, N] = in[M, K] W[N, K]^T per expert: column-major W^T (op T) times in^T.
  auto batched = [&](const uint16_t* in, const uint16_t* wt, float* out, int64_t N, int64_t Kd) {
    check_cublas(
        cublasGemmStridedBatchedEx(
            h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(per_expert),
            static_cast<int>(Kd), &alpha, wt, CUDA_R_16BF, static_cast<int>(Kd), N * Kd, in,
            CUDA_R_16BF, static_cast<int>(Kd), per_expert * Kd, &beta, out, CUDA_R_32F,
            static_cast<int>(N), per_expert * N, E, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmStridedBatchedEx");
  };
  const double blas_us = median_us(
      [&](int) {
        batched(xe.get<uint16_t>(), w.gate.get<uint16_t>(), g.get<float>(), F, D);
        batched(xe.get<uint16_t>(), w.up.get<uint16_t>(), u.get<float>(), F, D);
        batched(act.get<uint16_t>(), w.down.get<uint16_t>(), o.get<float>(), D, F);
      },
      1, samples);
  const double flops = 2.0 * S * D * F * 3;
  std::printf(
      "\n| prefill T (mma.sync experts) | what | us | TFLOP/s (expert GEMMs) | cuBLAS us / this us "
      "|\n");
  std::printf("|---|---|---|---|---|\n");
  std::printf("| %lld | invariant layer | %.0f | %.0f | %.2f |\n", static_cast<long long>(T),
              layer_us[0], flops / layer_us[0] * 1e-6, blas_us / layer_us[0]);
  std::printf("| %lld | fast layer | %.0f | %.0f | %.2f |\n", static_cast<long long>(T),
              layer_us[1], flops / layer_us[1] * 1e-6, blas_us / layer_us[1]);
  std::printf("| %lld | cuBLAS strided batched, 3 projections only | %.0f | %.0f | 1.00 |\n",
              static_cast<long long>(T), blas_us, flops / blas_us * 1e-6);
  std::fflush(stdout);
  breakdown(w, 1, false, samples);
  breakdown(w, T, false, samples);

  // Last: the wgmma expert path (gemm_grouped.h), newest; its bits checked against mma.sync's.
  std::printf(
      "\n| wgmma experts (the default): T | bits = mma.sync | us | floor us or cuBLAS us | ratio "
      "|\n");
  std::printf("|---|---|---|---|---|\n");
  std::fflush(stdout);
  for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{8}, T}) {
    std::vector<DeviceBuffer> xs, ys;
    const int rot = n == T ? 1 : kRotations;
    for (int r = 0; r < rot; ++r) {
      xs.emplace_back(static_cast<size_t>(n * D) * 4);
      ys.emplace_back(static_cast<size_t>(n * D) * 4);
      bx::cuda::fill_uniform_f32(xs.back().get<float>(), n * D, 100 + r, -1, 1, nullptr);
      bx::cuda::fill_uniform_f32(ys.back().get<float>(), n * D, 200 + r, -1, 1, nullptr);
    }
    DeviceBuffer wsn(bx::cuda::moe_layer_workspace_bytes(n, D, F, E, K_TOP));
    DeviceBuffer y_mma(ys[0].bytes()), y_wg(ys[0].bytes());
    for (DeviceBuffer* out : {&y_mma, &y_wg}) {
      check_cuda(cudaMemcpy(out->get(), ys[0].get(), ys[0].bytes(), cudaMemcpyDeviceToDevice),
                 "copy");
      bx::cuda::MoeLayerArgs a = layer_args(w, xs[0].get<float>(), out->get<float>(), n, wsn.get());
      if (out == &y_wg) a.expert_gemm = bx::cuda::MoeExpertGemm::wgmma;
      bx::cuda::moe_layer(a, nullptr);
    }
    check_cuda(cudaDeviceSynchronize(), "wgmma check");
    std::vector<float> mma_h(static_cast<size_t>(n * D)), wg_h(mma_h.size());
    y_mma.download(mma_h.data(), mma_h.size() * 4);
    y_wg.download(wg_h.data(), wg_h.size() * 4);
    const bool same = std::memcmp(mma_h.data(), wg_h.data(), mma_h.size() * 4) == 0;
    status |= same ? 0 : 1;
    const double us = median_us(
        [&](int r) {
          bx::cuda::MoeLayerArgs a =
              layer_args(w, xs[r].get<float>(), ys[r].get<float>(), n, wsn.get());
          a.expert_gemm = bx::cuda::MoeExpertGemm::wgmma;
          bx::cuda::moe_layer(a, nullptr);
        },
        rot, samples);
    double ref_us = blas_us;
    if (n != T) {
      const int experts = distinct_experts(w, xs[0], n);
      ref_us = (experts * 3.0 * F * D * 2 + 2.0 * E * D) / bw * 1e6;
    }
    std::printf("| %lld | %s | %.1f | %.1f | %.2f |\n", static_cast<long long>(n),
                same ? "yes" : "NO", us, ref_us, ref_us / us);
    if (n != T) {
      const double g_us = graph_us(w, n, true, samples);
      std::printf("| %lld | %s, CUDA graph | %.1f | %.1f | %.2f |\n", static_cast<long long>(n),
                  same ? "yes" : "NO", g_us, ref_us, ref_us / g_us);
    }
    std::fflush(stdout);
  }
  breakdown(w, 1, true, samples);
  breakdown(w, T, true, samples);
  {  // Prefill with the other gather (MoeLayerArgs::gather_in_gemm) than the default: bits, time.
    const bool other = !bx::cuda::MoeLayerArgs{}.gather_in_gemm;
    std::printf("\n| prefill T | bits = default | us | cuBLAS us | cuBLAS us / this us |\n");
    std::printf("|---|---|---|---|---|\n");
    DeviceBuffer y_default(y.bytes()), y_other(y.bytes());
    for (DeviceBuffer* out : {&y_default, &y_other}) {
      check_cuda(cudaMemcpy(out->get(), y.get(), y.bytes(), cudaMemcpyDeviceToDevice), "copy");
      bx::cuda::MoeLayerArgs a = layer_args(w, x.get<float>(), out->get<float>(), T, ws.get());
      a.expert_gemm = bx::cuda::MoeExpertGemm::wgmma;
      if (out == &y_other) a.gather_in_gemm = other;
      bx::cuda::moe_layer(a, nullptr);
    }
    check_cuda(cudaDeviceSynchronize(), "gather check");
    std::vector<float> d_h(static_cast<size_t>(T * D)), o_h(d_h.size());
    y_default.download(d_h.data(), d_h.size() * 4);
    y_other.download(o_h.data(), o_h.size() * 4);
    const bool same = std::memcmp(d_h.data(), o_h.data(), d_h.size() * 4) == 0;
    status |= same ? 0 : 1;
    const double other_us = median_us(
        [&](int) {
          bx::cuda::MoeLayerArgs a = layer_args(w, x.get<float>(), y.get<float>(), T, ws.get());
          a.expert_gemm = bx::cuda::MoeExpertGemm::wgmma;
          a.gather_in_gemm = other;
          bx::cuda::moe_layer(a, nullptr);
        },
        1, samples);
    std::printf("| %lld | %s, gather_in_gemm %s (%s) | %.1f | %.1f | %.2f |\n",
                static_cast<long long>(T), same ? "yes" : "NO", other ? "on" : "off",
                other ? "the gated GEMM's producer gathers" : "a gathered copy", other_us, blas_us,
                blas_us / other_us);
    std::fflush(stdout);
  }
  breakdown(w, T, true, samples, !bx::cuda::MoeLayerArgs{}.gather_in_gemm);
  cublasDestroy(h);
  return status;
}
