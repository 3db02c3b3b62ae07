// Tests of the row, elementwise, RoPE and data-movement kernels (kernels/cuda/rows.h, rope.h)
// and of paged attention (kernels/cuda/attention.h).
//
//   T1 exact      RoPE equals the CPU kernel bit for bit (same table, same operations), and the
//                 fused q/k norm + RoPE equals the unfused sequence; RMSNorm
//                 equals its contract order replayed on the host, on every path; bf16
//                 conversion, embedding and row gathers are exact; add equals host f32 adds.
//   T2 accurate   RMSNorm, log-softmax, SiLU*up and attention against float64 (attention: bf16
//                 bounds, head_dim 256, 136, 128, 64 and 8, with and without sliding windows,
//                 lengths up to 2600).
//   T3 invariant  row i alone == row i in a batch (memcmp); attention of every token of a ragged
//                 batch of sequences (crossing chunk and split boundaries) == the token in
//                 chunked prefill, alone (decode, split partials or walked) and in a decode
//                 batch, for head_dim 256 with windows too; block size and tile row do not
//                 matter; a window leaves the tokens before it bit for bit as without it.
//                 Negative controls: RMSNorm with 128 threads a row, attention with
//                 64-position splits (head_dim 128 and 256), and the fast mode's
//                 batch-dependent split do differ.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/rows.h"
#include "kernels/rope.h"
#include "support/cuda_test_data.h"

namespace bx {
namespace {

using cuda::DeviceBuffer;
using test::to_device;
using test::to_host;

// --- RMSNorm -------------------------------------------------------------------------------

TEST(CudaRows, RmsnormAccurateAndRowInvariant) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 37, D = 4101;
  const float eps = 1e-5f;
  const std::vector<float> x = test::random_f32(static_cast<size_t>(M * D), 1, -3, 3);
  const std::vector<float> w = test::random_f32(static_cast<size_t>(D), 2, 0.5f, 1.5f);
  DeviceBuffer dx = to_device(x), dw = to_device(w), dy(x.size() * 4), d1(x.size() * 4);
  test::poison(dy);
  cuda::rmsnorm(dx.get<float>(), D, dw.get<float>(), eps, dy.get<float>(), D, M, D, nullptr);
  for (int64_t m = 0; m < M; ++m) {  // each row alone
    cuda::rmsnorm(dx.get<float>() + m * D, D, dw.get<float>(), eps, d1.get<float>() + m * D, D, 1,
                  D, nullptr);
  }
  test::sync();
  const std::vector<float> y = to_host<float>(dy, x.size()), alone = to_host<float>(d1, x.size());
  EXPECT_TRUE(test::same_bits(y.data(), alone.data(), y.size()));
  double worst = 0;
  for (int64_t m = 0; m < M; ++m) {
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(x[m * D + i]) * x[m * D + i];
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
    for (int64_t i = 0; i < D; ++i) {
      const double ref = x[m * D + i] * r * w[i];
      worst = std::max(worst, std::fabs(y[m * D + i] - ref) / std::max(std::fabs(ref), 1e-3));
    }
  }
  std::printf("rmsnorm: max relative error %.3g\n", worst);
  EXPECT_LT(worst, 2e-6);
  // Negative control: another tree (128 threads a row) changes some row's bits.
  cuda::rmsnorm(dx.get<float>(), D, dw.get<float>(), eps, d1.get<float>(), D, M, D, nullptr, 128);
  test::sync();
  EXPECT_FALSE(test::same_bits(y.data(), to_host<float>(d1, x.size()).data(), y.size()));
}

// rows.h's order on the host: thread j = i mod 256 chains fmaf over its elements, each warp of 32
// threads butterflies (offsets 16, 8, 4, 2, 1), the 8 warp sums are added left to right; then the
// same IEEE steps (the host build contracts nothing: -ffp-contract=off).
std::vector<float> rmsnorm_in_contract_order(const std::vector<float>& x, int64_t x_stride,
                                             const std::vector<float>& w, float eps, int64_t M,
                                             int64_t D) {
  std::vector<float> y(static_cast<size_t>(M * D));
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x.data() + m * x_stride;
    std::vector<float> acc(256, 0.0f);
    for (int64_t i = 0; i < D; ++i) acc[i % 256] = std::fmaf(row[i], row[i], acc[i % 256]);
    float total = 0.0f;
    for (int q = 0; q < 8; ++q) {
      std::vector<float> v(acc.begin() + 32 * q, acc.begin() + 32 * q + 32), next(32);
      for (int o = 16; o >= 1; o /= 2) {
        for (int l = 0; l < 32; ++l) next[l] = v[l] + v[l ^ o];
        v.swap(next);
      }
      total = q == 0 ? v[0] : total + v[0];
    }
    const float r = 1.0f / std::sqrt(total / static_cast<float>(D) + eps);
    for (int64_t i = 0; i < D; ++i) y[m * D + i] = (row[i] * r) * w[i];
  }
  return y;
}

// Every path of rmsnorm (one warp a row for D <= 1024; for D <= 8192 the row staged in shared
// memory when 16-byte aligned, else held in registers; the two-pass loop above) and
// rmsnorm_two_pass give the contract's bits; so do a row alone and the in-place call.
TEST(CudaRows, RmsnormEqualsTheContractOrderOnEveryPath) {
  BX_REQUIRE_HOPPER();
  const float eps = 1e-6f;
  for (int64_t D : {1, 31, 128, 200, 256, 300, 777, 1024, 1500, 2048, 4096, 4101, 8192, 9000}) {
    for (const int64_t pad : {3, 4}) {  // rows 16-byte aligned when D % 4 == 0 and pad = 4
      const int64_t M = D <= 1024 ? 75 : 11, stride = D + pad;
      const std::vector<float> x =
          test::random_f32(static_cast<size_t>(M * stride), static_cast<uint32_t>(D), -3, 3);
      const std::vector<float> w =
          test::random_f32(static_cast<size_t>(D), static_cast<uint32_t>(D) + 1, 0.5f, 1.5f);
      const std::vector<float> want = rmsnorm_in_contract_order(x, stride, w, eps, M, D);
      DeviceBuffer dx = to_device(x), dw = to_device(w), dy(static_cast<size_t>(M * D) * 4);
      test::poison(dy);
      cuda::rmsnorm(dx.get<float>(), stride, dw.get<float>(), eps, dy.get<float>(), D, M, D,
                    nullptr);
      test::sync();
      EXPECT_TRUE(test::same_bits(want.data(), to_host<float>(dy, want.size()).data(), want.size()))
          << "D = " << D << ", stride " << stride;
      test::poison(dy);
      cuda::rmsnorm_two_pass(dx.get<float>(), stride, dw.get<float>(), eps, dy.get<float>(), D, M,
                             D, nullptr);
      test::sync();
      EXPECT_TRUE(test::same_bits(want.data(), to_host<float>(dy, want.size()).data(), want.size()))
          << "D = " << D << ", stride " << stride << ", two-pass kernel";
      // The last row alone, and then every row in place (out = x, stride kept).
      test::poison(dy);
      cuda::rmsnorm(dx.get<float>() + (M - 1) * stride, stride, dw.get<float>(), eps,
                    dy.get<float>(), D, 1, D, nullptr);
      test::sync();
      EXPECT_TRUE(test::same_bits(want.data() + (M - 1) * D,
                                  to_host<float>(dy, static_cast<size_t>(D)).data(),
                                  static_cast<size_t>(D)))
          << "D = " << D << ", stride " << stride << ", row alone";
      cuda::rmsnorm(dx.get<float>(), stride, dw.get<float>(), eps, dx.get<float>(), stride, M, D,
                    nullptr);
      test::sync();
      const std::vector<float> in_place = to_host<float>(dx, x.size());
      for (int64_t m = 0; m < M; ++m) {
        ASSERT_TRUE(test::same_bits(want.data() + m * D, in_place.data() + m * stride,
                                    static_cast<size_t>(D)))
            << "D = " << D << ", stride " << stride << ", in place, row " << m;
      }
    }
  }
}

