// Backend conformance, CUDA half: every Backend op on the CUDA backend against the CPU backend
// (tests/support/backend_op_cases.h; the CPU half, tests/unit/backend_ops_test.cpp, holds the CPU
// to the scalar reference), and Qwen2-style models with biases through the whole CUDA forward
// pass. Skips without a Hopper GPU.
//   T1 exact     GEMM cases on small integers (every epilogue, parts, biases) and embedding rows:
//                the CPU's bits exactly; each epilogue fused equals it unfused (set_fused), bit
//                for bit
//   T2 accurate  the rows kernels, swiglu, RoPE (with q/k norms), attention over the bf16 KV
//                cache and the bf16 MLP: relative bounds per case; Qwen2 (q/k/v biases) and Llama
//                with attention_bias (q/k/v/o biases): logits and logprobs against the CPU within
//                bf16 bounds
//   T3 invariant the biased Qwen2 model: each request of a batch gives the bits it gives alone
// Negative control: a dropped bias exceeds the bounds on the GPU too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu_backend.h"
#include "backend/cuda_backend.h"
#include "model/loader.h"
#include "support/backend_op_cases.h"
#include "support/cuda_test_data.h"
#include "support/engine_driver.h"
#include "support/engine_runner.h"
#include "support/random_hf_model.h"

namespace bx {
namespace {

TEST(BackendOpsCuda, EveryOpMatchesTheCpu) {
  BX_REQUIRE_HOPPER();
  for (const test::BackendOpCase& c : test::backend_op_cases()) {
    if (c.cpu_only) continue;
    CpuBackend cpu(2);
    CudaBackend gpu;
    const double err = test::max_relative_error(c.run(gpu), c.run(cpu));
    std::printf("%-60s max rel err vs CPU %.3g (bound %.3g)\n", c.name.c_str(), err, c.cuda_bound);
    EXPECT_LE(err, c.cuda_bound) << c.name;
  }
}

TEST(BackendOpsCuda, UnfusedEpiloguesGiveTheFusedBits) {
  BX_REQUIRE_HOPPER();
  for (const test::BackendOpCase& c : test::backend_op_cases()) {
    if (c.cpu_only) continue;
    CudaBackend fused, unfused;
    unfused.set_fused(false);
    const test::HostOutputs a = c.run(fused), b = c.run(unfused);
    ASSERT_EQ(a.size(), b.size()) << c.name;
    for (size_t o = 0; o < a.size(); ++o) {
      ASSERT_EQ(a[o].size(), b[o].size()) << c.name;
      EXPECT_EQ(std::memcmp(a[o].data(), b[o].data(), a[o].size() * sizeof(double)), 0)
          << c.name << ", output " << o;
    }
  }
}

TEST(BackendOpsCuda, NegativeControlDroppedBiasExceedsTheBound) {
  BX_REQUIRE_HOPPER();
  using test::ops::gemm_case;
  CudaBackend gpu;
  CpuBackend cpu(2);
  const auto with_bias = gemm_case("b", GemmEpilogue::accumulate, {64}, true, 64);
  const auto without_bias = gemm_case("n", GemmEpilogue::accumulate, {64}, false, 64);
  EXPECT_GT(test::max_relative_error(with_bias.run(gpu), without_bias.run(cpu)), 1e-3);
}

LoadedModel load(const std::string& path, bool cuda) {
  LoadOptions options;
  options.threads = 2;
  options.max_batch_tokens = 256;
  options.max_logit_rows = 256;
  if (cuda) options.make_backend = [] { return std::make_unique<CudaBackend>(); };
  return load_model(path, options);
}

test::RandomHfSpec biased_spec(const std::string& architecture) {
  test::RandomHfSpec spec;
  spec.architecture = architecture;
  spec.dim = 256;
  spec.n_heads = 4;  // head_dim 64
  spec.n_kv_heads = 2;
  spec.ffn_dim = 344;  // padded to 352 in bf16
  spec.n_layers = 2;
  spec.dtype = "BF16";
  spec.attention_bias = architecture == "LlamaForCausalLM";  // q, k, v and o biases
  spec.seed = 21;
  return spec;
}

// The models the CUDA backend refused before its bias epilogue: Qwen2 (q/k/v biases) and Llama
// with attention_bias (q/k/v and o: the o bias inside the residual add) match the CPU backend
// within the bf16 bounds of tests/cuda/backend_test.cpp.
TEST(BackendOpsCuda, BiasedModelsMatchTheCpu) {
  BX_REQUIRE_HOPPER();
  for (const std::string arch : {"Qwen2ForCausalLM", "LlamaForCausalLM"}) {
    test::RandomHfFolder folder("cuda-bias", biased_spec(arch));
    LoadedModel cpu = load(folder.path(), false);
    LoadedModel gpu = load(folder.path(), true);
    ASSERT_TRUE(gpu.config.qkv_bias) << arch;
    EXPECT_EQ(gpu.config.output_bias, arch == "LlamaForCausalLM");
    std::vector<int32_t> tokens{1};
    for (int t = 1; t < 100; ++t) tokens.push_back(3 + (t * 13 + 5) % (cpu.config.vocab_size - 3));
    test::SingleSequence cs(cpu, 100), gs(gpu, 100);
    const test::EngineRows a = gs.forward_all(tokens), b = cs.forward_all(tokens);
    double logit_norm = 0, logprob = 0;
    for (size_t t = 0; t < a.logits.size(); ++t) {
      double num = 0, den = 0;
      for (size_t v = 0; v < a.logits[t].size(); ++v) {
        const double e = static_cast<double>(a.logits[t][v]) - b.logits[t][v];
        num += e * e;
        den += static_cast<double>(b.logits[t][v]) * b.logits[t][v];
        logprob =
            std::max(logprob, std::fabs(static_cast<double>(a.logprobs[t][v]) - b.logprobs[t][v]));
      }
      logit_norm = std::max(logit_norm, std::sqrt(num / den));
    }
    std::printf("%s with biases, 100 positions: logits rel-norm diff %.3g, logprob max diff %.3g\n",
                arch.c_str(), logit_norm, logprob);
    EXPECT_LT(logit_norm, 3e-2) << arch;
    EXPECT_LT(logprob, 0.25) << arch;
  }
}

TEST(BackendOpsCuda, BiasedModelBatchEqualsAlone) {
  BX_REQUIRE_HOPPER();
  test::RandomHfFolder folder("cuda-bias-batch", biased_spec("Qwen2ForCausalLM"));
  LoadedModel model = load(folder.path(), true);
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 8; ++i) {
    EngineRequest r;
    r.prompt.push_back(1);
    for (int t = 0; t < 5 + (i * 29) % 90; ++t) {
      r.prompt.push_back(3 + (t * 31 + i * 17) % (model.config.vocab_size - 3));
    }
    r.max_tokens = 6 + i;
    r.ignore_eos = true;
    r.sampling.temperature = i % 2 ? 0.9f : 0.0f;
    r.sampling.seed = 300 + static_cast<uint64_t>(i);
    requests.push_back(r);
  }
  const std::vector<test::SampleResult> together = test::first_samples_together(model, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    const test::SampleResult alone = test::run_alone(model, requests[i]).samples.at(0);
    EXPECT_TRUE(together[i].same_bits(alone)) << "request " << i;
  }
}

}  // namespace
}  // namespace bx
