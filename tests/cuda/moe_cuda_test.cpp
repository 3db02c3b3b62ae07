// The Mixture-of-Experts layer on the GPU (kernels/cuda/moe.h) and MoE models on the CUDA backend.
//
//   routing     moe_route gives kernels/moe_routing.h's route_tokens bits on the same logits
//               (ties included, normalized or not).
//   reference   moe_layer equals moe_layer_reference (the same contract through the reference
//               GEMM, the CPU routing and a host combine), bit for bit, at T = 1 .. 300; with
//               programmatic dependent launch (small T, opt-in) and without, the same bits; the
//               fused small-batch launches (T <= 16) give the general launches' bits; the speed
//               kernels (opt-in, BITEXACT_MOE_SPEED=1) give the verified launches' bits, and the
//               whole suite runs on them with that variable set (scripts/device/run_opt_in.sh moe).
//   T1 / T3     a token alone equals the same token in any batch (1 .. 4096 tokens, every tile
//               height), with any expert load: a layer whose router sends every token to the same
//               experts (the rest empty), and top-1 of 8 where one expert takes all tokens.
//   controls    K split by the expert's token count; the combine ordered by expert load: some
//               token differs between alone and in a batch (the tests above can fail).
//   T2          accurate against a float64 evaluation of the same bf16 weights and inputs.
//   fast mode   cuBLAS router and atomicAdd combine: close to the invariant layer.
//   backend     CudaBackend's MoeLayers: the layer records into a CUDA graph (no host
//               synchronisation) and the recording and its replay give the direct bits; shapes
//               and scratch that do not fit are named.
//   kernels     the expert GEMMs through gemm_bf16_grouped (wgmma, the default) give the mma.sync
//               path's bits, the reference's, and a token alone's on the mma.sync path; the gated
//               GEMM gathering its rows gives the gathered copy's bits.
//   engine      random:qwen3-moe-tiny on the CUDA backend: every request in several schedules
//               equals the request alone; the split-K order (both controls) makes some differ.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "core/error.h"
#include "engine/engine.h"
#include "kernels/cuda/moe.h"
#include "kernels/moe_routing.h"
#include "model/loader.h"
#include "support/cuda_test_data.h"
#include "support/engine_runner.h"