// --- log-softmax ---------------------------------------------------------------------------

TEST(CudaRows, LogSoftmaxAccurateAndRowInvariant) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 9, N = 32003;
  const std::vector<float> x = test::random_f32(static_cast<size_t>(M * N), 3, -12, 12);
  DeviceBuffer dx = to_device(x), dy(x.size() * 4), d1(x.size() * 4);
  test::poison(dy);
  cuda::log_softmax(dx.get<float>(), N, dy.get<float>(), N, M, N, nullptr);
  for (int64_t m = 0; m < M; ++m) {
    cuda::log_softmax(dx.get<float>() + m * N, N, d1.get<float>() + m * N, N, 1, N, nullptr);
  }
  test::sync();
  const std::vector<float> y = to_host<float>(dy, x.size()), alone = to_host<float>(d1, x.size());
  EXPECT_TRUE(test::same_bits(y.data(), alone.data(), y.size()));
  double worst = 0;
  for (int64_t m = 0; m < M; ++m) {
    double mx = -INFINITY, s = 0;
    for (int64_t i = 0; i < N; ++i) mx = std::max(mx, static_cast<double>(x[m * N + i]));
    for (int64_t i = 0; i < N; ++i) s += std::exp(x[m * N + i] - mx);
    for (int64_t i = 0; i < N; ++i) {
      const double ref = (x[m * N + i] - mx) - std::log(s);
      worst = std::max(worst, std::fabs(y[m * N + i] - ref));
    }
  }
  std::printf("log_softmax: max absolute error %.3g\n", worst);
  EXPECT_LT(worst, 2e-5);
}

TEST(CudaRows, LogSoftmaxSpecialValues) {
  BX_REQUIRE_HOPPER();
  const float inf = INFINITY;
  const std::vector<float> x = {0.0f, -inf, 1.0f, NAN, 2.0f, 3.0f, inf, 0.0f, -inf, -inf};
  // rows of 2: {0, -inf} {1, nan} {2, 3} {inf, 0} {-inf, -inf}
  DeviceBuffer dx = to_device(x), dy(x.size() * 4);
  cuda::log_softmax(dx.get<float>(), 2, dy.get<float>(), 2, 5, 2, nullptr);
  test::sync();
  const std::vector<float> y = to_host<float>(dy, x.size());
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], -inf);
  EXPECT_TRUE(std::isnan(y[2]) && std::isnan(y[3]));
  EXPECT_TRUE(std::isfinite(y[4]) && std::isfinite(y[5]));
  EXPECT_TRUE(std::isnan(y[6]) && std::isnan(y[7]));
  EXPECT_TRUE(std::isnan(y[8]) && std::isnan(y[9]));
}

// --- elementwise ---------------------------------------------------------------------------

// F = 3000 takes the 16-byte path, F = 3001 the scalar one.
TEST(CudaRows, SiluMulAndAdd) {
  BX_REQUIRE_HOPPER();
  for (const int64_t F : {int64_t{3001}, int64_t{3000}}) {
    const int64_t M = 5;
    const std::vector<float> g = test::random_f32(static_cast<size_t>(M * F), 4, -8, 8);
    const std::vector<float> u = test::random_f32(static_cast<size_t>(M * F), 5, -2, 2);
    DeviceBuffer dg = to_device(g), du = to_device(u), dy(g.size() * 4);
    test::poison(dy);
    cuda::silu_mul(dg.get<float>(), F, du.get<float>(), F, dy.get<float>(), F, M, F, nullptr);
    test::sync();
    const std::vector<float> y = to_host<float>(dy, g.size());
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      const double ref = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      worst = std::max(worst, std::fabs(y[i] - ref) / std::max(std::fabs(ref), 1e-3));
    }
    std::printf("silu_mul (F = %lld): max relative error %.3g\n", static_cast<long long>(F), worst);
    EXPECT_LT(worst, 1e-5);
    cuda::add_inplace(dg.get<float>(), F, du.get<float>(), F, M, F, nullptr);
    test::sync();
    const std::vector<float> sum = to_host<float>(dg, g.size());
    for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(sum[i], g[i] + u[i]) << i;
  }
}

TEST(CudaRows, Bf16ConversionEmbeddingAndGatherAreExact) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 6, K = 100, Kp = 104;
  const std::vector<float> x = test::random_f32(static_cast<size_t>(M * K), 6, -100, 100);
  DeviceBuffer dx = to_device(x), db(static_cast<size_t>(M * Kp) * 2);
  test::poison(db);
  cuda::to_bf16_padded(dx.get<float>(), K, db.get<uint16_t>(), Kp, M, K, Kp, nullptr);
  test::sync();
  const std::vector<uint16_t> b = to_host<uint16_t>(db, static_cast<size_t>(M * Kp));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < Kp; ++k) {
      ASSERT_EQ(b[m * Kp + k], k < K ? f32_to_bf16(x[m * K + k]) : uint16_t{0});
    }
  }
  const std::vector<int32_t> ids = {5, 0, 3, 3, 1};
  DeviceBuffer dids = to_device(ids), dout(ids.size() * K * 4);
  test::poison(dout);
  cuda::embed_rows(db.get(), true, Kp, dids.get<int32_t>(), dout.get<float>(), K,
                   static_cast<int64_t>(ids.size()), K, nullptr);
  test::sync();
  std::vector<float> out = to_host<float>(dout, ids.size() * K);
  for (size_t t = 0; t < ids.size(); ++t) {
    for (int64_t k = 0; k < K; ++k) ASSERT_EQ(out[t * K + k], bf16_to_f32(b[ids[t] * Kp + k]));
  }
  cuda::gather_rows(dx.get<float>(), K, dids.get<int32_t>(), dout.get<float>(), K,
                    static_cast<int64_t>(ids.size()), K, nullptr);
  test::sync();
  out = to_host<float>(dout, ids.size() * K);
  for (size_t t = 0; t < ids.size(); ++t) {
    for (int64_t k = 0; k < K; ++k) ASSERT_EQ(out[t * K + k], x[ids[t] * K + k]);
  }
}

