// Tests of the Mixture-of-Experts layer (kernels/moe.h) and its routing (kernels/moe_routing.h).
//
//   routing       softmax + top-k: ties go to the lowest expert id, NaNs rank last, normalized
//                 weights; grouping lists each expert's tokens in token order.
//   T1 exact      moe() equals moe_reference() bit for bit on every ISA path and thread count,
//                 on small-integer inputs and on random f32 and bf16 weights.
//   T2 accurate   against a float64 evaluation of the same math (its own softmax, top-k, SwiGLU
//                 and sums), normwise per token.
//   T3 invariant  a token's output row computed alone equals its row inside any batch (memcmp):
//                 1 to 4096 tokens, every token on one expert (k = 1), most experts empty,
//                 heavily loaded experts, 1 and 3 threads.
//   controls      the combine in arrival order, and expert GEMMs whose K split follows their
//                 token count, DO change rows that the invariant layer keeps equal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/moe.h"
#include "kernels/moe_routing.h"

namespace bx {
namespace {

std::vector<float> uniform(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

std::vector<float> small_ints(size_t n, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = static_cast<float>(dist(rng));
  return v;
}

// One MoE layer's weights, held as f32 or bf16; `*_f32` hold the values the kernel sees.
struct Layer {
  int64_t D = 0, F = 0;
  MoeRouting routing;
  DType dtype = DType::f32;
  std::vector<float> router, gate, up, down;  // [E, D], [E*F, D], [E*F, D], [E*D, F]
  std::vector<uint16_t> router16, gate16, up16, down16;

  int64_t E() const { return routing.n_experts; }
};

void hold_as(DType dtype, std::vector<float>& w, std::vector<uint16_t>& w16) {
  if (dtype != DType::bf16) return;
  w16.resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    w16[i] = f32_to_bf16(w[i]);
    w[i] = bf16_to_f32(w16[i]);
  }
}

Layer random_layer(int64_t D, int64_t F, int E, int k, bool normalize, DType dtype, uint32_t seed) {
  Layer l;
  l.D = D;
  l.F = F;
  l.routing = MoeRouting{E, k, normalize};
  l.dtype = dtype;
  const float sd = 1.0f / std::sqrt(static_cast<float>(D)), sf = 1.0f / std::sqrt(float(F));
  // A wide router spread (about 3 / sqrt(D) per weight) so routes differ between tokens.
  l.router = uniform(static_cast<size_t>(E * D), seed, 3.0f * sd);
  l.gate = uniform(static_cast<size_t>(E * F * D), seed + 1, 1.7f * sd);
  l.up = uniform(static_cast<size_t>(E * F * D), seed + 2, 1.7f * sd);
  l.down = uniform(static_cast<size_t>(E * D * F), seed + 3, 1.7f * sf);
  hold_as(dtype, l.router, l.router16);
  hold_as(dtype, l.gate, l.gate16);
  hold_as(dtype, l.up, l.up16);
  hold_as(dtype, l.down, l.down16);
  return l;
}

MoeMatrix matrix(const Layer& l, const std::vector<float>& f32, const std::vector<uint16_t>& b16,
                 int64_t rows, int64_t cols) {
  const void* data = l.dtype == DType::bf16 ? static_cast<const void*>(b16.data()) : f32.data();
  return MoeMatrix{data, l.dtype, rows, cols};
}

struct RunOptions {
  ReductionOrder order = ReductionOrder::canonical;
  MoeCombine combine = MoeCombine::rank_order;
  bool reference = false;
};

// y [T, D] after y += moe(x), starting from y0 (empty: zeros).
std::vector<float> run(const Layer& l, const std::vector<float>& x, const std::vector<float>& y0,
                       ThreadPool& pool, const RunOptions& o = {}) {
  const int64_t T = static_cast<int64_t>(x.size()) / l.D;
  std::vector<float> y = y0.empty() ? std::vector<float>(x.size(), 0.0f) : y0;
  const size_t bytes = moe_workspace_bytes(T, l.D, l.F, l.routing);
  std::vector<std::max_align_t> ws(bytes / sizeof(std::max_align_t) + 1);
  MoeArgs a;
  a.x = x.data();
  a.x_stride = l.D;
  a.y = y.data();
  a.y_stride = l.D;
  a.T = T;
  a.D = l.D;
  a.F = l.F;
  a.routing = l.routing;
  a.router = matrix(l, l.router, l.router16, l.E(), l.D);
  a.gate = matrix(l, l.gate, l.gate16, l.E() * l.F, l.D);
  a.up = matrix(l, l.up, l.up16, l.E() * l.F, l.D);
  a.down = matrix(l, l.down, l.down16, l.E() * l.D, l.F);
  a.workspace = ws.data();
  a.order = o.order;
  a.combine = o.combine;
  if (o.reference) {
    moe_reference(a);
  } else {
    moe(a, pool);
  }
  return y;
}

std::vector<float> row(const std::vector<float>& m, int64_t r, int64_t width) {
  return std::vector<float>(m.begin() + r * width, m.begin() + (r + 1) * width);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// --- routing ---

TEST(MoeRouting, TopKTiesGoToTheLowestExpertId) {
  // Experts 1, 3 and 4 tie for the largest logit, 0 and 2 for the next.
  const std::vector<float> logits = {1.0f, 2.0f, 1.0f, 2.0f, 2.0f, -5.0f};
  std::vector<int32_t> ids(4);
  std::vector<float> w(4);
  route_tokens(logits.data(), 6, 1, MoeRouting{6, 4, false}, ids.data(), w.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3, 4, 0}));
  EXPECT_EQ(w[0], w[1]);
  EXPECT_EQ(w[1], w[2]);
  EXPECT_GT(w[2], w[3]);
}

TEST(MoeRouting, SoftmaxWeightsAndTheirNormalization) {
  const std::vector<float> logits = {0.5f, -1.0f, 2.0f, 0.0f};
  std::vector<int32_t> ids(2);
  std::vector<float> plain(2), normalized(2);
  route_tokens(logits.data(), 4, 1, MoeRouting{4, 2, false}, ids.data(), plain.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 0}));
  double s = 0;
  for (float l : logits) s += std::exp(double(l));
  EXPECT_NEAR(plain[0], std::exp(2.0) / s, 1e-7);
  EXPECT_NEAR(plain[1], std::exp(0.5) / s, 1e-7);
  route_tokens(logits.data(), 4, 1, MoeRouting{4, 2, true}, ids.data(), normalized.data());
  EXPECT_EQ(normalized[0], plain[0] / (plain[0] + plain[1]));
  EXPECT_EQ(normalized[1], plain[1] / (plain[0] + plain[1]));
}

