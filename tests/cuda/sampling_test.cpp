// Seeded sampling on the GPU (Backend::sample_rows, kernels/cuda/sample.h) against the host
// Sampler (sampling/sampler.h), which stays the reference.
//
//   T1 exact      exp_steps on the device gives exp_f32's bits (dense sweep and special values;
//                 a NaN stays a NaN, its payload is the hardware's);
//                 sample_rows gives the host Sampler's id and logprob, bit for bit, on random
//                 rows (flat, peaked, small-integer ties, NaN, +-inf, all -inf, all NaN, -0/+0)
//                 under a grid of parameters (temperature tiny to huge, top_k 1/50/V, top_p
//                 0.1/0.9/1, min_p), at V = 4099 and at Qwen3's V = 151936.
//   T3 invariant  a row alone gives the bits it gives as one of 256 rows; the draw is keyed by
//                 the token index, not the slot. Negative control: other token indices (or
//                 seeds) change the draw of a flat row.
//   T4 engine     random:qwen3-tiny with device sampling gives the tokens and logprobs of the
//                 host Sampler (EngineOptions::device_sampling = false), batched and alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "engine/engine.h"
#include "kernels/cuda/sample.h"
#include "kernels/math.h"
#include "model/loader.h"
#include "sampling/sampler.h"
#include "support/cuda_test_data.h"
#include "support/engine_runner.h"

namespace bx {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Rows of several kinds, V wide.
std::vector<float> make_row(int kind, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> row(static_cast<size_t>(V));
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-6, 6);
  std::uniform_int_distribution<int64_t> pick(0, V - 1);
  switch (kind) {
    case 0:  // flat: random weights give logits like these
      for (float& x : row) x = uniform(rng);
      break;
    case 1:  // peaked: a model's row, a few ids far above the rest
      for (float& x : row) x = 2.5f * normal(rng);
      for (int k = 0; k < 8; ++k)
        row[static_cast<size_t>(pick(rng))] = 14.0f + 2.0f * static_cast<float>(k);
      break;
    case 2:  // small integers: many exact ties of z and of weights
      for (float& x : row) x = static_cast<float>(small(rng));
      break;
    case 3:  // NaN, +-inf and signed zeros sprinkled over a normal row
      for (float& x : row) x = normal(rng);
      for (int k = 0; k < 40; ++k) row[static_cast<size_t>(pick(rng))] = kNaN;
      for (int k = 0; k < 40; ++k) row[static_cast<size_t>(pick(rng))] = -kInf;
      for (int k = 0; k < 20; ++k) row[static_cast<size_t>(pick(rng))] = -0.0f;
      for (int k = 0; k < 20; ++k) row[static_cast<size_t>(pick(rng))] = 0.0f;
      break;
    case 4:  // +inf at three ids: they tie and weigh 1
      for (float& x : row) x = normal(rng);
      row[static_cast<size_t>(V / 3)] = kInf, row[7] = kInf, row[static_cast<size_t>(V - 1)] = kInf;
      break;
    case 5:  // all -inf but NaNs: nothing to draw from, the greedy id
      for (float& x : row) x = -kInf;
      row[3] = kNaN;
      break;
    case 6:  // all NaN
      for (float& x : row) x = kNaN;
      break;
    case 7:  // all equal: V-way tie
      for (float& x : row) x = 0.5f;
      break;
    default:  // wide: logits spread over hundreds, most weights underflow to 0
      for (float& x : row) x = 60.0f * normal(rng);
      break;
  }
  return row;
}
constexpr int kKinds = 9;

std::vector<SamplingParams> parameter_grid() {
  std::vector<SamplingParams> grid;
  uint64_t seed = 11;
  for (float t : {1e-30f, 0.05f, 0.7f, 1.0f, 3.0f, 1e30f}) {
    for (int32_t k : {0, 1, 50, 4099}) {
      for (float p : {0.1f, 0.9f, 1.0f}) {
        for (float m : {0.0f, 0.05f}) {
          SamplingParams s;
          s.temperature = t, s.top_k = k, s.top_p = p, s.min_p = m, s.seed = seed++;
          grid.push_back(s);
        }
      }
    }
  }
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  grid.push_back(greedy);
  SamplingParams min_p_one;
  min_p_one.min_p = 1.0f, min_p_one.seed = 5;
  grid.push_back(min_p_one);
  SamplingParams big_seed;
  big_seed.seed = ~uint64_t{0}, big_seed.top_p = 0.5f;
  grid.push_back(big_seed);
  return grid;
}