// The vector embedding path (D and the table stride multiples of 4) widens exactly, across
// more than one block a row (D / 4 > 1024 quads) and with quad counts that are not multiples of
// 256.
TEST(CudaRows, EmbeddingWideLoadsAreExact) {
  BX_REQUIRE_HOPPER();
  for (int64_t D : {4, 12, 1024, 5600}) {
    const int64_t vocab = 13, stride = D + 8;
    std::vector<uint16_t> table(static_cast<size_t>(vocab * stride));
    const std::vector<float> vals =
        test::random_f32(table.size(), static_cast<uint32_t>(D) + 40, -50, 50);
    for (size_t i = 0; i < table.size(); ++i) table[i] = f32_to_bf16(vals[i]);
    const std::vector<int32_t> ids = {12, 0, 7, 7, 3, 12};
    const int64_t T = static_cast<int64_t>(ids.size());
    DeviceBuffer dt = to_device(table), dids = to_device(ids), dout(static_cast<size_t>(T * D) * 4);
    test::poison(dout);
    cuda::embed_rows(dt.get(), true, stride, dids.get<int32_t>(), dout.get<float>(), D, T, D,
                     nullptr);
    test::sync();
    const std::vector<float> out = to_host<float>(dout, static_cast<size_t>(T * D));
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t k = 0; k < D; ++k) {
        ASSERT_EQ(out[t * D + k], bf16_to_f32(table[ids[t] * stride + k])) << "D " << D;
      }
    }
  }
}

// --- RoPE ----------------------------------------------------------------------------------

TEST(CudaRope, EqualsTheCpuKernelBitForBit) {
  BX_REQUIRE_HOPPER();
  ThreadPool pool(1);
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::half_split}) {
    const int head_dim = 128, n_heads = 6, max_pos = 4096;
    const RopeTable table = make_rope_table(head_dim, 1e6, max_pos, layout);
    const int64_t T = 19, width = n_heads * head_dim;
    std::vector<float> x = test::random_f32(static_cast<size_t>(T * width), 7, -4, 4);
    std::vector<int32_t> pos(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>((t * 397) % max_pos);
    DeviceBuffer dx = to_device(x), dpos = to_device(pos);
    DeviceBuffer dcos = to_device(table.cos), dsin = to_device(table.sin);
    const cuda::RopeDeviceTable dt{dcos.get<float>(), dsin.get<float>(), head_dim, max_pos, layout};
    cuda::rope_inplace(dx.get<float>(), width, dpos.get<int32_t>(), T, n_heads, dt, nullptr);
    test::sync();
    rope_inplace(x.data(), width, pos.data(), T, n_heads, table, pool);
    const std::vector<float> y = to_host<float>(dx, x.size());
    EXPECT_TRUE(test::same_bits(x.data(), y.data(), x.size()))
        << (layout == RopeLayout::adjacent_pairs ? "adjacent" : "half-split");
  }
}

// The fused per-head norm + RoPE equals rmsnorm of each head then rope_inplace, bit for bit: q and
// k as column ranges of one fused [T, q | k | v] row (strided), both layouts, head_dim 64, 128
// and 256, with and without the norms; v is left alone. Negative control: the same steps on the
// host with the sum of squares taken left to right (another order) do change bits.
TEST(CudaRope, FusedQkNormRopeEqualsTheSequence) {
  BX_REQUIRE_HOPPER();
  const int n_heads = 6, n_kv = 2, max_pos = 4096;
  const float eps = 1e-6f;
  for (RopeLayout layout : {RopeLayout::adjacent_pairs, RopeLayout::half_split}) {
    for (int head_dim : {64, 128, 256}) {
      for (bool norm : {true, false}) {
        const RopeTable table = make_rope_table(head_dim, 1e6, max_pos, layout);
        const int64_t T = 21, width = static_cast<int64_t>(n_heads + 2 * n_kv) * head_dim;
        const std::vector<float> x = test::random_f32(static_cast<size_t>(T * width), 8, -4, 4);
        std::vector<int32_t> pos(static_cast<size_t>(T));
        for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>((t * 397) % max_pos);
        const std::vector<float> wq =
            test::random_f32(static_cast<size_t>(head_dim), 9, 0.5f, 1.5f);
        const std::vector<float> wk =
            test::random_f32(static_cast<size_t>(head_dim), 10, 0.5f, 1.5f);
        DeviceBuffer fused = to_device(x), seq = to_device(x);
        DeviceBuffer dpos = to_device(pos), dwq = to_device(wq), dwk = to_device(wk);
        DeviceBuffer dcos = to_device(table.cos), dsin = to_device(table.sin);
        const cuda::RopeDeviceTable dt{dcos.get<float>(), dsin.get<float>(), head_dim, max_pos,
                                       layout};
        ASSERT_TRUE(cuda::qk_norm_rope_fusable(dt));
        const int64_t k_off = static_cast<int64_t>(n_heads) * head_dim;
        cuda::QkNormRopeArgs args;
        args.q = fused.get<float>();
        args.q_stride = width;
        args.n_heads = n_heads;
        args.k = fused.get<float>() + k_off;
        args.k_stride = width;
        args.n_kv_heads = n_kv;
        args.q_norm = norm ? dwq.get<float>() : nullptr;
        args.k_norm = norm ? dwk.get<float>() : nullptr;
        args.eps = eps;
        cuda::qk_norm_rope_inplace(args, dpos.get<int32_t>(), T, dt, nullptr);
        for (int h = 0; norm && h < n_heads + n_kv; ++h) {
          float* head = seq.get<float>() + static_cast<int64_t>(h) * head_dim;
          const float* w = h < n_heads ? dwq.get<float>() : dwk.get<float>();
          cuda::rmsnorm(head, width, w, eps, head, width, T, head_dim, nullptr);
        }
        cuda::rope_inplace(seq.get<float>(), width, dpos.get<int32_t>(), T, n_heads, dt, nullptr);
        cuda::rope_inplace(seq.get<float>() + k_off, width, dpos.get<int32_t>(), T, n_kv, dt,
                           nullptr);
        // The control: left-to-right sums of squares, then the same IEEE steps and the CPU RoPE.
        std::vector<float> ctrl = x;
        for (int64_t t = 0; norm && t < T; ++t) {
          for (int h = 0; h < n_heads + n_kv; ++h) {
            float* head = ctrl.data() + t * width + static_cast<int64_t>(h) * head_dim;
            const std::vector<float>& w = h < n_heads ? wq : wk;
            float ss = 0.0f;
            for (int i = 0; i < head_dim; ++i) ss = std::fmaf(head[i], head[i], ss);
            const float r = 1.0f / std::sqrt(ss / static_cast<float>(head_dim) + eps);
            for (int i = 0; i < head_dim; ++i) head[i] = (head[i] * r) * w[i];
          }
        }
        ThreadPool pool(1);
        rope_inplace(ctrl.data(), width, pos.data(), T, n_heads, table, pool);
        rope_inplace(ctrl.data() + k_off, width, pos.data(), T, n_kv, table, pool);
        test::sync();
        const std::vector<float> got = to_host<float>(fused, x.size());
        const std::string what =
            std::string(layout == RopeLayout::adjacent_pairs ? "adjacent" : "half-split") +
            ", head_dim " + std::to_string(head_dim) + (norm ? ", norm" : "");
        EXPECT_TRUE(test::same_bits(got.data(), to_host<float>(seq, x.size()).data(), x.size()))
            << what;
        if (norm) {
          EXPECT_FALSE(test::same_bits(got.data(), ctrl.data(), x.size()))
              << what << ": the left-to-right sum should differ somewhere";
        }
      }
    }
  }
}