TEST(MoeRouting, NanRanksLastAndEveryTokenGetsDistinctExperts) {
  const std::vector<float> logits = {NAN, 1.0f, NAN, 0.0f};
  std::vector<int32_t> ids(4);
  std::vector<float> w(4);
  route_tokens(logits.data(), 4, 1, MoeRouting{4, 4, false}, ids.data(), w.data());
  // A NaN logit makes the whole softmax NaN (the max is NaN), so all rank equal: by id.
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2, 3}));
  const std::vector<float> finite = {-1.0f, 1.0f, -1.0f, 0.0f};
  route_tokens(finite.data(), 4, 1, MoeRouting{4, 4, false}, ids.data(), w.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3, 0, 2}));
}

TEST(MoeRouting, RejectsTopKOutsideTheExperts) {
  const std::vector<float> logits(4, 0.0f);
  std::vector<int32_t> ids(8);
  std::vector<float> w(8);
  for (const MoeRouting r :
       {MoeRouting{4, 0, false}, MoeRouting{4, 5, false}, MoeRouting{kMaxExperts + 1, 1, false}}) {
    try {
      route_tokens(logits.data(), 4, 1, r, ids.data(), w.data());
      ADD_FAILURE() << "k=" << r.top_k << " of E=" << r.n_experts << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected 1 <= k <= experts"), std::string::npos)
          << e.what();
    }
  }
}