struct Case {
  std::vector<float> logits;
  SamplingParams params;
  uint64_t token_index;
};

struct Results {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
};

// The cases' rows on the device, log-softmaxed there; sample_rows' choice for each, and the host
// Sampler's choice from the same logits and logprobs.
void run_cases(CudaBackend& backend, const std::vector<Case>& cases, int64_t V, Results& gpu,
               Results& host) {
  const auto R = static_cast<int64_t>(cases.size());
  const Tensor logits = backend.alloc(DType::f32, R, V);
  const Tensor logprobs = backend.alloc(DType::f32, R, V);
  for (int64_t r = 0; r < R; ++r) {
    cuda::check_cuda(cudaMemcpy(static_cast<float*>(logits.data) + r * logits.stride,
                                cases[static_cast<size_t>(r)].logits.data(),
                                static_cast<size_t>(V) * sizeof(float), cudaMemcpyHostToDevice),
                     "upload");
  }
  backend.log_softmax(logits, logprobs);
  std::vector<SamplingParams> params;
  std::vector<uint64_t> indices;
  for (const Case& c : cases) params.push_back(c.params), indices.push_back(c.token_index);
  gpu.ids.assign(static_cast<size_t>(R), -1);
  gpu.logprobs.assign(static_cast<size_t>(R), 0.0f);
  backend.sample_rows(logits, logprobs, params, indices, gpu.ids.data(), gpu.logprobs.data());
  std::vector<float> lp(static_cast<size_t>(V));
  Sampler sampler;
  host.ids.clear(), host.logprobs.clear();
  for (int64_t r = 0; r < R; ++r) {
    backend.copy_to_host(logprobs.rows_view(r, 1), lp.data());
    const Case& c = cases[static_cast<size_t>(r)];
    const Sampler::Choice choice = sampler.sample(c.logits, lp, c.params, c.token_index);
    host.ids.push_back(choice.id);
    host.logprobs.push_back(choice.logprob);
  }
}

std::string describe(const SamplingParams& p, uint64_t token_index) {
  return "T=" + std::to_string(p.temperature) + " top_k=" + std::to_string(p.top_k) +
         " top_p=" + std::to_string(p.top_p) + " min_p=" + std::to_string(p.min_p) +
         " seed=" + std::to_string(p.seed) + " index=" + std::to_string(token_index);
}