// --- attention -----------------------------------------------------------------------------

// A paged cache holding several sequences whose blocks are scattered through the pool.
struct AttentionSetup {
  int n_heads = 8, n_kv = 2, Dh = 128, block_size = 16;
  int window = 0;  // > 0: a sliding window of that many positions (run and reference)
  std::vector<int> lengths;
  int64_t n_blocks = 0, T = 0;
  std::vector<int32_t> positions, offsets, tables, seq_of;
  std::vector<int64_t> seq_start;
  std::vector<float> q, k, v;  // [T, H*Dh], [T, Hkv*Dh] x2
  DeviceBuffer dk_cache, dv_cache, dq, dk, dv, dpos, doff, dtab, workspace;
  cuda::PagedKv kv;
  // With split_path (run()): split partials by batch size, or always.
  cuda::DecodePath decode_path = cuda::DecodePath::by_batch;
  bool stream_split_jobs = true;           // AttentionArgs::stream_split_jobs
  bool ping_pong = true;                   // AttentionArgs::ping_pong
  bool k3 = cuda::attention_k3_enabled();  // AttentionArgs::k3

  explicit AttentionSetup(std::vector<int> lens = {1, 63, 64, 65, 130, 200}, int heads = 8,
                          int kv_heads = 2, int head_dim = 128, int block = 16, uint32_t seed = 10)
      : n_heads(heads), n_kv(kv_heads), Dh(head_dim), block_size(block), lengths(std::move(lens)) {
    std::vector<int32_t> pool_order;
    for (int len : lengths) n_blocks += (len + block_size - 1) / block_size;
    pool_order.resize(static_cast<size_t>(n_blocks));
    std::iota(pool_order.begin(), pool_order.end(), 0);
    std::shuffle(pool_order.begin(), pool_order.end(), std::mt19937(9));
    size_t next_block = 0;
    for (size_t s = 0; s < lengths.size(); ++s) {
      const int32_t offset = static_cast<int32_t>(tables.size());
      const int blocks = (lengths[s] + block_size - 1) / block_size;
      for (int b = 0; b < blocks; ++b) tables.push_back(pool_order[next_block++]);
      seq_start.push_back(static_cast<int64_t>(positions.size()));
      for (int p = 0; p < lengths[s]; ++p) {
        positions.push_back(p);
        offsets.push_back(offset);
        seq_of.push_back(static_cast<int32_t>(s));
      }
    }
    T = static_cast<int64_t>(positions.size());
    q = test::random_f32(static_cast<size_t>(T * n_heads * Dh), seed, -1, 1);
    k = test::random_f32(static_cast<size_t>(T * n_kv * Dh), seed + 1, -1, 1);
    v = test::random_f32(static_cast<size_t>(T * n_kv * Dh), seed + 2, -1, 1);
    // Some heads with large scores (a peaked softmax), so the max and the rescaling matter.
    for (int64_t t = 0; t < T; ++t) {
      for (int d = 0; d < Dh; ++d) q[static_cast<size_t>(t * n_heads * Dh + d)] *= 8.0f;
    }
    const size_t cache = static_cast<size_t>(n_blocks * block_size * n_kv * Dh) * 2;
    dk_cache = DeviceBuffer(cache);
    dv_cache = DeviceBuffer(cache);
    kv = cuda::PagedKv{
        dk_cache.get<uint16_t>(), dv_cache.get<uint16_t>(), n_blocks, block_size, n_kv, Dh};
    dq = to_device(q);
    dk = to_device(k);
    dv = to_device(v);
    dpos = to_device(positions);
    doff = to_device(offsets);
    dtab = to_device(tables);
    cuda::kv_cache_write(
        kv, dk.get<float>(), n_kv * Dh, dv.get<float>(), n_kv * Dh,
        cuda::DeviceBatch{dpos.get<int32_t>(), doff.get<int32_t>(), dtab.get<int32_t>(), T},
        nullptr);
    workspace = DeviceBuffer(size_t{64} << 20);
    test::sync();
  }
  std::vector<int64_t> range(int64_t first, int64_t count) const {
    std::vector<int64_t> r(static_cast<size_t>(count));
    std::iota(r.begin(), r.end(), first);
    return r;
  }
  // Attention of the given tokens of the flattened batch, computed as one batch.
  // split_path: single tokens use the split partials (else they walk their splits).
  // fast: the conventional split of the fast mode.
  // mma_sync: prefill tiles on the mma.sync kernel instead of the wgmma one.
  std::vector<float> run(const std::vector<int64_t>& tokens, int split = cuda::kAttentionSplit,
                         bool split_path = true, bool fast = false, bool mma_sync = false) {
    const int64_t width = n_heads * Dh, n = static_cast<int64_t>(tokens.size());
    std::vector<float> qs;
    std::vector<int32_t> pos, off;
    for (int64_t t : tokens) {
      qs.insert(qs.end(), q.begin() + t * width, q.begin() + (t + 1) * width);
      pos.push_back(positions[static_cast<size_t>(t)]);
      off.push_back(offsets[static_cast<size_t>(t)]);
    }
    DeviceBuffer dqs = to_device(qs), dp = to_device(pos), dof = to_device(off);
    DeviceBuffer out(static_cast<size_t>(n * width) * 4);
    test::poison(out);
    cuda::AttentionPlanner planner;
    cuda::AttentionArgs args;
    args.q = dqs.get<float>();
    args.q_stride = width;
    args.out = out.get<float>();
    args.out_stride = width;
    args.n_heads = n_heads;
    args.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    args.kv = kv;
    args.batch = cuda::DeviceBatch{dp.get<int32_t>(), dof.get<int32_t>(), dtab.get<int32_t>(), n};
    args.plan = planner.build(pos.data(), off.data(), n);
    if (split_path) {
      args.workspace = workspace.get<float>();
      args.workspace_floats = static_cast<int64_t>(workspace.bytes() / 4);
      args.decode_path = decode_path;
      args.stream_split_jobs = stream_split_jobs;
    }
    args.split = fast ? cuda::conventional_split(args.plan, n_kv) : split;
    args.mma_sync = mma_sync;
    args.ping_pong = ping_pong;
    args.k3 = k3;
    args.window = window;
    cuda::attention(args, nullptr);
    test::sync();
    return to_host<float>(out, static_cast<size_t>(n * width));
  }
  std::vector<float> run_all(int split = cuda::kAttentionSplit) { return run(range(0, T), split); }
  const float* row(const std::vector<float>& out, int64_t i) const {
    return out.data() + i * n_heads * Dh;
  }
  // float64 reference of token t over bf16-rounded k and v (visible_window: the window the
  // reference applies; -1: this setup's).
  std::vector<double> reference(int64_t t, int visible_window = -1) const {
    const int64_t width = n_heads * Dh, kv_width = n_kv * Dh;
    const int w = visible_window >= 0 ? visible_window : window;
    const int64_t first = t - positions[t];  // first token of its sequence
    const int64_t start = w > 0 ? std::max<int64_t>(first, t - w + 1) : first;
    std::vector<double> out(static_cast<size_t>(width));
    for (int h = 0; h < n_heads; ++h) {
      const int g = h / (n_heads / n_kv);
      std::vector<double> s;
      for (int64_t j = start; j <= t; ++j) {
        double dot = 0;
        for (int d = 0; d < Dh; ++d) {
          dot += static_cast<double>(q[t * width + h * Dh + d]) *
                 bf16_to_f32(f32_to_bf16(k[j * kv_width + g * Dh + d]));
        }
        s.push_back(dot / std::sqrt(static_cast<double>(Dh)));
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double l = 0;
      for (double& e : s) l += (e = std::exp(e - mx));
      for (int d = 0; d < Dh; ++d) {
        double o = 0;
        for (int64_t j = start; j <= t; ++j) {
          o += s[static_cast<size_t>(j - start)] *
               bf16_to_f32(f32_to_bf16(v[j * kv_width + g * Dh + d]));
        }
        out[static_cast<size_t>(h * Dh + d)] = o / l;
      }
    }
    return out;
  }
};

// Lengths that cross chunk (64) and split (512; the opt-in 128) boundaries, up to a few
// thousand positions.
const std::vector<int> kLongLengths = {1, 63, 64, 65, 130, 511, 512, 513, 1100, 2600};

// bf16 q and bf16 probabilities (8 significant bits) bound the error: relative L2 error of each
// token's output (all heads) against float64 under 1e-2.
TEST(CudaAttention, AccurateAgainstFloat64) {
  BX_REQUIRE_HOPPER();
  for (int Dh : {128, 64, 8}) {
    AttentionSetup a(kLongLengths, 8, 2, Dh);
    const std::vector<float> out = a.run_all();
    const int64_t width = a.n_heads * a.Dh;
    double worst = 0;
    for (int64_t t = 0; t < a.T; t += (t < 700 ? 23 : 211)) {
      const std::vector<double> ref = a.reference(t);
      double num = 0, den = 0;
      for (int64_t i = 0; i < width; ++i) {
        ASSERT_TRUE(std::isfinite(out[t * width + i])) << "token " << t << " element " << i;
        const double e = out[t * width + i] - ref[static_cast<size_t>(i)];
        num += e * e;
        den += ref[static_cast<size_t>(i)] * ref[static_cast<size_t>(i)];
      }
      worst = std::max(worst, std::sqrt(num / den));
    }
    std::printf("attention head_dim %d: max relative L2 error %.3g\n", Dh, worst);
    EXPECT_LT(worst, 1e-2) << "head_dim " << Dh;
  }
}

// Every token of the ragged batch gives the same bits computed in the whole batch (prefill of
// all sequences together), in chunks of 7 and of 100 tokens (chunked prefill), alone (a decode
// step, by split partials and by walking the splits), and among the last tokens of every
// sequence (a decode batch).
TEST(CudaAttention, TokenAloneEqualsTokenInAnyBatch) {
  BX_REQUIRE_HOPPER();
  AttentionSetup a(kLongLengths);
  const size_t width = static_cast<size_t>(a.n_heads * a.Dh);
  const std::vector<float> all = a.run_all();
  for (int64_t piece : {7, 100}) {
    std::vector<float> chunked;
    for (int64_t first = 0; first < a.T; first += piece) {
      const std::vector<float> part = a.run(a.range(first, std::min(piece, a.T - first)));
      chunked.insert(chunked.end(), part.begin(), part.end());
    }
    EXPECT_TRUE(test::same_bits(all.data(), chunked.data(), all.size())) << "chunks of " << piece;
  }
  for (int64_t t = 0; t < a.T; t += (t < 1200 ? 1 : 7)) {
    const std::vector<float> alone = a.run({t});
    ASSERT_TRUE(test::same_bits(alone.data(), a.row(all, t), width))
        << "token " << t << " (sequence " << a.seq_of[t] << ", position " << a.positions[t] << ")";
    if (t % 5 == 0) {
      const std::vector<float> walked = a.run({t}, cuda::kAttentionSplit, false);
      ASSERT_TRUE(test::same_bits(walked.data(), a.row(all, t), width)) << "walked token " << t;
    }
  }
  std::vector<int64_t> last;
  for (size_t s = 0; s < a.lengths.size(); ++s) last.push_back(a.seq_start[s] + a.lengths[s] - 1);
  std::reverse(last.begin(), last.end());
  const std::vector<float> decode = a.run(last);
  for (size_t i = 0; i < last.size(); ++i) {
    EXPECT_TRUE(test::same_bits(a.row(decode, static_cast<int64_t>(i)), a.row(all, last[i]), width))
        << "last token of sequence " << a.seq_of[last[i]] << " in a decode batch";
  }
}

// The wgmma kernel (prefill: both warpgroups on one tile for an even group, on two consecutive
// tiles of one head for an odd group, MHA included; decode: up to 64 heads of a KV group a
// warpgroup, by split partials or walking) gives the bits of the mma.sync kernels, whole,
// chunked, token by token and as a decode batch, for head dims 128, 64 and 8 and groups of 1 to
// 130 heads.
TEST(CudaAttention, WgmmaKernelEqualsMmaSyncKernels) {
  BX_REQUIRE_HOPPER();
  struct Shape {
    int heads, kv_heads, head_dim;
  };
  for (const Shape shape :
       {Shape{8, 2, 128}, Shape{4, 4, 128}, Shape{6, 2, 64}, Shape{8, 2, 8}, Shape{130, 1, 64}}) {
    AttentionSetup a(kLongLengths, shape.heads, shape.kv_heads, shape.head_dim);
    const std::string name = std::to_string(shape.heads) + " heads, " +
                             std::to_string(shape.kv_heads) + " kv heads, head_dim " +
                             std::to_string(shape.head_dim);
    const size_t width = static_cast<size_t>(a.n_heads * a.Dh);
    const std::vector<float> wgmma = a.run_all();
    const std::vector<float> mma_sync =
        a.run(a.range(0, a.T), cuda::kAttentionSplit, true, false, true);
    EXPECT_TRUE(test::same_bits(wgmma.data(), mma_sync.data(), wgmma.size())) << name;
    std::vector<float> chunked;
    for (int64_t first = 0; first < a.T; first += 100) {
      const std::vector<float> part = a.run(a.range(first, std::min<int64_t>(100, a.T - first)));
      chunked.insert(chunked.end(), part.begin(), part.end());
    }
    EXPECT_TRUE(test::same_bits(wgmma.data(), chunked.data(), wgmma.size())) << name << ", chunks";
    for (int64_t t = 0; t < a.T; t += 37) {
      for (const bool split_path : {true, false}) {
        for (const bool mma : {false, true}) {
          const std::vector<float> alone =
              a.run({t}, cuda::kAttentionSplit, split_path, false, mma);
          ASSERT_TRUE(test::same_bits(alone.data(), a.row(wgmma, t), width))
              << name << ": token " << t << " (position " << a.positions[t] << ") decoded alone"
              << (mma ? " (mma.sync)" : " (wgmma)")
              << (split_path ? ", split partials" : ", walked");
        }
      }
    }
    // Decode batches: the last token of every sequence (one job a block); every 7th token and
    // the last 60 tokens, each in reverse order so that all are single tokens (two jobs a block,
    // walking and by split partials).
    std::vector<int64_t> last, sevenths, last60;
    for (size_t s = 0; s < a.lengths.size(); ++s) last.push_back(a.seq_start[s] + a.lengths[s] - 1);
    for (int64_t t = a.T - 1; t >= 0; t -= 7) sevenths.push_back(t);
    for (int64_t t = a.T - 1; t >= a.T - 60; --t) last60.push_back(t);
    for (const std::vector<int64_t>* tokens : {&sevenths, &last60}) {
      const std::vector<float> decode = a.run(*tokens);
      for (size_t i = 0; i < tokens->size(); ++i) {
        ASSERT_TRUE(test::same_bits(a.row(decode, static_cast<int64_t>(i)),
                                    a.row(wgmma, (*tokens)[i]), width))
            << name << ": token " << (*tokens)[i] << " in a decode batch of " << tokens->size();
      }
    }
    for (const bool split_path : {true, false}) {
      const std::vector<float> decode = a.run(last, cuda::kAttentionSplit, split_path);
      for (size_t i = 0; i < last.size(); ++i) {
        EXPECT_TRUE(
            test::same_bits(a.row(decode, static_cast<int64_t>(i)), a.row(wgmma, last[i]), width))
            << name << ": last token of sequence " << i << " in a decode batch"
            << (split_path ? " (split partials)" : " (walked)");
      }
    }
  }
}

// The cache layout (block size, block placement) does not change any bit.
TEST(CudaAttention, BlockSizeDoesNotMatter) {
  BX_REQUIRE_HOPPER();
  const std::vector<int> lengths = {70, 600};
  AttentionSetup a(lengths, 8, 2, 128, 16), b(lengths, 8, 2, 128, 1), c(lengths, 8, 2, 128, 128);
  const std::vector<float> x = a.run_all(), y = b.run_all(), z = c.run_all();
  EXPECT_TRUE(test::same_bits(x.data(), y.data(), x.size()));
  EXPECT_TRUE(test::same_bits(x.data(), z.data(), x.size()));
}

// mma's result for one element depends only on its row of A: the 16 query heads of a group that
// share one q occupy all 16 rows of the decode tile and give the same bits; in prefill each
// token takes a different row in every chunking (TokenAloneEqualsTokenInAnyBatch).
TEST(CudaAttention, TileRowDoesNotMatter) {
  BX_REQUIRE_HOPPER();
  AttentionSetup a({300, 40}, 32, 2, 128);
  const int64_t width = a.n_heads * a.Dh;
  for (int64_t t = 0; t < a.T; ++t) {  // heads 16..31 copy head 16's q, heads 0..15 head 3's
    for (int h = 0; h < a.n_heads; ++h) {
      const int src = h < 16 ? 3 : 16;
      std::copy_n(a.q.begin() + t * width + src * a.Dh, a.Dh, a.q.begin() + t * width + h * a.Dh);
    }
  }
  for (const std::vector<int64_t>& tokens :
       {a.range(0, a.T), std::vector<int64_t>{299}, std::vector<int64_t>{301, 77, 5}}) {
    const std::vector<float> out = a.run(tokens);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const float* r = out.data() + static_cast<int64_t>(i) * width;
      for (int h = 0; h < a.n_heads; ++h) {
        const int first = h < 16 ? 0 : 16;
        ASSERT_TRUE(test::same_bits(r + h * a.Dh, r + first * a.Dh, static_cast<size_t>(a.Dh)))
            << "token " << tokens[i] << " head " << h;
      }
    }
  }
}