TEST(MoeRouting, GroupingListsEachExpertsTokensInTokenOrder) {
  // 4 tokens, k = 2, 5 experts (expert 2 and 4 get none).
  const std::vector<int32_t> ids = {3, 0, 0, 1, 3, 1, 0, 3};
  std::vector<int64_t> offsets(6), slots(8);
  group_by_expert(ids.data(), 4, 2, 5, offsets.data(), slots.data());
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, 3, 5, 5, 8, 8}));
  // expert 0: (t0 r1), (t1 r0), (t3 r0); expert 1: (t1 r1), (t2 r1); expert 3: t0, t2, t3.
  EXPECT_EQ(slots, (std::vector<int64_t>{1, 2, 6, 3, 5, 0, 4, 7}));
}

// --- T1: the fast path equals the scalar reference ---

class MoeIsa : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << isa_name(GetParam()) << " not supported";
    saved_ = active_isa();
    set_isa(GetParam());
  }
  void TearDown() override {
    if (isa_supported(GetParam())) set_isa(saved_);
  }
  Isa saved_ = Isa::scalar;
};

TEST_P(MoeIsa, SmallIntegersEqualTheReferenceBitwise) {
  // Integer weights and inputs: every GEMM sum is exact, so the reference pins the bits.
  Layer l = random_layer(32, 16, 8, 2, true, DType::f32, 5);
  l.router = small_ints(l.router.size(), 6, -3, 3);
  l.gate = small_ints(l.gate.size(), 7, -2, 2);
  l.up = small_ints(l.up.size(), 8, -2, 2);
  l.down = small_ints(l.down.size(), 9, -2, 2);
  const std::vector<float> x = small_ints(size_t{37} * 32, 10, -2, 2);
  const std::vector<float> y0 = small_ints(x.size(), 11, -50, 50);
  ThreadPool pool(3);
  const std::vector<float> got = run(l, x, y0, pool);
  EXPECT_TRUE(same_bits(got, run(l, x, y0, pool, {.reference = true})));
  EXPECT_FALSE(same_bits(got, y0));  // the layer added something
}

TEST_P(MoeIsa, RandomWeightsEqualTheReferenceBitwise) {
  for (const DType dtype : {DType::f32, DType::bf16}) {
    const Layer l = random_layer(48, 40, 16, 4, dtype == DType::f32, dtype, 21);
    const std::vector<float> x = uniform(size_t{53} * 48, 22, 2.0f);
    const std::vector<float> y0 = uniform(x.size(), 23, 1.0f);
    ThreadPool pool(2);
    EXPECT_TRUE(same_bits(run(l, x, y0, pool), run(l, x, y0, pool, {.reference = true})))
        << dtype_name(dtype);
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, MoeIsa, ::testing::Values(Isa::scalar, Isa::avx2, Isa::avx512),
                         [](const auto& p) { return std::string(isa_name(p.param)); });

// --- T2: against float64 ---

// The layer in double for token x [D]: its own softmax, top-k (ties to the lower id) and sums.
std::vector<double> moe_f64(const Layer& l, const float* x, std::vector<int32_t>* ids) {
  const int64_t D = l.D, F = l.F, E = l.E();
  const int k = l.routing.top_k;
  std::vector<double> p(static_cast<size_t>(E));
  double mx = -INFINITY;
  for (int64_t e = 0; e < E; ++e) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += double(x[d]) * l.router[e * D + d];
    p[e] = s;
    mx = std::max(mx, s);
  }
  double total = 0;
  for (double& v : p) total += (v = std::exp(v - mx));
  for (double& v : p) v /= total;
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int32_t e = 0; e < E; ++e) order[e] = e;
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  order.resize(static_cast<size_t>(k));
  double norm = 0;
  for (int32_t e : order) norm += p[e];
  std::vector<double> out(static_cast<size_t>(D), 0.0), h(static_cast<size_t>(F));
  for (int32_t e : order) {
    for (int64_t f = 0; f < F; ++f) {
      double g = 0, u = 0;
      for (int64_t d = 0; d < D; ++d) {
        g += double(x[d]) * l.gate[(e * F + f) * D + d];
        u += double(x[d]) * l.up[(e * F + f) * D + d];
      }
      h[f] = g / (1.0 + std::exp(-g)) * u;
    }
    const double w = l.routing.normalize ? p[e] / norm : p[e];
    for (int64_t d = 0; d < D; ++d) {
      double o = 0;
      for (int64_t f = 0; f < F; ++f) o += h[f] * l.down[(e * D + d) * F + f];
      out[d] += w * o;
    }
  }
  *ids = order;
  return out;
}