void expect_same(const std::vector<Case>& cases, const Results& gpu, const Results& host,
                 const std::string& what) {
  int mismatches = 0;
  for (size_t r = 0; r < cases.size(); ++r) {
    const bool same = gpu.ids[r] == host.ids[r] && bits(gpu.logprobs[r]) == bits(host.logprobs[r]);
    if (!same && ++mismatches <= 10) {
      ADD_FAILURE() << what << " case " << r << ": gpu id " << gpu.ids[r] << ", host id "
                    << host.ids[r] << " (" << describe(cases[r].params, cases[r].token_index)
                    << ")";
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

TEST(CudaSampling, ExpStepsOnTheDeviceIsExpF32) {
  BX_REQUIRE_HOPPER();
  std::vector<float> x;
  for (uint32_t u = 0; u < (1u << 24); ++u) {  // every 256th float, all signs and exponents
    float f;
    const uint32_t b = u << 8 | (u & 0xFF);
    std::memcpy(&f, &b, sizeof f);
    x.push_back(f);
  }
  for (float f = -110.0f; f < 95.0f; f += 0.0009765625f) x.push_back(f);  // the whole range
  for (float f : {0.0f, -0.0f, kInf, -kInf, kNaN, 88.75f, 88.7f, -104.0f, -103.97f, 1e-30f})
    x.push_back(f);
  const auto n = static_cast<int64_t>(x.size());
  const cuda::DeviceBuffer d_x = test::to_device(x);
  cuda::DeviceBuffer d_y(x.size() * sizeof(float));
  cuda::exp_steps_on_device(d_x.get<float>(), d_y.get<float>(), n, nullptr);
  const std::vector<float> y = test::to_host<float>(d_y, x.size());
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float got = y[static_cast<size_t>(i)];
    const float want = exp_f32(x[static_cast<size_t>(i)]);
    if (std::isnan(got) && std::isnan(want)) continue;  // NaN payloads are the hardware's
    if (bits(got) != bits(want) && ++mismatches <= 5) {
      ADD_FAILURE() << "exp(" << x[static_cast<size_t>(i)] << "): device "
                    << y[static_cast<size_t>(i)] << ", host " << want;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(CudaSampling, SampleRowsIsTheHostSamplerOnManyRowsAndParameters) {
  BX_REQUIRE_HOPPER();
  CudaBackend backend;
  const int64_t V = 4099;  // not a multiple of 16: the lane sums' padding
  const std::vector<SamplingParams> grid = parameter_grid();
  std::vector<Case> cases;
  for (int kind = 0; kind < kKinds; ++kind) {
    for (int copy = 0; copy < 2; ++copy) {
      const std::vector<float> row = make_row(kind, V, static_cast<uint32_t>(100 * kind + copy));
      for (size_t g = 0; g < grid.size(); ++g) {
        cases.push_back({row, grid[g], 1000 + 7 * g + static_cast<uint64_t>(copy)});
      }
    }
  }
  Results gpu, host;
  run_cases(backend, cases, V, gpu, host);
  expect_same(cases, gpu, host, "V=4099");
}

TEST(CudaSampling, SampleRowsIsTheHostSamplerAtQwen3Vocabulary) {
  BX_REQUIRE_HOPPER();
  CudaBackend backend;
  const int64_t V = 151936;
  std::vector<SamplingParams> grid;
  for (float t : {0.6f, 1.0f, 1e-30f, 50.0f}) {
    for (int32_t k : {0, 20, 151936}) {
      for (float p : {0.95f, 1.0f}) {
        SamplingParams s;
        s.temperature = t, s.top_k = k, s.top_p = p, s.min_p = k == 20 ? 0.1f : 0.0f;
        s.seed = static_cast<uint64_t>(grid.size()) * 977;
        grid.push_back(s);
      }
    }
  }
  std::vector<Case> cases;
  for (int kind : {0, 1, 2, 3, 7, 8}) {
    const std::vector<float> row = make_row(kind, V, static_cast<uint32_t>(kind + 77));
    for (size_t g = 0; g < grid.size(); ++g) cases.push_back({row, grid[g], 31 + g});
  }
  Results gpu, host;
  run_cases(backend, cases, V, gpu, host);
  expect_same(cases, gpu, host, "V=151936");
}

TEST(CudaSampling, RowAloneEqualsRowInABatchOf256) {
  BX_REQUIRE_HOPPER();
  CudaBackend backend;
  const int64_t V = 151936;
  std::vector<Case> cases;
  for (int r = 0; r < 256; ++r) {
    SamplingParams p;
    p.temperature = r % 4 == 0 ? 0.0f : 0.5f + 0.01f * static_cast<float>(r % 50);
    p.top_k = r % 3 == 0 ? 40 : 0;
    p.top_p = r % 5 == 0 ? 0.9f : 1.0f;
    p.seed = static_cast<uint64_t>(r) * 31 + 1;
    cases.push_back({make_row(r % 2 == 0 ? 1 : 0, V, static_cast<uint32_t>(r)), p,
                     static_cast<uint64_t>(100 + r)});
  }
  Results batch, host;
  run_cases(backend, cases, V, batch, host);
  expect_same(cases, batch, host, "batch of 256");
  for (size_t r : {size_t{1}, size_t{2}, size_t{77}, size_t{255}}) {
    Results alone, unused;
    run_cases(backend, {cases[r]}, V, alone, unused);
    EXPECT_EQ(alone.ids[0], batch.ids[r]) << "row " << r;
    EXPECT_EQ(bits(alone.logprobs[0]), bits(batch.logprobs[r])) << "row " << r;
  }
}

// The draw is keyed by (seed, token index): the same case in any slot gives the same id; another
// token index gives another draw (negative control: the key does reach the draw).
TEST(CudaSampling, DrawsAreKeyedByTokenIndexNotSlot) {
  BX_REQUIRE_HOPPER();
  CudaBackend backend;
  const int64_t V = 4099;
  const std::vector<float> row = make_row(0, V, 9);
  SamplingParams p;
  p.seed = 1234;
  std::vector<Case> cases;
  for (int slot = 0; slot < 64; ++slot) cases.push_back({row, p, 500});  // same index
  for (uint64_t index = 0; index < 64; ++index) cases.push_back({row, p, index});
  Results gpu, host;
  run_cases(backend, cases, V, gpu, host);
  expect_same(cases, gpu, host, "keyed draws");
  std::set<int32_t> same_index(gpu.ids.begin(), gpu.ids.begin() + 64);
  std::set<int32_t> other_indices(gpu.ids.begin() + 64, gpu.ids.end());
  EXPECT_EQ(same_index.size(), 1u) << "the slot changed the draw";
  EXPECT_GT(other_indices.size(), 32u) << "the token index does not reach the draw";
}

TEST(CudaSampling, InvalidParametersThrow) {
  BX_REQUIRE_HOPPER();
  CudaBackend backend;
  const Tensor logits = backend.alloc(DType::f32, 1, 64);
  const Tensor logprobs = backend.alloc(DType::f32, 1, 64);
  SamplingParams bad;
  bad.top_p = 0.0f;
  const std::vector<SamplingParams> params = {bad};
  const std::vector<uint64_t> indices = {0};
  int32_t id = 0;
  float lp = 0;
  EXPECT_THROW(backend.sample_rows(logits, logprobs, params, indices, &id, &lp), Error);
  EXPECT_THROW(backend.sample_rows(logits, logprobs, {}, {}, &id, &lp), Error);
}

// ---- the engine ----

LoadedModel load_tiny() {
  LoadOptions options;
  options.threads = 2;
  options.max_batch_tokens = 512;
  options.max_logit_rows = 64;
  options.make_backend = [] { return std::make_unique<CudaBackend>(); };
  return load_model("random:qwen3-tiny:3", options);
}

std::vector<EngineRequest> sampled_requests(int vocab, int count) {
  std::vector<EngineRequest> out;
  for (int i = 0; i < count; ++i) {
    EngineRequest r;
    for (int t = 0; t < 3 + (i * 29) % 70; ++t) r.prompt.push_back((t * 37 + i * 11 + 2) % vocab);
    r.max_tokens = 12 + i % 5;
    r.sampling.temperature = i % 6 == 5 ? 0.0f : 0.4f + 0.15f * static_cast<float>(i % 7);
    r.sampling.top_k = i % 3 == 1 ? 30 : 0;
    r.sampling.top_p = i % 4 == 2 ? 0.8f : 1.0f;
    r.sampling.min_p = i % 5 == 3 ? 0.05f : 0.0f;
    r.sampling.seed = 900 + static_cast<uint64_t>(i);
    r.top_logprobs = i % 8 == 7 ? 3 : 0;  // these rows still come to the host whole
    r.min_tokens = i % 9 == 4 ? 4 : 0;    // masked rows too, until min_tokens
    r.ignore_eos = true;
    out.push_back(r);
  }
  return out;
}

TEST(CudaSampling, EngineDeviceSamplingGivesTheHostSamplerBits) {
  BX_REQUIRE_HOPPER();
  LoadedModel m = load_tiny();
  const std::vector<EngineRequest> rs = sampled_requests(m.config.vocab_size, 24);
  EngineOptions host_options;
  host_options.device_sampling = false;
  host_options.device_greedy = false;
  EngineOptions device_options;
  device_options.max_batch_tokens = 128;  // chunked prefill, mixed steps
  const std::vector<test::SampleResult> host = test::first_samples_together(m, rs, host_options);
  const std::vector<test::SampleResult> device =
      test::first_samples_together(m, rs, device_options);
  std::set<std::vector<int32_t>> distinct;
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(device[i].tokens.size(), static_cast<size_t>(rs[i].max_tokens)) << i;
    EXPECT_TRUE(host[i].same_bits(device[i])) << "request " << i;
    distinct.insert(device[i].tokens);
  }
  EXPECT_GT(distinct.size(), rs.size() / 2) << "the requests hardly differ: a weak test";
  // Alone, device-sampled: the same bits as in the batch.
  for (size_t i : {size_t{0}, size_t{3}, size_t{10}}) {
    const test::SampleResult alone = test::run_alone(m, rs[i], {}).samples.at(0);
    EXPECT_TRUE(alone.same_bits(device[i])) << "request " << i << " alone";
  }
}

}  // namespace
}  // namespace bx