// The opt-in 128-position split (AttentionArgs::k3, kernel version cuda-k3), around its boundaries,
// on the Qwen3-8B group (32 query heads over 8 KV heads, head_dim 128) and on 8 over 2: the prefill
// with the head pair's warpgroups taking turns (ping-pong) equals it side by side; every checked
// token decoded alone (b = 1; split partials and walked, each kernel family) and every sequence's
// last token in a decode batch (split partials forced, streamed through one block an SM or a block
// per job pair, and walked) give the bits of the whole batch's prefill; so does every fourth token
// in one decode batch (thousands of split jobs streamed through the warpgroups). Negative control:
// cuda-k2 (the default kernels, 512-position split) gives the same bits below position 128 (one
// split either way) and different bits for most tokens past it.
TEST(CudaAttention, SplitOf128PositionsAloneEqualsBatchAndPrefill) {
  BX_REQUIRE_HOPPER();
  ASSERT_EQ(cuda::kAttentionSplitK3, 128);
  const std::vector<int> lengths = {127, 128, 129, 255, 256, 257, 383, 700};
  for (const int heads : {32, 8}) {
    AttentionSetup a(lengths, heads, heads / 4, 128, 16, 31);
    a.k3 = true;  // the opt-in kernels of attention_k3.cu
    const std::string name = std::to_string(heads) + " heads";
    const size_t width = static_cast<size_t>(a.n_heads * a.Dh);
    const std::vector<float> prefill = a.run_all(128);
    a.ping_pong = false;  // the head pair's warpgroups side by side instead of taking turns
    const std::vector<float> side_by_side = a.run_all(128);
    a.ping_pong = true;
    EXPECT_TRUE(test::same_bits(prefill.data(), side_by_side.data(), prefill.size()))
        << name << ": ping-pong against side by side";
    int checked = 0;
    for (int64_t t = 0; t < a.T; ++t) {
      const int in_split = a.positions[t] % 128;
      if (t % 13 != 0 && in_split > 1 && in_split < 126) continue;
      for (const bool split_path : {true, false}) {
        for (const bool mma : {false, true}) {
          const std::vector<float> alone = a.run({t}, 128, split_path, false, mma);
          ASSERT_TRUE(test::same_bits(alone.data(), a.row(prefill, t), width))
              << name << ": token " << t << " (position " << a.positions[t] << ") alone"
              << (split_path ? ", split partials" : ", walked") << (mma ? ", mma.sync" : "");
        }
      }
      ++checked;
    }
    EXPECT_GT(checked, 100) << name;
    std::vector<int64_t> last;
    for (size_t s = 0; s < a.lengths.size(); ++s) {
      last.push_back(a.seq_start[s] + a.lengths[s] - 1);
    }
    std::reverse(last.begin(), last.end());
    for (const int way : {0, 1, 2}) {  // split partials streamed, a block per pair, walked
      a.decode_path = cuda::DecodePath::split_partials;
      a.stream_split_jobs = way == 0;
      const std::vector<float> decode = a.run(last, 128, way < 2);
      a.decode_path = cuda::DecodePath::by_batch;
      a.stream_split_jobs = true;
      for (size_t i = 0; i < last.size(); ++i) {
        EXPECT_TRUE(
            test::same_bits(a.row(decode, static_cast<int64_t>(i)), a.row(prefill, last[i]), width))
            << name << ": last token of a sequence of " << a.positions[last[i]] + 1
            << " in a decode batch ("
            << (way == 0   ? "split partials, streamed"
                : way == 1 ? "split partials, a block per job pair"
                           : "walked")
            << ")";
      }
    }
    // Every fourth token as a single token of one batch (reversed, so that none forms a prefill
    // tile); their partials fit the 64 MiB workspace.
    std::vector<int64_t> all_tokens;
    for (int64_t t = a.T - 1; t >= 0; t -= 4) all_tokens.push_back(t);
    const int64_t slots = 700 / 128 + 1;  // split slots up to the longest sequence
    ASSERT_LE(static_cast<int64_t>(all_tokens.size()) * a.n_heads * slots * (2 + a.Dh) * 4,
              static_cast<int64_t>(a.workspace.bytes()))
        << "the partials must fit, or the batch would walk";
    a.decode_path = cuda::DecodePath::split_partials;
    const std::vector<float> all_decode = a.run(all_tokens, 128, true);
    a.decode_path = cuda::DecodePath::by_batch;
    for (size_t i = 0; i < all_tokens.size(); ++i) {
      ASSERT_TRUE(test::same_bits(a.row(all_decode, static_cast<int64_t>(i)),
                                  a.row(prefill, all_tokens[i]), width))
          << name << ": token " << all_tokens[i] << " among " << all_tokens.size()
          << " decoded together";
    }
    a.k3 = false;  // cuda-k2: attention.cu's kernels, split 512
    const std::vector<float> k2_order = a.run_all(512);
    a.k3 = true;
    int past = 0, past_differing = 0;
    for (int64_t t = 0; t < a.T; ++t) {
      const bool same = test::same_bits(a.row(prefill, t), a.row(k2_order, t), width);
      if (a.positions[t] < 128) {
        EXPECT_TRUE(same) << name << ": token " << t << " at position " << a.positions[t];
      } else {
        ++past;
        past_differing += same ? 0 : 1;
      }
    }
    std::printf("%s: 512-position splits change %d of the %d tokens past position 127\n",
                name.c_str(), past_differing, past);
    EXPECT_GT(past_differing, past / 2) << name;
  }
}