TEST(MoeAccuracy, MatchesFloat64) {
  struct Case {
    int64_t D, F;
    int E, k;
    bool normalize;
    DType dtype;
  };
  double worst = 0;
  for (const Case& c :
       {Case{64, 32, 8, 2, true, DType::f32}, Case{128, 64, 16, 4, false, DType::f32},
        Case{96, 48, 32, 8, true, DType::bf16}, Case{64, 96, 4, 1, false, DType::f32}}) {
    const Layer l = random_layer(c.D, c.F, c.E, c.k, c.normalize, c.dtype, 31);
    const int64_t T = 40;
    const std::vector<float> x = uniform(static_cast<size_t>(T * c.D), 32, 2.0f);
    ThreadPool pool(2);
    const std::vector<float> y = run(l, x, {}, pool);  // y0 = 0: y is the layer's output
    for (int64_t t = 0; t < T; ++t) {
      std::vector<int32_t> ids;
      const std::vector<double> ref = moe_f64(l, x.data() + t * c.D, &ids);
      double err = 0, norm = 0;
      for (int64_t d = 0; d < c.D; ++d) {
        err += std::pow(y[t * c.D + d] - ref[d], 2);
        norm += ref[d] * ref[d];
      }
      const double rel = std::sqrt(err / norm);
      worst = std::max(worst, rel);
      EXPECT_LT(rel, 1e-5) << "D=" << c.D << " E=" << c.E << " k=" << c.k << " token " << t;
    }
  }
  std::printf("worst normwise relative error %.3g\n", worst);
}

// --- T3: invariance, and the negative controls ---

struct Batch {
  std::vector<float> x, y0;
};

// `probes` first, then `companions` of the same D.
Batch make_batch(const std::vector<float>& probes, const std::vector<float>& companions,
                 uint32_t seed) {
  Batch b;
  b.x = probes;
  b.x.insert(b.x.end(), companions.begin(), companions.end());
  b.y0 = uniform(b.x.size(), seed, 1.0f);
  return b;
}

// Each probe row alone vs inside the batch; the number of rows that differ.
int differing_probes(const Layer& l, const Batch& b, int64_t n_probes, ThreadPool& pool,
                     const RunOptions& o) {
  const std::vector<float> y = run(l, b.x, b.y0, pool, o);
  int differ = 0;
  for (int64_t t = 0; t < n_probes; ++t) {
    const std::vector<float> alone = run(l, row(b.x, t, l.D), row(b.y0, t, l.D), pool, o);
    differ += same_bits(alone, row(y, t, l.D)) ? 0 : 1;
  }
  return differ;
}

// n copies of one token: every copy goes to the same k experts (k = 1: one expert gets all).
std::vector<float> copies(const std::vector<float>& token, int64_t n) {
  std::vector<float> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), token.begin(), token.end());
  return out;
}

TEST(MoeInvariance, TokenAloneEqualsTokenInAnyBatch) {
  ThreadPool one(1), three(3);
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const int k : {1, 2, 4}) {
      const Layer l = random_layer(64, 48, 8, k, k > 1, dtype, 40 + k);
      const int64_t n_probes = 6;
      const std::vector<float> probes = uniform(size_t{n_probes} * 64, 41, 2.0f);
      for (const int64_t companions :
           {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{300}, int64_t{4090}}) {
        // Random companions (every expert busy), and copies of one token (its k experts carry
        // the whole batch, the others only the probes: most of them empty).
        const Batch spread = make_batch(probes, uniform(size_t(companions) * 64, 42, 2.0f), 43);
        const Batch piled = make_batch(probes, copies(row(probes, 0, 64), companions), 44);
        for (ThreadPool* pool : {&one, &three}) {
          EXPECT_EQ(differing_probes(l, spread, n_probes, *pool, {}), 0)
              << dtype_name(dtype) << " k=" << k << " +" << companions << " spread";
          EXPECT_EQ(differing_probes(l, piled, n_probes, *pool, {}), 0)
              << dtype_name(dtype) << " k=" << k << " +" << companions << " piled";
        }
      }
    }
  }
}