namespace bx {
namespace {

using cuda::DeviceBuffer;

struct LayerShape {
  int64_t D, F;
  int E, k;
  bool normalize;
};

int64_t round_up8(int64_t n) {
  return (n + 7) / 8 * 8;
}

// bf16 weights [rows, cols] with rows padded by zeros to a multiple of 8 elements.
DeviceBuffer weights(int64_t rows, int64_t cols, uint32_t seed, float scale,
                     std::vector<uint16_t>* host_out = nullptr) {
  const int64_t stride = round_up8(cols);
  std::vector<uint16_t> v =
      test::random_bf16(static_cast<size_t>(rows * stride), seed, -scale, scale);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = cols; c < stride; ++c) v[r * stride + c] = 0;
  if (host_out != nullptr) *host_out = v;
  return test::to_device(v);
}

// A layer's weights on the device. skewed: router row e < k has +8 in column 0 and the others 0
// there, the rest of the router within +-0.1, so with x[:, 0] = 4 (other x within +-1) experts
// 0 .. k-1 lead every token's logits by about 32 against noise of std ~0.5: every token picks
// them, and the other experts get nothing.
struct Layer {
  LayerShape s;
  DeviceBuffer router, gate, up, down;
  std::vector<uint16_t> router_h, gate_h, up_h, down_h;  // the same bits on the host
  Layer(LayerShape shape, uint32_t seed, bool skewed) : s(shape) {
    router = weights(s.E, s.D, seed, skewed ? 0.1f : 1.0f, &router_h);
    if (skewed) {
      const int64_t stride = round_up8(s.D);
      for (int e = 0; e < s.E; ++e) router_h[e * stride] = f32_to_bf16(e < s.k ? 8.0f : 0.0f);
      router.upload(router_h.data(), router_h.size() * 2);
    }
    const float in_scale = 1.0f / std::sqrt(static_cast<float>(s.D));
    gate = weights(s.E * s.F, s.D, seed + 1, in_scale, &gate_h);
    up = weights(s.E * s.F, s.D, seed + 2, in_scale, &up_h);
    down = weights(s.E * s.D, s.F, seed + 3, 1.0f / std::sqrt(static_cast<float>(s.F)), &down_h);
  }
};

// moe(x) for one token in float64 from the bf16-rounded x and the bf16 weights: softmax, top-k
// (ties to the lower id), normalization, SwiGLU experts, the weighted sum.
std::vector<double> moe_float64(const Layer& l, const float* x) {
  const LayerShape& s = l.s;
  const int64_t Dp = round_up8(s.D), Fp = round_up8(s.F);
  std::vector<double> xb(s.D);
  for (int64_t d = 0; d < s.D; ++d) xb[d] = bf16_to_f32(f32_to_bf16(x[d]));
  std::vector<double> p(s.E);
  double mx = -INFINITY, sum = 0;
  for (int e = 0; e < s.E; ++e) {
    double acc = 0;
    for (int64_t d = 0; d < s.D; ++d) acc += xb[d] * bf16_to_f32(l.router_h[e * Dp + d]);
    p[e] = acc;
    mx = std::max(mx, acc);
  }
  for (double& v : p) sum += (v = std::exp(v - mx));
  std::vector<int> order(s.E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
  double norm = 0;
  for (int r = 0; r < s.k; ++r) norm += p[order[r]] / sum;
  std::vector<double> out(s.D, 0.0), act(s.F);
  for (int r = 0; r < s.k; ++r) {
    const int e = order[r];
    const double w = p[e] / sum / (s.normalize ? norm : 1.0);
    for (int64_t f = 0; f < s.F; ++f) {
      double g = 0, u = 0;
      for (int64_t d = 0; d < s.D; ++d) {
        g += xb[d] * bf16_to_f32(l.gate_h[(e * s.F + f) * Dp + d]);
        u += xb[d] * bf16_to_f32(l.up_h[(e * s.F + f) * Dp + d]);
      }
      act[f] = g / (1.0 + std::exp(-g)) * u;
    }
    for (int64_t d = 0; d < s.D; ++d) {
      double o = 0;
      for (int64_t f = 0; f < s.F; ++f) o += act[f] * bf16_to_f32(l.down_h[(e * s.D + d) * Fp + f]);
      out[d] += w * o;
    }
  }
  return out;
}

struct RunOptions {
  cuda::MoeExpertOrder order = cuda::MoeExpertOrder::canonical;
  cuda::MoeCombineOrder combine = cuda::MoeCombineOrder::rank;
  cuda::MoeRouterGemm router = cuda::MoeRouterGemm::invariant;
  cuda::MoeExpertGemm expert_gemm = cuda::MoeExpertGemm::wgmma;  // the layer's default
  bool early_start = false;
  bool gather_in_gemm = cuda::MoeLayerArgs{}.gather_in_gemm;  // the layer's default
  bool small_batch_kernels = true;
  bool speed_kernels = cuda::MoeLayerArgs{}.speed_kernels;  // BITEXACT_MOE_SPEED=1: on
  bool reference = false;
};

// y + moe(x) for the T rows of x and y (host, [T, D] each).
std::vector<float> run(const Layer& l, const std::vector<float>& x, const std::vector<float>& y0,
                       const RunOptions& o = {}) {
  const int64_t T = static_cast<int64_t>(x.size()) / l.s.D;
  DeviceBuffer xd = test::to_device(x), yd = test::to_device(y0);
  DeviceBuffer ws(
      std::max<size_t>(cuda::moe_layer_workspace_bytes(T, l.s.D, l.s.F, l.s.E, l.s.k), 16));
  test::poison(ws);
  cuda::MoeLayerArgs a;
  a.x = xd.get<float>();
  a.x_stride = l.s.D;
  a.y = yd.get<float>();
  a.y_stride = l.s.D;
  a.T = T;
  a.D = l.s.D;
  a.F = l.s.F;
  a.n_experts = l.s.E;
  a.top_k = l.s.k;
  a.normalize = l.s.normalize;
  a.router = l.router.get<uint16_t>();
  a.router_stride = round_up8(l.s.D);
  a.gate = l.gate.get<uint16_t>();
  a.up = l.up.get<uint16_t>();
  a.gate_up_stride = round_up8(l.s.D);
  a.down = l.down.get<uint16_t>();
  a.down_stride = round_up8(l.s.F);
  a.workspace = ws.get();
  a.expert_order = o.order;
  a.combine = o.combine;
  a.router_gemm = o.router;
  a.early_start = o.early_start;
  a.gather_in_gemm = o.gather_in_gemm;
  a.small_batch_kernels = o.small_batch_kernels;
  a.speed_kernels = o.speed_kernels;
  a.expert_gemm = o.expert_gemm;
  if (o.reference) {
    cuda::moe_layer_reference(a, nullptr);
  } else {
    cuda::moe_layer(a, nullptr);
  }
  test::sync();
  return test::to_host<float>(yd, y0.size());
}

// A pool of token rows (x) and residual rows (y); skewed: x[:, 0] = 4.
struct Pool {
  int64_t D;
  std::vector<float> x, y;
  Pool(int64_t n, int64_t d, uint32_t seed, bool skewed) : D(d) {
    x = test::random_f32(static_cast<size_t>(n * d), seed);
    y = test::random_f32(static_cast<size_t>(n * d), seed + 1);
    if (skewed) {
      for (int64_t i = 0; i < n; ++i) x[i * d] = 4.0f;
    }
  }
  // Rows `ids` of x and y, in that order.
  void gather(const std::vector<int>& ids, std::vector<float>& xb, std::vector<float>& yb) const {
    xb.resize(ids.size() * D);
    yb.resize(ids.size() * D);
    for (size_t i = 0; i < ids.size(); ++i) {
      std::copy_n(x.data() + ids[i] * D, D, xb.data() + i * D);
      std::copy_n(y.data() + ids[i] * D, D, yb.data() + i * D);
    }
  }
};

// Each pool row's result alone (T = 1).
std::vector<std::vector<float>> alone_results(const Layer& l, const Pool& p, int n,
                                              const RunOptions& o = {}) {
  std::vector<std::vector<float>> out;
  std::vector<float> xb, yb;
  for (int i = 0; i < n; ++i) {
    p.gather({i}, xb, yb);
    out.push_back(run(l, xb, yb, o));
  }
  return out;
}

// Rows of the batch result that differ from the same token alone.
int rows_differing(const std::vector<float>& batch, const std::vector<int>& ids,
                   const std::vector<std::vector<float>>& alone, int64_t D) {
  int differ = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    differ += test::same_bits(batch.data() + i * D, alone[ids[i]].data(), D) ? 0 : 1;
  }
  return differ;
}

// n pool indices below `pool`, shuffled, with repeats once n exceeds half the pool.
std::vector<int> batch_ids(int n, int pool, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int> ids(n);
  for (int i = 0; i < n; ++i)
    ids[i] =
        n <= pool / 2 ? (i * 7919 + static_cast<int>(seed)) % pool : static_cast<int>(rng() % pool);
  std::shuffle(ids.begin(), ids.end(), rng);
  return ids;
}

TEST(MoeCuda, RoutingIsTheCpuRouting) {
  BX_REQUIRE_HOPPER();
  struct Case {
    int E, k;
    bool normalize;
  };
  for (const Case c : {Case{128, 8, true}, Case{128, 8, false}, Case{16, 4, true},
                       Case{8, 1, false}, Case{512, 32, true}, Case{37, 5, true}}) {
    const int64_t T = 257;
    std::mt19937 rng(static_cast<uint32_t>(c.E * 31 + c.k));
    std::vector<float> logits(static_cast<size_t>(T * c.E));
    for (int64_t t = 0; t < T; ++t) {
      for (int e = 0; e < c.E; ++e) {
        // Every third row draws from 5 values (ties everywhere), the others are continuous.
        logits[t * c.E + e] = t % 3 == 0 ? static_cast<float>(static_cast<int>(rng() % 5)) * 0.5f
                                         : std::uniform_real_distribution<float>(-4, 4)(rng);
      }
    }
    std::vector<int32_t> ids(static_cast<size_t>(T * c.k));
    std::vector<float> w(static_cast<size_t>(T * c.k));
    route_tokens(logits.data(), c.E, T, MoeRouting{c.E, c.k, c.normalize}, ids.data(), w.data());
    DeviceBuffer ld = test::to_device(logits), idd(ids.size() * 4), wd(w.size() * 4);
    cuda::moe_route(ld.get<float>(), c.E, T, c.E, c.k, c.normalize, idd.get<int32_t>(),
                    wd.get<float>(), nullptr);
    test::sync();
    EXPECT_EQ(test::to_host<int32_t>(idd, ids.size()), ids) << c.E << " experts, top " << c.k;
    const std::vector<float> wg = test::to_host<float>(wd, w.size());
    EXPECT_TRUE(test::same_bits(wg.data(), w.data(), w.size())) << c.E << " experts, top " << c.k;
  }
}

TEST(MoeCuda, LayerEqualsItsReference) {
  BX_REQUIRE_HOPPER();
  for (const LayerShape s : {LayerShape{256, 96, 16, 4, true}, LayerShape{200, 64, 8, 2, false},
                             LayerShape{128, 48, 64, 8, true}}) {
    const Layer l(s, 11, false);
    for (int T : {1, 5, 16, 17, 64, 300}) {
      const Pool p(T, s.D, static_cast<uint32_t>(T), false);
      RunOptions ref;
      ref.reference = true;
      const std::vector<float> got = run(l, p.x, p.y), want = run(l, p.x, p.y, ref);
      EXPECT_TRUE(test::same_bits(got.data(), want.data(), got.size()))
          << "D " << s.D << " E " << s.E << " T " << T;
      EXPECT_FALSE(test::same_bits(got.data(), p.y.data(), got.size())) << "the layer added";
    }
  }
}

TEST(MoeCuda, LayerIsAccurateAgainstFloat64) {
  BX_REQUIRE_HOPPER();
  const LayerShape s{256, 96, 16, 4, true};
  const Layer l(s, 51, false);
  const int T = 64;
  const Pool p(T, s.D, 9, false);
  const std::vector<float> got = run(l, p.x, p.y);
  // bf16 rounding of the SwiGLU output (2^-9 relative) dominates: about 2e-3 of a row's norm.
  constexpr double kBound = 1e-2;
  int beyond = 0;
  double worst = 0;
  for (int t = 0; t < T; ++t) {
    const std::vector<double> want = moe_float64(l, p.x.data() + t * s.D);
    double err = 0, norm = 0;
    for (int64_t d = 0; d < s.D; ++d) {
      const double moe = static_cast<double>(got[t * s.D + d]) - p.y[t * s.D + d];
      err += (moe - want[d]) * (moe - want[d]);
      norm += want[d] * want[d];
    }
    const double rel = std::sqrt(err / norm);
    worst = std::max(worst, rel);
    beyond += rel > kBound ? 1 : 0;
  }
  std::printf("moe vs float64: worst row %.2e of its norm, %d of %d rows beyond %.0e\n", worst,
              beyond, T, kBound);
  EXPECT_LE(beyond, 1) << "more rows off than a near-tie route flip explains";
  EXPECT_GT(worst, 0.0) << "bf16 rounding must show";
}

TEST(MoeCuda, EarlyStartGivesThePlainLaunchBits) {
  BX_REQUIRE_HOPPER();
  const LayerShape s{256, 96, 16, 4, true};
  const Layer l(s, 61, false);
  for (int T : {1, 7, 64}) {
    const Pool p(T, s.D, 13, false);
    RunOptions early;
    early.early_start = true;
    const std::vector<float> plain = run(l, p.x, p.y), got = run(l, p.x, p.y, early);
    EXPECT_TRUE(test::same_bits(plain.data(), got.data(), got.size())) << T << " tokens";
  }
}

void expect_alone_equals_batches(const LayerShape& s, bool skewed) {
  const Layer l(s, 21, skewed);
  constexpr int kPool = 4096;
  const Pool p(kPool, s.D, 3, skewed);
  const std::vector<std::vector<float>> alone = alone_results(l, p, kPool);
  std::vector<float> xb, yb;
  for (int n : {1, 2, 3, 17, 64, 255, 1000, 4096}) {
    const std::vector<int> ids = batch_ids(n, kPool, static_cast<uint32_t>(n));
    p.gather(ids, xb, yb);
    const int differ = rows_differing(run(l, xb, yb), ids, alone, s.D);
    EXPECT_EQ(differ, 0) << n << " tokens" << (skewed ? ", all to the same experts" : "");
  }
}

TEST(MoeCuda, TokenAloneEqualsTheTokenInAnyBatch) {
  BX_REQUIRE_HOPPER();
  expect_alone_equals_batches(LayerShape{256, 96, 16, 4, true}, false);
}

TEST(MoeCuda, TokenAloneEqualsTheTokenWhenAllGoToTheSameExperts) {
  BX_REQUIRE_HOPPER();
  expect_alone_equals_batches(LayerShape{256, 96, 16, 4, true}, true);
  expect_alone_equals_batches(LayerShape{128, 64, 8, 1, false}, true);  // one expert takes all
}

int control_differences(const RunOptions& o) {
  const LayerShape s{256, 96, 16, 4, true};
  const Layer l(s, 31, false);
  constexpr int kPool = 300;
  const Pool p(kPool, s.D, 5, false);
  const std::vector<std::vector<float>> alone = alone_results(l, p, kPool, o);
  std::vector<int> ids(kPool);
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<float> xb, yb;
  p.gather(ids, xb, yb);
  return rows_differing(run(l, xb, yb, o), ids, alone, s.D);
}

TEST(MoeCuda, NegativeControlSplitByTokenCountDiffers) {
  BX_REQUIRE_HOPPER();
  RunOptions o;
  o.order = cuda::MoeExpertOrder::split_k_by_count;
  const int differ = control_differences(o);
  std::printf("split by count: %d of 300 tokens differ from alone\n", differ);
  EXPECT_GT(differ, 0);
}

TEST(MoeCuda, NegativeControlCombineByLoadDiffers) {
  BX_REQUIRE_HOPPER();
  RunOptions o;
  o.combine = cuda::MoeCombineOrder::by_load;
  const int differ = control_differences(o);
  std::printf("combine by load: %d of 300 tokens differ from alone\n", differ);
  EXPECT_GT(differ, 0);
}

TEST(MoeCuda, FastModeIsCloseToTheInvariantLayer) {
  BX_REQUIRE_HOPPER();
  const LayerShape s{256, 96, 16, 4, true};
  const Layer l(s, 41, false);
  const int T = 300;
  const Pool p(T, s.D, 7, false);
  RunOptions fast;
  fast.combine = cuda::MoeCombineOrder::atomic;
  fast.router = cuda::MoeRouterGemm::cublas;
  const std::vector<float> inv = run(l, p.x, p.y), got = run(l, p.x, p.y, fast);
  // Rows whose moe(x) moved by more than 1e-3 of its norm (a near-tie may flip a route).
  int far = 0;
  for (int t = 0; t < T; ++t) {
    double err = 0, norm = 0;
    for (int64_t c = 0; c < s.D; ++c) {
      const double d_inv = inv[t * s.D + c] - p.y[t * s.D + c];
      const double d = got[t * s.D + c] - inv[t * s.D + c];
      err += d * d;
      norm += d_inv * d_inv;
    }
    far += std::sqrt(err) > 1e-3 * std::sqrt(norm) ? 1 : 0;
  }
  EXPECT_LE(far, T / 50);
}

TEST(MoeCuda, BadShapesAreClearErrors) {
  BX_REQUIRE_HOPPER();
  cuda::MoeLayerArgs a;
  a.n_experts = 4;
  a.top_k = 5;
  a.D = 8;
  a.F = 8;
  try {
    cuda::check_moe_layer_args(a, "test");
    FAIL() << "top-5 of 4 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("top-5 of 4 experts"), std::string::npos) << e.what();
  }
}

// --- the layer through CudaBackend (MoeLayers) ---

struct BackendLayer {
  CudaBackend be;
  Tensor x, y, router, gate, up, down, scratch;
  std::vector<float> y0;
  MoeOp op;
  BackendLayer(int64_t T, int64_t D, int64_t F, int E, int k) {
    const auto matrix = [&](int64_t rows, int64_t cols, uint32_t seed, float scale) {
      const std::vector<float> v =
          test::random_f32(static_cast<size_t>(rows * cols), seed, -scale, scale);
      return be.upload_matrix(v.data(), rows, cols, DType::bf16);
    };
    router = matrix(E, D, 1, 1.0f);
    gate = matrix(E * F, D, 2, 0.1f);
    up = matrix(E * F, D, 3, 0.1f);
    down = matrix(E * D, F, 4, 0.1f);
    x = be.alloc(DType::f32, T, D);
    y = be.alloc(DType::f32, T, D);
    const std::vector<float> xh = test::random_f32(static_cast<size_t>(T * D), 5);
    be.copy_from_host(xh.data(), x);
    y0 = test::random_f32(static_cast<size_t>(T * D), 6);
    scratch = be.alloc(DType::f32, 1, (be.moe_scratch_bytes(T, D, F, E, k) + 3) / 4);
    op.x = x;
    op.y = y;
    op.router = router;
    op.gate = gate;
    op.up = up;
    op.down = down;
    op.top_k = k;
    op.normalize = true;
    op.scratch = scratch;
  }
  std::vector<float> result() {
    std::vector<float> out(y0.size());
    be.copy_to_host(y, out.data());
    return out;
  }
};

TEST(MoeCudaBackend, TheLayerRecordsAndReplaysInACudaGraph) {
  BX_REQUIRE_HOPPER();
  for (int64_t T : {1, 8, 200}) {
    BackendLayer l(T, 128, 64, 16, 4);
    ASSERT_EQ(l.be.capabilities().moe, &l.be);
    l.be.copy_from_host(l.y0.data(), l.y);
    l.be.moe(l.op);
    const std::vector<float> direct = l.result();
    EXPECT_FALSE(test::same_bits(direct.data(), l.y0.data(), direct.size()));
    l.be.copy_from_host(l.y0.data(), l.y);
    l.be.begin_recording(7);
    l.be.moe(l.op);
    ASSERT_TRUE(l.be.end_recording(7, /*launch=*/true)) << T << " tokens: capture failed";
    const std::vector<float> recorded = l.result();
    EXPECT_TRUE(test::same_bits(direct.data(), recorded.data(), direct.size())) << T;
    l.be.copy_from_host(l.y0.data(), l.y);
    ASSERT_TRUE(l.be.replay(7));
    const std::vector<float> replayed = l.result();
    EXPECT_TRUE(test::same_bits(direct.data(), replayed.data(), direct.size())) << T;
  }
}

TEST(MoeCudaBackend, MismatchedWeightsAreClearErrors) {
  BX_REQUIRE_HOPPER();
  BackendLayer l(4, 128, 64, 16, 4);
  l.op.down = l.gate;  // [E*F, D] where [E*D, F] belongs
  try {
    l.be.moe(l.op);
    FAIL() << "a down projection of the gate's shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected [E, D], [E*F, D] twice, [E*D, F]"),
              std::string::npos)
        << e.what();
  }
  BackendLayer small(4, 128, 64, 16, 4);
  small.op.scratch = small.scratch.rows_view(0, 1);
  small.op.scratch.cols = 16;
  small.op.scratch.stride = 16;
  try {
    small.be.moe(small.op);
    FAIL() << "a 64-byte scratch was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("moe scratch of 64 bytes"), std::string::npos) << e.what();
  }
}

