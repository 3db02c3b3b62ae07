// T3 for the whole model: each request of a ragged batch gives the same token ids and logprobs,
// bit for bit, as the request run alone — under any token budget, sequence cap, thread count and
// ISA path. The negative control runs the same comparison with a matmul whose K split depends on
// M and shows it finds differences, so these tests can fail.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "generate/generator.h"
#include "support/random_model.h"
#include "support/shared_model.h"

namespace bx {
namespace {

const char* const kPrompts[16] = {
    "",
    "Once",
    "Lily and Ben went to the park",
    "The cat sat on the mat. It was a sunny day and the birds were singing in the tall green "
    "trees near the river, where the children liked to play with their red ball.",
    "Tom had a big red truck.",
    "One day, a little bird",
    "Mom said",
    "The dog was sad because he lost his bone. He looked everywhere: under the bed, behind the "
    "door, in the garden and even in the kitchen. Then his friend the cat came to help him.",
    "Sue liked to draw",
    "Once upon a time, in a small house, there lived a girl",
    "Why",
    "The sun",
    "Ben and his dad built a boat out of wood and sailed it on the lake.",
    "Amy",
    "It was a cold winter night and the snow was falling softly on the roofs of the village",
    "The little fish swam",
};

std::vector<GenerationRequest> make_requests(const Tokenizer& tokenizer) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 16; ++i) {
    GenerationRequest r;
    r.prompt = tokenizer.encode(kPrompts[i], /*add_bos=*/true);
    r.max_tokens = 12 + (i * 5) % 20;
    if (i % 2 == 1) {  // half greedy, half seeded sampling with the filters on
      r.sampling.temperature = 0.8f + 0.1f * static_cast<float>(i % 3);
      r.sampling.top_k = i % 4 == 1 ? 40 : 0;
      r.sampling.top_p = i % 4 == 3 ? 0.9f : 1.0f;
      r.sampling.min_p = i % 8 == 5 ? 0.05f : 0.0f;
      r.sampling.seed = 1000 + static_cast<uint64_t>(i);
    } else {
      r.sampling.temperature = 0.0f;
    }
    requests.push_back(r);
  }
  return requests;
}

LoadedModel load(int threads, ReductionOrder order = ReductionOrder::canonical) {
  LoadOptions options;
  options.threads = threads;
  options.max_batch_tokens = 512;
  options.max_logit_rows = 16;
  options.reduction_order = order;
  return load_model(test::stories260k_path(), options);
}

// Each request alone, one forward call per prompt and one per decode step.
std::vector<GenerationResult> run_alone(LoadedModel& model,
                                        const std::vector<GenerationRequest>& requests) {
  Generator generator(model, GeneratorOptions{});
  std::vector<GenerationResult> results;
  for (const GenerationRequest& r : requests) {
    results.push_back(generator.run(std::span(&r, 1)).at(0));
  }
  return results;
}

bool same_bits(const GenerationResult& a, const GenerationResult& b) {
  return a.tokens == b.tokens && a.logprobs.size() == b.logprobs.size() &&
         std::memcmp(a.logprobs.data(), b.logprobs.data(), a.logprobs.size() * sizeof(float)) == 0;
}

class GenerationInvariance : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_stories260k()) GTEST_SKIP() << "no " << test::stories260k_path();
  }
  void TearDown() override { set_isa(best_supported_isa()); }
};

TEST_F(GenerationInvariance, BatchEqualsAloneForEveryBudgetThreadCountAndIsa) {
  LoadedModel reference_model = load(1);
  const std::vector<GenerationRequest> requests = make_requests(*reference_model.tokenizer);
  const std::vector<GenerationResult> alone = run_alone(reference_model, requests);
  for (const GenerationResult& r : alone) ASSERT_FALSE(r.tokens.empty());

  struct Budget {
    int max_batch_tokens, max_seqs;
  };
  const Budget budgets[] = {{512, 16}, {7, 16}, {64, 3}, {33, 1}, {1, 16}};
  for (int threads : {1, 2}) {
    LoadedModel model = load(threads);
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
      if (!isa_supported(isa)) continue;
      set_isa(isa);
      for (const Budget& b : budgets) {
        Generator generator(model, GeneratorOptions{b.max_batch_tokens, b.max_seqs});
        const std::vector<GenerationResult> batched = generator.run(requests);
        for (size_t i = 0; i < requests.size(); ++i) {
          EXPECT_TRUE(same_bits(batched[i], alone[i]))
              << "request " << i << " differs: threads " << threads << ", isa "
              << isa_name(isa) << ", max_batch_tokens " << b.max_batch_tokens << ", max_seqs "
              << b.max_seqs;
        }
      }
    }
  }
}

