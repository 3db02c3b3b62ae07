// Test support: how the engine's logits are compared with the float64 reference (T2), shared by
// the GGUF (model_reference_test.cpp) and Hugging Face (hf_model_test.cpp) accuracy tests, so
// both hold the engine to the same bounds.
//
//   logits, per position:  ||engine - ref||_2 / ||ref||_2        < kLogitNormBound
//   logits, per element:   |engine - ref| / max(1, |ref|)        < kLogitElementBound
//   logprobs, per element: |engine - log_softmax(ref)|           < kLogprobBound
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "support/engine_driver.h"
#include "support/random_model.h"
#include "support/reference_llama.h"

namespace bx::test {

// Bounds for f32 activations. Measured maxima over every case of model_reference_test.cpp
// (printed by the tests, the same with BITEXACT_ISA=scalar, avx2 and avx512): norm-wise 4.4e-7
// (stories260K), element-wise 1.3e-5 and logprobs 2.4e-5 (f32_tied_gqa_hd32_4layers, whose tied
// unit-variance embeddings give logits up to ~40). The bounds leave a margin of about 8x to 20x.
constexpr double kLogitNormBound = 1e-5;
constexpr double kLogitElementBound = 1e-4;
constexpr double kLogprobBound = 2e-4;

struct Errors {
  double logit_norm = 0.0;     // max over positions of ||a - b||_2 / ||b||_2
  double logit_element = 0.0;  // max over positions and ids of |a - b| / max(1, |b|)
  double logprob = 0.0;        // max over positions and ids of |a - b|
};

// Errors of engine rows [first, last) against the reference logits of the same positions.
inline Errors compare(const EngineRows& engine, const std::vector<std::vector<double>>& ref_logits,
                      size_t first, size_t last) {
  Errors e;
  for (size_t t = first; t < last; ++t) {
    const std::vector<double>& ref = ref_logits[t];
    const std::vector<double> ref_lp = ReferenceLlama::log_softmax(ref);
    double diff2 = 0.0, ref2 = 0.0;
    for (size_t v = 0; v < ref.size(); ++v) {
      const double d = static_cast<double>(engine.logits[t][v]) - ref[v];
      diff2 += d * d;
      ref2 += ref[v] * ref[v];
      e.logit_element = std::max(e.logit_element, std::fabs(d) / std::max(1.0, std::fabs(ref[v])));
      e.logprob =
          std::max(e.logprob, std::fabs(static_cast<double>(engine.logprobs[t][v]) - ref_lp[v]));
    }
    e.logit_norm = std::max(e.logit_norm, std::sqrt(diff2 / ref2));
  }
  return e;
}

inline Errors compare(const EngineRows& engine,
                      const std::vector<std::vector<double>>& ref_logits) {
  return compare(engine, ref_logits, 0, ref_logits.size());
}

// BOS, then n - 1 ids drawn from the normal tokens [3, vocab).
inline std::vector<int32_t> random_prompt(int n, int vocab, uint32_t seed) {
  PortableRng rng(seed);
  std::vector<int32_t> ids = {1};
  while (static_cast<int>(ids.size()) < n) {
    ids.push_back(3 + static_cast<int32_t>(rng.below(static_cast<uint32_t>(vocab - 3))));
  }
  return ids;
}

inline void expect_within_bounds(const Errors& e, const std::string& label) {
  std::printf("T2 %-28s logits normwise %.3g  elementwise %.3g  logprobs %.3g\n", label.c_str(),
              e.logit_norm, e.logit_element, e.logprob);
  ::testing::Test::RecordProperty("logit_norm_error", std::to_string(e.logit_norm));
  ::testing::Test::RecordProperty("logit_element_error", std::to_string(e.logit_element));
  ::testing::Test::RecordProperty("logprob_error", std::to_string(e.logprob));
  EXPECT_LT(e.logit_norm, kLogitNormBound) << label;
  EXPECT_LT(e.logit_element, kLogitElementBound) << label;
  EXPECT_LT(e.logprob, kLogprobBound) << label;
}

}  // namespace bx::test
