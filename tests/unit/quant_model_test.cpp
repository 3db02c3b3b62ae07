// Whole-model tests of resident quantized weights (LoadOptions::dequantize_weights, loader.h).
//
// A model whose matmul weights and embedding are blocks in memory (Q8_0, Q4_1, Q4_K, ...) must give
// exactly the logits and logprobs of the same file dequantized to f32 at load: a prefill with
// the logits of every position, then greedy decode steps, compared with memcmp, for tied and
// untied random models (Q8_0 / Q4_0 / Q4_1 from the test writer; the K-quants and Q5_0 / Q5_1
// from the gguf package), every ISA and 1 or 2 threads, and for SmolLM2-135M-Instruct (Q4_1 layers,
// Q8_0 tied embedding) when models/ has it. Both loads report the same system fingerprint: the
// residency decides no bit. The stories260K golden and the float64 model reference
// (golden_test, model_reference_test) run on the default load, i.e. resident blocks for the
// quantized random models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "model/loader.h"
#include "support/default_model.h"
#include "support/engine_driver.h"
#include "support/kernel_test_data.h"
#include "support/kquant_model.h"
#include "support/random_model.h"

namespace {

using bx::gguf::GgmlType;

bool same_rows(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

struct ModelRun {
  bx::test::EngineRows prefill;
  bx::test::EngineGreedy greedy;
  std::string fingerprint, storage;
};

ModelRun run(const std::string& path, bool dequantize, int threads,
             const std::vector<int32_t>& prompt, int n_new) {
  bx::LoadOptions options;
  options.threads = threads;
  options.dequantize_weights = dequantize;
  options.max_batch_tokens = static_cast<int>(prompt.size());
  options.max_logit_rows = static_cast<int>(prompt.size());
  bx::LoadedModel m = bx::load_model(path, options);
  ModelRun r;
  {
    bx::test::SingleSequence seq(m, static_cast<int64_t>(prompt.size()));
    r.prefill = seq.forward_all(prompt);
  }
  r.greedy = bx::test::engine_greedy(m, prompt, n_new);
  r.fingerprint = m.system_fingerprint();
  r.storage = m.weight_storage;
  return r;
}

void expect_same(const ModelRun& a, const ModelRun& b, const std::string& what) {
  EXPECT_TRUE(same_rows(a.prefill.logits, b.prefill.logits)) << what << ": prefill logits";
  EXPECT_TRUE(same_rows(a.prefill.logprobs, b.prefill.logprobs)) << what << ": prefill logprobs";
  EXPECT_EQ(a.greedy.ids, b.greedy.ids) << what << ": greedy ids";
  EXPECT_EQ(0, std::memcmp(a.greedy.logprobs.data(), b.greedy.logprobs.data(),
                           a.greedy.logprobs.size() * sizeof(float)))
      << what << ": greedy logprobs";
}

TEST(QuantModel, RandomModelsResidentBlocksEqualDequantizedAtLoad) {
  const GgmlType types[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1};
  const std::vector<int32_t> prompt = {1,   40, 77, 300, 5,   291, 18, 200, 123, 64,
                                       250, 9,  17, 33,  288, 101, 7,  45,  260, 3};  // 20 tokens
  bx::test::IsaGuard guard;
  for (GgmlType type : types) {
    for (bool tied : {true, false}) {
      bx::test::RandomLlamaSpec spec;
      spec.dim = 96;
      spec.ffn_dim = 160;
      spec.n_heads = 6;
      spec.n_kv_heads = 2;
      spec.weight_type = type;
      spec.tied_output = tied;
      spec.seed = 21;
      const std::string name = bx::gguf::ggml_type_name(type) + (tied ? "_tied" : "_untied");
      bx::test::RandomLlamaFile file("quant_model_" + name, spec);
      bx::set_isa(bx::Isa::scalar);
      const ModelRun want = run(file.path(), /*dequantize=*/true, 1, prompt, 6);
      EXPECT_EQ(want.storage, "F32") << name;
      for (bx::Isa isa : bx::test::supported_isas()) {
        bx::set_isa(isa);
        for (int threads : {1, 2}) {
          const std::string what =
              name + " " + std::string(bx::isa_name(isa)) + " threads=" + std::to_string(threads);
          const ModelRun got = run(file.path(), /*dequantize=*/false, threads, prompt, 6);
          EXPECT_EQ(got.storage, bx::gguf::ggml_type_name(type)) << what;
          EXPECT_EQ(got.fingerprint, want.fingerprint) << what;
          expect_same(got, want, what);
        }
      }
    }
  }
}

// The K-quants, Q5_0 / Q5_1 and IQ4_NL / IQ4_XS in one file written by the gguf package
// (support/kquant_model.h): the same promise, every ISA, 1 and 2 threads.
TEST(QuantModel, KQuantModelFromGgufPackageResidentBlocksEqualDequantizedAtLoad) {
  const std::string python = bx::test::python_interpreter();
  if (python.empty()) GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing (run scripts/setup.sh)";
  bx::test::KQuantLlamaFile file("quant_model_kquant", python, 31);
  ASSERT_TRUE(file.ok()) << "tests/ref/make_kquant_gguf.py failed (is the gguf package installed?)";
  const std::vector<int32_t> prompt = {1, 40, 77, 300, 5,   291, 18, 200, 123, 64, 250,
                                       9, 17, 33, 288, 101, 7,   45, 260, 3,   99, 150};
  bx::test::IsaGuard guard;
  bx::set_isa(bx::Isa::scalar);
  const ModelRun want = run(file.path(), /*dequantize=*/true, 1, prompt, 6);
  EXPECT_EQ(want.storage, "F32");
  // The logits are finite and not all equal: the weights are real numbers, not NaN or zeros.
  const std::vector<float>& last = want.prefill.logits.back();
  bool finite = true, varied = false;
  for (float v : last) finite &= std::isfinite(v), varied |= v != last[0];
  EXPECT_TRUE(finite && varied);
  for (bx::Isa isa : bx::test::supported_isas()) {
    bx::set_isa(isa);
    for (int threads : {1, 2}) {
      const std::string what =
          "K-quant model " + std::string(bx::isa_name(isa)) + " threads=" + std::to_string(threads);
      const ModelRun got = run(file.path(), /*dequantize=*/false, threads, prompt, 6);
      EXPECT_EQ(got.storage, "IQ4_NL+IQ4_XS+Q2_K+Q3_K+Q4_K+Q5_0+Q5_1+Q5_K+Q6_K") << what;
      EXPECT_EQ(got.fingerprint, want.fingerprint) << what;
      expect_same(got, want, what);
    }
  }
}

TEST(QuantModel, Smollm2ResidentBlocksEqualDequantizedAtLoad) {
  if (!bx::test::have_smollm2()) GTEST_SKIP() << bx::test::kNoSmollm2;
  // Arbitrary ids: the test compares two loads of the same file.
  const std::vector<int32_t> prompt = {504, 3575, 282, 4649, 314, 2496, 30, 378, 3575, 282, 7042};
  const ModelRun want = run(bx::test::smollm2_path(), /*dequantize=*/true, 2, prompt, 4);
  const ModelRun got = run(bx::test::smollm2_path(), /*dequantize=*/false, 2, prompt, 4);
  EXPECT_EQ(want.storage, "F32");
  EXPECT_EQ(got.storage, "Q4_1+Q8_0");
  EXPECT_EQ(got.fingerprint, want.fingerprint);
  expect_same(got, want, "SmolLM2-135M-Instruct Q4_1");
}

}  // namespace