TEST(MoeInvariance, ArrivalOrderCombineDiffers) {
  // The same batches as above: a combine in the order the experts ran changes rows.
  const Layer l = random_layer(64, 48, 8, 4, true, DType::f32, 50);
  const int64_t n_probes = 16;
  const std::vector<float> probes = uniform(size_t{n_probes} * 64, 51, 2.0f);
  ThreadPool pool(2);
  int differ = 0;
  for (const int64_t companions : {int64_t{7}, int64_t{300}}) {
    const Batch piled = make_batch(probes, copies(row(probes, 0, 64), companions), 52);
    const Batch spread = make_batch(probes, uniform(size_t(companions) * 64, 53, 2.0f), 54);
    EXPECT_EQ(differing_probes(l, piled, n_probes, pool, {}), 0);
    differ += differing_probes(l, piled, n_probes, pool, {.combine = MoeCombine::arrival_order});
    differ += differing_probes(l, spread, n_probes, pool, {.combine = MoeCombine::arrival_order});
  }
  EXPECT_GT(differ, 0) << "the arrival-order combine never changed a row: the test cannot fail";
}

TEST(MoeInvariance, ExpertSplitThatFollowsTheTokenCountDiffers) {
  // T is fixed (so the router GEMM's split is the same): only the experts' token counts change
  // with the companions. Under split_k_by_m a probe's row then changes; canonically it does not.
  const Layer l = random_layer(96, 48, 8, 2, true, DType::f32, 60);
  const int64_t n_probes = 8, T = 64;
  const std::vector<float> probes = uniform(size_t{n_probes} * 96, 61, 2.0f);
  ThreadPool pool(2);
  const RunOptions split{.order = ReductionOrder::split_k_by_m};
  std::vector<std::vector<float>> outputs, split_outputs;
  for (uint32_t variant = 0; variant < 4; ++variant) {
    // Companions: copies of probe `variant` (its experts loaded) or random tokens.
    const std::vector<float> comp = variant < 3 ? copies(row(probes, variant, 96), T - n_probes)
                                                : uniform(size_t(T - n_probes) * 96, 62, 2.0f);
    const Batch b = make_batch(probes, comp, 63);
    std::vector<float> y = run(l, b.x, b.y0, pool);
    std::vector<float> ys = run(l, b.x, b.y0, pool, split);
    y.resize(size_t{n_probes} * 96);
    ys.resize(size_t{n_probes} * 96);
    // y0 rows of the probes are the same in every variant (make_batch draws y0 with one seed
    // over the same number of rows).
    outputs.push_back(y);
    split_outputs.push_back(ys);
  }
  int split_differs = 0;
  for (size_t v = 1; v < outputs.size(); ++v) {
    EXPECT_TRUE(same_bits(outputs[v], outputs[0])) << "variant " << v;
    split_differs += same_bits(split_outputs[v], split_outputs[0]) ? 0 : 1;
  }
  EXPECT_GT(split_differs, 0) << "expert GEMMs split by their token count never changed a row";
}

TEST(MoeLayer, RejectsBadShapes) {
  Layer l = random_layer(32, 16, 4, 2, true, DType::f32, 70);
  const std::vector<float> x = uniform(32, 71, 1.0f);
  std::vector<float> y(32);
  std::vector<std::max_align_t> ws(4096);
  MoeArgs a;
  a.x = x.data();
  a.y = y.data();
  a.T = 1;
  a.D = 32;
  a.F = 16;
  a.routing = l.routing;
  a.router = matrix(l, l.router, l.router16, 4, 32);
  a.gate = matrix(l, l.gate, l.gate16, 4 * 16, 32);
  a.up = matrix(l, l.up, l.up16, 4 * 16, 32);
  a.down = matrix(l, l.down, l.down16, 3 * 32, 16);  // one expert short
  a.workspace = ws.data();
  ThreadPool pool(1);
  try {
    moe(a, pool);
    FAIL() << "a down projection of 3 experts was accepted for 4";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected 4, 64, 64 and 128"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace bx