// Negative controls: 64-position splits change the bits of the tokens past position 64; the
// fast mode's batch-dependent split makes a decode batch differ from its tokens alone.
TEST(CudaAttention, OtherSplitSizeAndFastModeDiffer) {
  BX_REQUIRE_HOPPER();
  AttentionSetup a(kLongLengths);
  const int64_t width = a.n_heads * a.Dh;
  const std::vector<float> base = a.run_all(), other = a.run_all(64);
  int differing = 0;
  for (int64_t t = 0; t < a.T; ++t) {
    if (!test::same_bits(a.row(base, t), a.row(other, t), static_cast<size_t>(width))) {
      ++differing;
      EXPECT_GE(a.positions[t], 64) << "token " << t;
    }
  }
  std::printf("attention with 64-position splits: %d of %lld tokens differ\n", differing,
              static_cast<long long>(a.T));
  EXPECT_GT(differing, a.T / 2);

  std::vector<int64_t> last;
  for (size_t s = 0; s < a.lengths.size(); ++s) last.push_back(a.seq_start[s] + a.lengths[s] - 1);
  const std::vector<float> together = a.run(last, 0, true, true);
  int fast_differing = 0;
  for (size_t i = 0; i < last.size(); ++i) {
    const std::vector<float> alone = a.run({last[i]}, 0, true, true);
    fast_differing += test::same_bits(alone.data(), a.row(together, static_cast<int64_t>(i)),
                                      static_cast<size_t>(width))
                          ? 0
                          : 1;
  }
  std::printf("fast-mode attention: %d of %zu decode tokens differ between batch and alone\n",
              fast_differing, last.size());
  EXPECT_GT(fast_differing, 0);
}

