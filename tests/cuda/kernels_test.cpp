// Tests of the row, elementwise, RoPE and data-movement kernels (kernels/cuda/rows.h, rope.h)
// and of paged attention (kernels/cuda/attention.h).
//
//   T1 exact      RoPE equals the CPU kernel bit for bit (same table, same operations); bf16
//                 conversion, embedding and row gathers are exact; add equals host f32 adds.
//   T2 accurate   RMSNorm, log-softmax, SiLU*up and attention against float64.
//   T3 invariant  row i alone == row i in a batch (memcmp); attention of every token of a ragged
//                 batch of sequences == the token alone. Negative controls: RMSNorm with 128
//                 threads a row, attention with 32-position chunks, do differ.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
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

TEST(CudaRows, SiluMulAndAdd) {
  BX_REQUIRE_HOPPER();
  const int64_t M = 5, F = 3001;
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
  std::printf("silu_mul: max relative error %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
  cuda::add_inplace(dg.get<float>(), F, du.get<float>(), F, M, F, nullptr);
  test::sync();
  const std::vector<float> sum = to_host<float>(dg, g.size());
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(sum[i], g[i] + u[i]) << i;
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

// --- attention -----------------------------------------------------------------------------

// A paged cache holding several sequences whose blocks are scattered through the pool.
struct AttentionSetup {
  int n_heads = 8, n_kv = 2, Dh = 128, block_size = 16;
  std::vector<int> lengths = {1, 63, 64, 65, 130, 200};
  int64_t n_blocks = 0, T = 0;
  std::vector<int32_t> positions, offsets, tables, seq_of;
  std::vector<float> q, k, v;  // [T, H*Dh], [T, Hkv*Dh] x2
  DeviceBuffer dk_cache, dv_cache, dq, dk, dv, dpos, doff, dtab;
  cuda::PagedKv kv;

  AttentionSetup() {
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
      for (int p = 0; p < lengths[s]; ++p) {
        positions.push_back(p);
        offsets.push_back(offset);
        seq_of.push_back(static_cast<int32_t>(s));
      }
    }
    T = static_cast<int64_t>(positions.size());
    q = test::random_f32(static_cast<size_t>(T * n_heads * Dh), 10, -1, 1);
    k = test::random_f32(static_cast<size_t>(T * n_kv * Dh), 11, -1, 1);
    v = test::random_f32(static_cast<size_t>(T * n_kv * Dh), 12, -1, 1);
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
    cuda::kv_cache_write(kv, dk.get<float>(), n_kv * Dh, dv.get<float>(), n_kv * Dh, batch(0, T),
                         nullptr);
    test::sync();
  }
  // Tokens [first, first + count) of the flattened batch.
  cuda::DeviceBatch batch(int64_t first, int64_t count) const {
    return cuda::DeviceBatch{dpos.get<int32_t>() + first, doff.get<int32_t>() + first,
                             dtab.get<int32_t>(), count};
  }
  std::vector<float> run(int64_t first, int64_t count, int chunk = cuda::kAttentionChunk) {
    const int64_t width = n_heads * Dh;
    DeviceBuffer out(static_cast<size_t>(count * width) * 4);
    test::poison(out);
    cuda::attention(dq.get<float>() + first * width, width, out.get<float>(), width, n_heads,
                    1.0f / std::sqrt(static_cast<float>(Dh)), kv, batch(first, count), nullptr,
                    chunk);
    test::sync();
    return to_host<float>(out, static_cast<size_t>(count * width));
  }
  // float64 reference of token t over bf16-rounded k and v.
  std::vector<double> reference(int64_t t) const {
    const int64_t width = n_heads * Dh, kv_width = n_kv * Dh;
    const int64_t start = t - positions[t];  // first token of its sequence
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

TEST(CudaAttention, AccurateAgainstFloat64) {
  BX_REQUIRE_HOPPER();
  AttentionSetup a;
  const std::vector<float> out = a.run(0, a.T);
  const int64_t width = a.n_heads * a.Dh;
  double worst = 0;
  for (int64_t t = 0; t < a.T; t += 7) {
    const std::vector<double> ref = a.reference(t);
    for (int64_t i = 0; i < width; ++i) {
      ASSERT_TRUE(std::isfinite(out[t * width + i]));
      worst = std::max(worst, std::fabs(out[t * width + i] - ref[static_cast<size_t>(i)]));
    }
  }
  std::printf("attention: max absolute error %.3g (outputs are averages of values in [-1, 1])\n",
              worst);
  EXPECT_LT(worst, 1e-5);
}

// Every token of the ragged batch, computed alone (a decode step), in the whole batch (prefill
// of all sequences together) and in chunks of 7 tokens (chunked prefill), gives the same bits.
TEST(CudaAttention, TokenAloneEqualsTokenInAnyBatch) {
  BX_REQUIRE_HOPPER();
  AttentionSetup a;
  const int64_t width = a.n_heads * a.Dh;
  const std::vector<float> all = a.run(0, a.T);
  std::vector<float> chunked;
  for (int64_t first = 0; first < a.T; first += 7) {
    const std::vector<float> part = a.run(first, std::min<int64_t>(7, a.T - first));
    chunked.insert(chunked.end(), part.begin(), part.end());
  }
  EXPECT_TRUE(test::same_bits(all.data(), chunked.data(), all.size()));
  for (int64_t t = 0; t < a.T; ++t) {
    const std::vector<float> alone = a.run(t, 1);
    ASSERT_TRUE(test::same_bits(alone.data(), all.data() + t * width, static_cast<size_t>(width)))
        << "token " << t << " (sequence " << a.seq_of[t] << ", position " << a.positions[t] << ")";
  }
}

// Negative control: visiting the cache in 32-position chunks changes the bits of the tokens
// past position 32.
TEST(CudaAttention, OtherChunkSizeDiffers) {
  BX_REQUIRE_HOPPER();
  AttentionSetup a;
  const int64_t width = a.n_heads * a.Dh;
  const std::vector<float> base = a.run(0, a.T), other = a.run(0, a.T, 32);
  int differing = 0;
  for (int64_t t = 0; t < a.T; ++t) {
    if (!test::same_bits(base.data() + t * width, other.data() + t * width,
                         static_cast<size_t>(width))) {
      ++differing;
      EXPECT_GE(a.positions[t], 32) << "token " << t;
    }
  }
  std::printf("attention with 32-position chunks: %d of %lld tokens differ\n", differing,
              static_cast<long long>(a.T));
  EXPECT_GT(differing, 0);
}

}  // namespace
}  // namespace bx