// --- random:qwen3-moe-tiny on the CUDA backend, through the engine ---

LoadedModel load_tiny_cuda(ReductionOrder order = ReductionOrder::canonical,
                           CudaBackend::Mode mode = CudaBackend::Mode::invariant) {
  LoadOptions o;
  o.max_batch_tokens = 4096;
  o.max_logit_rows = 64;
  o.reduction_order = order;
  o.make_backend = [mode] { return std::make_unique<CudaBackend>(mode); };
  return load_model("random:qwen3-moe-tiny:3", o);
}

std::vector<EngineRequest> engine_requests() {
  std::vector<EngineRequest> out;
  const int lengths[] = {1, 2, 5, 16, 17, 33, 64, 65, 100, 150, 199};
  for (int i = 0; i < 16; ++i) {
    EngineRequest r;
    const int length = lengths[i % std::size(lengths)];
    const int start = i < 8 ? 0 : 3 * i;  // the first 8 share prefixes
    for (int t = 0; t < length; ++t) r.prompt.push_back((start + t * 37 + t * t) % 1024);
    r.max_tokens = 5 + (i * 7) % 17;
    r.ignore_eos = true;
    if (i % 3 != 0) {
      r.sampling.temperature = 0.8f;
      r.sampling.seed = 100 + static_cast<uint64_t>(i);
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<test::RequestResult> run_together(LoadedModel& model,
                                              const std::vector<EngineRequest>& requests,
                                              const EngineOptions& options) {
  Engine engine(model, options);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const EngineRequest& r : requests) streams.push_back(engine.submit(r));
  engine.run_until_idle();
  std::vector<test::RequestResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) test::drain(*streams[i], out[i]);
  return out;
}

EngineOptions engine_options(int budget, int seqs, int chunk) {
  EngineOptions o;
  o.max_batch_tokens = budget;
  o.max_seqs = seqs;
  o.prefill_chunk = chunk;
  return o;
}

TEST(MoeCudaEngine, EveryScheduleEqualsEachRequestAlone) {
  BX_REQUIRE_HOPPER();
  LoadedModel model = load_tiny_cuda();
  EXPECT_EQ(model.backend->name(), "cuda-sm90");
  const std::vector<EngineRequest> requests = engine_requests();
  std::vector<test::RequestResult> alone;
  for (const EngineRequest& r : requests) alone.push_back(test::run_alone(model, r));
  for (const EngineOptions& o :
       {engine_options(4096, 64, 512), engine_options(16, 64, 512), engine_options(4096, 3, 7)}) {
    const int differ = test::count_differences(run_together(model, requests, o), alone);
    std::printf("cuda moe engine: budget %d, seqs %d, chunk %d: %d differ\n", o.max_batch_tokens,
                o.max_seqs, o.prefill_chunk, differ);
    EXPECT_EQ(differ, 0);
  }
}

TEST(MoeCudaEngine, NegativeControlSplitKOrderDiffers) {
  BX_REQUIRE_HOPPER();
  LoadedModel model = load_tiny_cuda(ReductionOrder::split_k_by_m);
  const std::vector<EngineRequest> requests = engine_requests();
  std::vector<test::RequestResult> alone;
  for (const EngineRequest& r : requests) alone.push_back(test::run_alone(model, r));
  const int differ =
      test::count_differences(run_together(model, requests, engine_options(4096, 64, 512)), alone);
  std::printf("cuda moe engine control: %d differ\n", differ);
  EXPECT_GT(differ, 0);
}

TEST(MoeCudaEngine, FastModeRunsAndIsLabelled) {
  BX_REQUIRE_HOPPER();
  LoadedModel model = load_tiny_cuda(ReductionOrder::canonical, CudaBackend::Mode::fast);
  EXPECT_EQ(model.backend->name(), "cuda-sm90-fast-cublas");
  const std::vector<test::RequestResult> out =
      run_together(model, engine_requests(), engine_options(4096, 64, 512));
  for (const test::RequestResult& r : out) EXPECT_FALSE(r.samples.at(0).tokens.empty());
}

RunOptions mma_only() {
  RunOptions o;
  o.expert_gemm = cuda::MoeExpertGemm::mma_sync;
  return o;
}

// The two expert kernels against each other: the wgmma path (gemm_grouped.h, the default, which
// the tests above run) and the mma.sync path.
TEST(MoeCudaWgmma, WgmmaExpertsGiveTheMmaSyncBitsAndTheTokenAlone) {
  BX_REQUIRE_HOPPER();
  const LayerShape s{256, 96, 16, 4, true};
  const Layer l(s, 71, false);
  constexpr int kPool = 4096;
  const Pool p(kPool, s.D, 17, false);
  const std::vector<std::vector<float>> alone = alone_results(l, p, 512, mma_only());
  RunOptions wgmma, mma_sync, ref;
  wgmma.expert_gemm = cuda::MoeExpertGemm::wgmma;
  mma_sync.expert_gemm = cuda::MoeExpertGemm::mma_sync;
  ref.reference = true;
  std::vector<float> xb, yb;
  // 1 .. 100 tokens: tiles of 64 rows (64x32 or 64x64); 300 and 4096: 128 rows (128x256).
  for (int n : {1, 8, 100, 300, 4096}) {
    const std::vector<int> ids = batch_ids(n, n == kPool ? kPool : 512, static_cast<uint32_t>(n));
    p.gather(ids, xb, yb);
    const std::vector<float> got = run(l, xb, yb, wgmma), mma = run(l, xb, yb, mma_sync);
    EXPECT_TRUE(test::same_bits(got.data(), mma.data(), got.size())) << n << " tokens";
    if (n == 300) {
      const std::vector<float> want = run(l, xb, yb, ref);
      EXPECT_TRUE(test::same_bits(got.data(), want.data(), got.size())) << "reference";
    }
    if (n < kPool) {
      EXPECT_EQ(rows_differing(got, ids, alone, s.D), 0) << n << " tokens";
    }
  }
}

// The speed kernels (MoeLayerArgs::speed_kernels: route by ranks, chunked grouping, the fused
// small-batch launches, the wide combine, the tile bound, idle consumers) against the verified
// launches, on both expert kernels, even and skewed loads, T = 1 .. 1000.
TEST(MoeCuda, SpeedKernelsGiveTheVerifiedBits) {
  BX_REQUIRE_HOPPER();
  for (const bool skewed : {false, true}) {
    for (const LayerShape s : {LayerShape{256, 96, 16, 4, true}, LayerShape{200, 64, 8, 2, false},
                               LayerShape{128, 48, 64, 8, true}}) {
      const Layer l(s, 101, skewed);
      for (const cuda::MoeExpertGemm kernel :
           {cuda::MoeExpertGemm::wgmma, cuda::MoeExpertGemm::mma_sync}) {
        for (int T : {1, 5, 16, 17, 64, 300, 1000}) {
          const Pool p(T, s.D, static_cast<uint32_t>(T) + 60, skewed);
          RunOptions speed, verified;
          speed.expert_gemm = verified.expert_gemm = kernel;
          speed.speed_kernels = true;
          verified.speed_kernels = false;
          const std::vector<float> got = run(l, p.x, p.y, speed), want = run(l, p.x, p.y, verified);
          EXPECT_TRUE(test::same_bits(got.data(), want.data(), got.size()))
              << "D " << s.D << " E " << s.E << " T " << T << (skewed ? " skewed" : "")
              << (kernel == cuda::MoeExpertGemm::wgmma ? " wgmma" : " mma.sync");
        }
      }
    }
  }
}

// T <= 16: the fused small-batch launches (router + xb, route + group + gather, down + combine)
// against the general launches, on both expert kernels and three shapes (D not a multiple of 16,
// F below one 64-wide K block, k = 8 of 64 experts).
TEST(MoeCuda, SmallBatchKernelsGiveTheGeneralLaunchesBits) {
  BX_REQUIRE_HOPPER();
  for (const LayerShape s : {LayerShape{256, 96, 16, 4, true}, LayerShape{200, 64, 8, 2, false},
                             LayerShape{128, 48, 64, 8, true}}) {
    const Layer l(s, 91, false);
    for (const cuda::MoeExpertGemm kernel :
         {cuda::MoeExpertGemm::wgmma, cuda::MoeExpertGemm::mma_sync}) {
      for (int T : {1, 2, 7, 16}) {
        const Pool p(T, s.D, static_cast<uint32_t>(T) + 40, false);
        RunOptions small, general;
        small.expert_gemm = general.expert_gemm = kernel;
        small.speed_kernels = general.speed_kernels = true;
        general.small_batch_kernels = false;
        const std::vector<float> got = run(l, p.x, p.y, small), want = run(l, p.x, p.y, general);
        EXPECT_TRUE(test::same_bits(got.data(), want.data(), got.size()))
            << "D " << s.D << " E " << s.E << " T " << T
            << (kernel == cuda::MoeExpertGemm::wgmma ? " wgmma" : " mma.sync");
      }
    }
  }
}

// Tiles of 128 rows: the gated GEMM's producer threads gathering the tokens' rows against the
// gathered copy, with even and with skewed expert loads (all tokens to the same
// experts: long groups, empty ones).
TEST(MoeCudaWgmma, GatheringProducerGivesTheGatheredCopyBits) {
  BX_REQUIRE_HOPPER();
  for (const bool skewed : {false, true}) {
    const LayerShape s{256, 96, 16, 4, true};
    const Layer l(s, 81, skewed);
    for (int T : {300, 4096}) {
      const Pool p(T, s.D, static_cast<uint32_t>(T) + 5, skewed);
      RunOptions producer, copy;
      producer.speed_kernels = copy.speed_kernels = true;
      producer.gather_in_gemm = true;
      copy.gather_in_gemm = false;
      const std::vector<float> got = run(l, p.x, p.y, producer), want = run(l, p.x, p.y, copy);
      EXPECT_TRUE(test::same_bits(got.data(), want.data(), got.size()))
          << T << " tokens" << (skewed ? ", skewed" : "");
      EXPECT_FALSE(test::same_bits(got.data(), p.y.data(), got.size())) << "the layer added";
    }
  }
}

}  // namespace
}  // namespace bx