// --- attention, head_dim above 128 (attention_d256.h) --------------------------------------

struct WideShape {
  int heads, kv_heads, head_dim, window;
  std::vector<int> lengths;
  std::string name() const {
    return std::to_string(heads) + " heads, " + std::to_string(kv_heads) + " kv heads, head_dim " +
           std::to_string(head_dim) + ", window " + std::to_string(window);
  }
};
// Gemma 3's head_dim 256 with groups of 1, 4 and 80 heads (80: two decode blocks a KV head),
// a head_dim that is not a multiple of 16, and windows shorter than a chunk's span, mid-chunk,
// and longer than a split.
const std::vector<WideShape> kWideShapes = {
    {8, 2, 256, 0, kLongLengths},    {4, 4, 256, 80, kLongLengths},
    {8, 2, 256, 600, kLongLengths},  {6, 3, 136, 0, {1, 64, 65, 513, 1100}},
    {80, 1, 256, 100, {1, 65, 700}},
};

// bf16 q, K, V and probabilities bound the error as for head_dim 128: relative L2 error of each
// token's output against float64 under 1e-2. The window is seen: the reference without it is
// far off for tokens past the window.
TEST(CudaAttentionD256, AccurateAgainstFloat64) {
  BX_REQUIRE_HOPPER();
  for (const WideShape& shape : kWideShapes) {
    AttentionSetup a(shape.lengths, shape.heads, shape.kv_heads, shape.head_dim);
    a.window = shape.window;
    const std::vector<float> out = a.run_all();
    const int64_t width = a.n_heads * a.Dh;
    double worst = 0, unwindowed = 0;
    for (int64_t t = 0; t < a.T; t += (t < 700 ? 23 : 211)) {
      const std::vector<double> ref = a.reference(t);
      const std::vector<double> full = a.reference(t, 0);
      double num = 0, den = 0, num_full = 0;
      for (int64_t i = 0; i < width; ++i) {
        ASSERT_TRUE(std::isfinite(out[t * width + i])) << shape.name() << ": token " << t;
        const double e = out[t * width + i] - ref[static_cast<size_t>(i)];
        const double f = out[t * width + i] - full[static_cast<size_t>(i)];
        num += e * e;
        num_full += f * f;
        den += ref[static_cast<size_t>(i)] * ref[static_cast<size_t>(i)];
      }
      worst = std::max(worst, std::sqrt(num / den));
      if (a.positions[t] >= shape.window + 64) {
        unwindowed = std::max(unwindowed, std::sqrt(num_full / den));
      }
    }
    std::printf("attention %s: max relative L2 error %.3g (against no window %.3g)\n",
                shape.name().c_str(), worst, unwindowed);
    EXPECT_LT(worst, 1e-2) << shape.name();
    if (shape.window > 0) {
      EXPECT_GT(unwindowed, 0.1) << shape.name();
    }
  }
}

