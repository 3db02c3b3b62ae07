// T2 (INVARIANCE.md): the whole engine forward pass against the float64 reference.
//
// For the shared stories260K model and for small random models (F32 tied and untied, GQA, MQA
// and MHA, head_dim 16 and 32, F16, BF16, Q8_0, Q4_0, Q4_1 weights), one engine forward call over
// a prompt returns the logits and logprobs of every position; they are compared with
// tests/support/reference_llama.h, which reads the same file and computes everything in double.
//
// The reference dequantizes the same stored values as the engine, so the weights are identical
// in both (BF16 and the Q* types widen exactly to f32, and the engine keeps BF16 as BF16 and
// widens it exactly in the matmul). The only differences left are the f32 activations, so one
// f32 bound fits every weight type:
//   logits, per position:  ||engine - ref||_2 / ||ref||_2        < kLogitNormBound
//   logits, per element:   |engine - ref| / max(1, |ref|)        < kLogitElementBound
//   logprobs, per element: |engine - log_softmax(ref)|           < kLogprobBound
// The measured values are printed by each test and quoted beside the bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "model/loader.h"
#include "support/engine_driver.h"
#include "support/random_model.h"
#include "support/reference_compare.h"
#include "support/reference_llama.h"
#include "support/shared_model.h"

namespace {

using bx::gguf::GgmlType;
using bx::test::RandomLlamaSpec;

using bx::test::compare;
using bx::test::Errors;
using bx::test::expect_within_bounds;
using bx::test::kLogitElementBound;
using bx::test::kLogitNormBound;
using bx::test::kLogprobBound;
using bx::test::random_prompt;

// One engine forward call over `prompt`, logits and logprobs for every position.
bx::test::EngineRows engine_rows(const std::string& path, const std::vector<int32_t>& prompt,
                                 int threads) {
  bx::LoadOptions options;
  options.threads = threads;
  options.max_batch_tokens = static_cast<int>(prompt.size());
  options.max_logit_rows = static_cast<int>(prompt.size());
  bx::LoadedModel model = bx::load_model(path, options);
  bx::test::SingleSequence seq(model, static_cast<int64_t>(prompt.size()));
  return seq.forward_all(prompt);
}

Errors engine_vs_reference(const std::string& path, const std::vector<int32_t>& prompt,
                           const bx::test::ReferenceLlama& ref, int threads) {
  return compare(engine_rows(path, prompt, threads), ref.forward(prompt));
}

RandomLlamaSpec spec_of(int dim, int layers, int heads, int kv_heads, int ffn, GgmlType type,
                        bool tied, uint32_t seed) {
  RandomLlamaSpec s;
  s.dim = dim;
  s.n_layers = layers;
  s.n_heads = heads;
  s.n_kv_heads = kv_heads;
  s.ffn_dim = ffn;
  s.weight_type = type;
  s.tied_output = tied;
  s.seed = seed;
  return s;
}

// --- the shared model ---

TEST(ModelReference, Stories260kRandomPrompt) {
  if (!bx::test::have_stories260k()) GTEST_SKIP() << bx::test::stories260k_path() << " not found";
  const std::string path = bx::test::stories260k_path();
  const bx::test::ReferenceLlama ref(path);
  const std::vector<int32_t> prompt =
      random_prompt(48, static_cast<int>(ref.config().vocab_size), 7);
  expect_within_bounds(engine_vs_reference(path, prompt, ref, 2), "stories260K random ids");
}

TEST(ModelReference, Stories260kStoryPrompt) {
  if (!bx::test::have_stories260k()) GTEST_SKIP() << bx::test::stories260k_path() << " not found";
  const std::string path = bx::test::stories260k_path();
  const bx::test::ReferenceLlama ref(path);
  // A text the model finds likely: BOS and the reference's own greedy continuation.
  std::vector<int32_t> prompt = {1};
  for (const auto& step : ref.greedy(prompt, 55)) prompt.push_back(step.id);
  expect_within_bounds(engine_vs_reference(path, prompt, ref, 1), "stories260K story");
}

// Negative control: the comparison can fail. The engine scores a prompt whose token at position
// k differs from the reference's: rows before k must still agree (the attention is causal), rows
// from k on must be far outside the bounds.
TEST(ModelReference, ChangedTokenIsDetectedFromItsPositionOn) {
  const RandomLlamaSpec spec = spec_of(64, 2, 4, 2, 96, GgmlType::F32, true, 11);
  const bx::test::RandomLlamaFile file("negative_control", spec);
  const bx::test::ReferenceLlama ref(file.path());
  const std::vector<int32_t> prompt = random_prompt(40, spec.vocab_size, 99);
  std::vector<int32_t> changed = prompt;
  const size_t k = 25;
  changed[k] = prompt[k] == 100 ? 101 : 100;
  const bx::test::EngineRows rows = engine_rows(file.path(), changed, 1);
  const std::vector<std::vector<double>> ref_logits = ref.forward(prompt);

  const Errors before = compare(rows, ref_logits, 0, k);
  EXPECT_LT(before.logit_norm, kLogitNormBound);
  EXPECT_LT(before.logprob, kLogprobBound);
  for (size_t t = k; t < prompt.size(); ++t) {
    const Errors after = compare(rows, ref_logits, t, t + 1);
    EXPECT_GT(after.logit_norm, 1000 * kLogitNormBound) << "position " << t;
    EXPECT_GT(after.logprob, 1000 * kLogprobBound) << "position " << t;
  }
}

// --- random models ---

struct RandomCase {
  std::string name;
  RandomLlamaSpec spec;
  int prompt_tokens = 32;
  int threads = 1;
};

// Test names show the case's name, not its bytes.
void PrintTo(const RandomCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<RandomCase> random_cases() {
  std::vector<RandomCase> cases;
  // {name, spec_of(dim, layers, heads, kv_heads, ffn, weight type, tied, seed), prompt tokens,
  //  threads}; head_dim = dim / heads.
  cases.push_back({"f32_tied_gqa_hd16", spec_of(64, 2, 4, 2, 96, GgmlType::F32, true, 11), 40});
  cases.push_back({"f32_untied_mha_hd32", spec_of(64, 3, 2, 2, 160, GgmlType::F32, false, 12), 23});
  cases.push_back(
      {"f32_untied_mqa_hd32", spec_of(128, 2, 4, 1, 224, GgmlType::F32, false, 13), 60, 3});
  cases.push_back(
      {"f32_tied_gqa_hd32_4layers", spec_of(96, 4, 3, 1, 256, GgmlType::F32, true, 14), 51});
  cases.push_back({"f16_tied_gqa_hd16", spec_of(64, 2, 4, 2, 96, GgmlType::F16, true, 15), 37});
  cases.push_back(
      {"bf16_untied_gqa_hd16", spec_of(64, 3, 4, 2, 128, GgmlType::BF16, false, 16), 44});
  cases.push_back({"bf16_tied_mha_hd32", spec_of(64, 2, 2, 2, 96, GgmlType::BF16, true, 17), 29});
  cases.push_back(
      {"q8_0_untied_gqa_hd16", spec_of(64, 3, 4, 2, 96, GgmlType::Q8_0, false, 18), 48});
  cases.push_back({"q4_0_tied_gqa_hd32", spec_of(128, 2, 4, 2, 192, GgmlType::Q4_0, true, 19), 33});
  cases.push_back(
      {"q4_1_untied_mha_hd16", spec_of(64, 2, 4, 4, 128, GgmlType::Q4_1, false, 20), 26});
  // A prompt longer than the attention chunk (64 positions), so chunks are combined; and a
  // non-default RoPE base.
  RandomCase long_case{"f32_long_prompt_theta5e5",
                       spec_of(64, 2, 4, 2, 96, GgmlType::F32, false, 21), 100, 2};
  long_case.spec.rope_theta = 500000.0f;
  long_case.spec.context_length = 128;
  cases.push_back(long_case);
  return cases;
}

class RandomModelReference : public ::testing::TestWithParam<RandomCase> {};

TEST_P(RandomModelReference, EngineMatchesFloat64Reference) {
  const RandomCase& c = GetParam();
  const bx::test::RandomLlamaFile file(c.name, c.spec);
  const bx::test::ReferenceLlama ref(file.path());
  ASSERT_EQ(ref.config().tied_output, c.spec.tied_output);
  const std::vector<int32_t> prompt =
      random_prompt(c.prompt_tokens, c.spec.vocab_size, c.spec.seed + 1000);
  expect_within_bounds(engine_vs_reference(file.path(), prompt, ref, c.threads), c.name);
}

std::string case_name(const ::testing::TestParamInfo<RandomCase>& param) {
  return param.param.name;
}

INSTANTIATE_TEST_SUITE_P(Cases, RandomModelReference, ::testing::ValuesIn(random_cases()),
                         case_name);

// The random model's vocabulary is one the engine's tokenizer takes, and its merges reach words.
TEST(RandomModel, TokenizerEncodesWords) {
  const RandomLlamaSpec spec = spec_of(64, 1, 4, 2, 96, GgmlType::F32, true, 3);
  const bx::test::RandomLlamaFile file("vocab", spec);
  const bx::LoadedModel model = bx::load_model(file.path(), bx::LoadOptions{});
  const bx::test::RandomVocab vocab = bx::test::make_random_vocab(spec.vocab_size);
  auto id_of = [&](const std::string& text) {
    const auto it = std::find(vocab.tokens.begin(), vocab.tokens.end(), text);
    return static_cast<int32_t>(it - vocab.tokens.begin());
  };
  const std::vector<int32_t> expected = {1, id_of("\xe2\x96\x81the"), id_of("\xe2\x96\x81girl")};
  EXPECT_EQ(model.tokenizer->encode("the girl", true), expected);
  EXPECT_EQ(model.tokenizer->decode(expected), "the girl");
  EXPECT_EQ(model.tokenizer->bos_id(), 1);
  EXPECT_EQ(model.tokenizer->eos_id(), 2);
}

// The file depends only on the spec (portable random numbers): the same spec gives the same
// weights, another seed other weights.
TEST(RandomModel, SameSpecSameWeights) {
  RandomLlamaSpec spec = spec_of(64, 1, 4, 2, 96, GgmlType::Q8_0, false, 4);
  const bx::test::RandomLlamaFile a("same_a", spec), b("same_b", spec);
  spec.seed = 5;
  const bx::test::RandomLlamaFile c("same_c", spec);
  const std::string hash_a = bx::gguf::File::open(a.path()).content_hash();
  EXPECT_EQ(hash_a, bx::gguf::File::open(b.path()).content_hash());
  EXPECT_NE(hash_a, bx::gguf::File::open(c.path()).content_hash());
}

// The reference itself: a model whose layers add nothing (zero Wo and Wd) gives logits that are
// rmsnorm(embedding) . output rows, computed here by hand, so a wrong reference cannot hide a
// wrong engine.
TEST(ReferenceLlama, ZeroBlocksGiveNormedEmbeddingLogits) {
  RandomLlamaSpec s = spec_of(32, 1, 2, 1, 32, GgmlType::F32, false, 5);
  s.vocab_size = 300;
  const bx::test::RandomLlamaFile file("zero_blocks", s);
  // Rewrite with Wo = Wd = 0: read the file back, zero those tensors, write it again.
  bx::gguf::File in = bx::gguf::File::open(file.path());
  bx::test::GgufWriter w;
  for (const bx::gguf::MetadataEntry& m : in.metadata()) w.add_value(m.key, m.value);
  for (const bx::gguf::TensorInfo& t : in.tensors()) {
    std::vector<float> data(static_cast<size_t>(t.n_elements));
    bx::gguf::dequantize_to_f32(t, in.tensor_data(t), data.data());
    if (t.name == "blk.0.attn_output.weight" || t.name == "blk.0.ffn_down.weight") {
      std::fill(data.begin(), data.end(), 0.0f);
    }
    w.add_tensor(t.name, t.dims, data, GgmlType::F32);
  }
  const std::string path = file.path() + ".zero.gguf";
  w.write(path);
  bx::gguf::File zf = bx::gguf::File::open(path);
  auto tensor = [&](const char* name) {
    const bx::gguf::TensorInfo* t = zf.find_tensor(name);
    std::vector<float> data(static_cast<size_t>(t->n_elements));
    bx::gguf::dequantize_to_f32(*t, zf.tensor_data(*t), data.data());
    return data;
  };
  const std::vector<float> embd = tensor("token_embd.weight");    // [V, D]
  const std::vector<float> onorm = tensor("output_norm.weight");  // [D]
  const std::vector<float> out = tensor("output.weight");         // [V, D]
  const double eps = static_cast<double>(s.rms_eps);

  const bx::test::ReferenceLlama ref(path);
  const std::vector<int32_t> prompt = {1, 17, 200};
  const std::vector<std::vector<double>> logits = ref.forward(prompt);
  const size_t D = static_cast<size_t>(s.dim), V = static_cast<size_t>(s.vocab_size);
  for (size_t t = 0; t < prompt.size(); ++t) {
    const float* x = embd.data() + static_cast<size_t>(prompt[t]) * D;
    double ss = 0.0;
    for (size_t i = 0; i < D; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
    for (size_t v = 0; v < V; ++v) {
      double expect = 0.0;
      for (size_t i = 0; i < D; ++i) expect += x[i] * r * onorm[i] * out[v * D + i];
      EXPECT_NEAR(logits[t][v], expect, 1e-12 * std::max(1.0, std::fabs(expect)));
    }
  }
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

}  // namespace