TEST_F(GenerationInvariance, ReversedOrderGivesTheSameResults) {
  LoadedModel model = load(2);
  std::vector<GenerationRequest> requests = make_requests(*model.tokenizer);
  Generator generator(model, GeneratorOptions{});
  const std::vector<GenerationResult> forward = generator.run(requests);
  std::vector<GenerationRequest> reversed(requests.rbegin(), requests.rend());
  const std::vector<GenerationResult> backward = generator.run(reversed);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_TRUE(same_bits(forward[i], backward[requests.size() - 1 - i])) << "request " << i;
  }
}

// Negative control: with an M-dependent K split in every matmul, the batch changes the bits.
TEST_F(GenerationInvariance, NegativeControlSplitKByMDiffers) {
  LoadedModel model = load(1, ReductionOrder::split_k_by_m);
  const std::vector<GenerationRequest> requests = make_requests(*model.tokenizer);
  const std::vector<GenerationResult> alone = run_alone(model, requests);
  Generator generator(model, GeneratorOptions{});
  const std::vector<GenerationResult> batched = generator.run(requests);
  int differing = 0;
  for (size_t i = 0; i < requests.size(); ++i) differing += same_bits(batched[i], alone[i]) ? 0 : 1;
  EXPECT_GT(differing, 0) << "the split-K control should make some request's bits differ";
}

// The same promise on random models whose matmul weights are BF16 (held as BF16) or Q8_0
// (widened to F32), with GQA and prompts that cross attention-chunk boundaries.
TEST(GenerationInvarianceRandom, BatchEqualsAloneForBf16AndQ8Weights) {
  for (gguf::GgmlType type : {gguf::GgmlType::BF16, gguf::GgmlType::Q8_0}) {
    test::RandomLlamaSpec spec;
    spec.dim = 128;
    spec.n_heads = 8;
    spec.n_kv_heads = 2;
    spec.ffn_dim = 160;
    spec.n_layers = 2;
    spec.weight_type = type;
    spec.tied_output = type == gguf::GgmlType::Q8_0;
    spec.seed = 7;
    test::RandomLlamaFile file(std::string("invariance-") + gguf::ggml_type_name(type), spec);

    std::vector<GenerationRequest> requests;
    for (int i = 0; i < 10; ++i) {
      GenerationRequest r;
      r.prompt.push_back(1);  // BOS
      const int length = 1 + (i * 37) % 150;
      for (int t = 0; t < length; ++t) r.prompt.push_back(3 + (t * 31 + i * 17) % 300);
      r.max_tokens = 6 + i % 5;
      r.ignore_eos = true;
      r.sampling.temperature = i % 2 ? 1.0f : 0.0f;
      r.sampling.seed = static_cast<uint64_t>(i);
      requests.push_back(r);
    }
    LoadOptions options;
    options.max_logit_rows = 10;
    options.threads = 1;
    LoadedModel alone_model = load_model(file.path(), options);
    std::vector<GenerationResult> alone = run_alone(alone_model, requests);
    options.threads = 2;
    LoadedModel model = load_model(file.path(), options);
    for (int budget : {512, 13, 64}) {
      Generator generator(model, GeneratorOptions{budget, 10});
      const std::vector<GenerationResult> batched = generator.run(requests);
      for (size_t i = 0; i < requests.size(); ++i) {
        EXPECT_TRUE(same_bits(batched[i], alone[i]))
            << gguf::ggml_type_name(type) << " request " << i << ", budget " << budget;
      }
    }
  }
}

}  // namespace
}  // namespace bx