// As TokenAloneEqualsTokenInAnyBatch for head_dim 128: every token's bits are those of the
// whole batch in chunked prefill (7 and 100 tokens), alone (split partials and walked) and in
// decode batches, with and without windows.
TEST(CudaAttentionD256, TokenAloneEqualsTokenInAnyBatch) {
  BX_REQUIRE_HOPPER();
  for (const WideShape& shape : kWideShapes) {
    AttentionSetup a(shape.lengths, shape.heads, shape.kv_heads, shape.head_dim);
    a.window = shape.window;
    const std::string name = shape.name();
    const size_t width = static_cast<size_t>(a.n_heads * a.Dh);
    const std::vector<float> all = a.run_all();
    for (int64_t piece : {7, 100}) {
      if (piece == 7 && a.T > 6000) continue;
      std::vector<float> chunked;
      for (int64_t first = 0; first < a.T; first += piece) {
        const std::vector<float> part = a.run(a.range(first, std::min(piece, a.T - first)));
        chunked.insert(chunked.end(), part.begin(), part.end());
      }
      EXPECT_TRUE(test::same_bits(all.data(), chunked.data(), all.size()))
          << name << ", chunks of " << piece;
    }
    for (int64_t t = 0; t < a.T; t += 13) {
      for (const bool split_path : {true, false}) {
        const std::vector<float> alone = a.run({t}, cuda::kAttentionSplit, split_path);
        ASSERT_TRUE(test::same_bits(alone.data(), a.row(all, t), width))
            << name << ": token " << t << " (position " << a.positions[t] << ") alone"
            << (split_path ? ", split partials" : ", walked");
      }
    }
    std::vector<int64_t> last, sevenths;
    for (size_t s = 0; s < a.lengths.size(); ++s) last.push_back(a.seq_start[s] + a.lengths[s] - 1);
    for (int64_t t = a.T - 1; t >= 0; t -= 7) sevenths.push_back(t);
    for (const std::vector<int64_t>* tokens : {&last, &sevenths}) {
      for (const bool split_path : {true, false}) {
        const std::vector<float> decode = a.run(*tokens, cuda::kAttentionSplit, split_path);
        for (size_t i = 0; i < tokens->size(); ++i) {
          ASSERT_TRUE(test::same_bits(a.row(decode, static_cast<int64_t>(i)),
                                      a.row(all, (*tokens)[i]), width))
              << name << ": token " << (*tokens)[i] << " in a decode batch of " << tokens->size()
              << (split_path ? " (split partials)" : " (walked)");
        }
      }
    }
  }
}

// The window only masks (R11): tokens before position `window` see nothing masked and keep the
// bits of full attention exactly; the others differ. Negative control of the order: 64-position
// splits change the bits of the tokens past position 64, with and without a window.
TEST(CudaAttentionD256, WindowOnlyMasksAndOtherSplitSizeDiffers) {
  BX_REQUIRE_HOPPER();
  AttentionSetup a(kLongLengths, 8, 2, 256);
  const int64_t width = a.n_heads * a.Dh;
  const std::vector<float> full = a.run_all();
  a.window = 300;
  const std::vector<float> windowed = a.run_all();
  for (int64_t t = 0; t < a.T; ++t) {
    const bool same =
        test::same_bits(a.row(full, t), a.row(windowed, t), static_cast<size_t>(width));
    if (a.positions[t] < a.window) {
      ASSERT_TRUE(same) << "token " << t << " at position " << a.positions[t];
    } else {
      ASSERT_FALSE(same) << "token " << t << " at position " << a.positions[t];
    }
  }
  for (const int window : {0, 300}) {
    a.window = window;
    const std::vector<float> base = a.run_all(), other = a.run_all(64);
    int differing = 0;
    for (int64_t t = 0; t < a.T; ++t) {
      if (!test::same_bits(a.row(base, t), a.row(other, t), static_cast<size_t>(width))) {
        ++differing;
        EXPECT_GE(a.positions[t], 64) << "token " << t;
      }
    }
    std::printf("attention head_dim 256, window %d, 64-position splits: %d of %lld tokens differ\n",
                window, differing, static_cast<long long>(a.T));
    EXPECT_GT(differing, a.T / 2) << "window " << window;
  }
}

}  // namespace
}  // namespace bx
