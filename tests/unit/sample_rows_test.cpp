// bx::sample_rows on the CPU backend (the host path: the Sampler on copies of the rows):
// each row's (id, logprob) is Sampler::sample's, whatever the other rows; a CPU backend does not
// claim device sampling, so the engine keeps its host Sampler there. The GPU version is checked
// against the same Sampler in tests/cuda/sampling_test.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu_backend.h"
#include "core/error.h"
#include "kernels/exp_steps.h"
#include "kernels/math.h"
#include "sampling/philox.h"
#include "sampling/sampler.h"

namespace bx {
namespace {

TEST(SampleRows, CpuDefaultIsTheSamplerPerRow) {
  CpuBackend backend(2);
  EXPECT_EQ(backend.capabilities().device_sampling, nullptr);
  const int64_t R = 6, V = 1000;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(R * V));
  for (float& x : logits) x = normal(rng);
  logits[5] = std::numeric_limits<float>::quiet_NaN();
  const Tensor t_logits = backend.upload_matrix(logits.data(), R, V, DType::f32);
  const Tensor t_logprobs = backend.alloc(DType::f32, R, V);
  backend.log_softmax(t_logits, t_logprobs);
  std::vector<float> logprobs(logits.size());
  backend.copy_to_host(t_logprobs, logprobs.data());

  std::vector<SamplingParams> params(static_cast<size_t>(R));
  std::vector<uint64_t> indices(static_cast<size_t>(R));
  for (size_t r = 0; r < params.size(); ++r) {
    params[r].temperature = r == 0 ? 0.0f : 0.5f * static_cast<float>(r);
    params[r].top_k = r == 2 ? 10 : 0;
    params[r].top_p = r == 3 ? 0.7f : 1.0f;
    params[r].min_p = r == 4 ? 0.1f : 0.0f;
    params[r].seed = 77 + r;
    indices[r] = 40 + 3 * r;
  }
  std::vector<int32_t> ids(static_cast<size_t>(R));
  std::vector<float> chosen(static_cast<size_t>(R));
  sample_rows(backend, t_logits, t_logprobs, params, indices, ids.data(), chosen.data());
  Sampler sampler;
  for (size_t r = 0; r < params.size(); ++r) {
    const std::span<const float> row(logits.data() + r * V, static_cast<size_t>(V));
    const std::span<const float> lp(logprobs.data() + r * V, static_cast<size_t>(V));
    const Sampler::Choice want = sampler.sample(row, lp, params[r], indices[r]);
    EXPECT_EQ(ids[r], want.id) << r;
    EXPECT_EQ(std::memcmp(&chosen[r], &want.logprob, sizeof(float)), 0) << r;
  }
  // Wrong counts and invalid parameters are errors.
  EXPECT_THROW(sample_rows(backend, t_logits, t_logprobs, std::span(params).first(2), indices,
                           ids.data(), chosen.data()),
               Error);
  params[1].temperature = -1.0f;
  EXPECT_THROW(
      sample_rows(backend, t_logits, t_logprobs, params, indices, ids.data(), chosen.data()),
      Error);
}

// The one source of exp and Philox that host and device share: exp_steps is exp_f32, and the
// word-level Philox is the array one (both also pinned by math_test and sampler_test).
TEST(SampleRows, SharedSourcesAreTheHostFunctions) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> x(-110.0f, 95.0f);
  for (int i = 0; i < 100000; ++i) {
    const float v = x(rng);
    const float a = exp_steps(v), b = exp_f32(v);
    ASSERT_EQ(std::memcmp(&a, &b, sizeof a), 0) << v;
  }
  for (uint64_t seed : {uint64_t{0}, uint64_t{1} << 40, ~uint64_t{0}}) {
    for (uint64_t index : {uint64_t{0}, uint64_t{12345}, uint64_t{1} << 33}) {
      const PhiloxCounter c =
          philox4x32_10({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0, 0},
                        {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
      EXPECT_EQ(philox_uniform(seed, index), static_cast<float>(c[0] >> 8) * 0x1p-24f);
    }
  }
}

}  // namespace
}  // namespace bx
