// GGUF architectures beyond plain llama (model/architecture.h): qwen2 (q/k/v biases), qwen3
// (per-head q/k norm, head_dim != D / H), llama with Llama 3.1 RoPE scaling (rope_freqs.weight)
// and Mistral (written as llama, GQA 4:1, a sliding window). The files are written by the `gguf`
// package (tests/ref/gguf_architectures.py make: names and keys from gguf's own constants), and the
// logits are checked against that script's float64 numpy forward pass of each family, which is
// written from the family's published math, not from bitexact's code. Each check has a negative
// control: the same reference with the family's distinctive feature removed is far off, so the
// comparison can tell the feature is there. The llama3 frequencies are also checked against
// transformers' _compute_llama3_parameters, for the GGUF factors and for config.json's
// rope_scaling. Bad files (unsupported architecture, missing key or tensor, an unsupported RoPE
// scaling type) give one error naming what is wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/rope.h"
#include "model/hf_config.h"
#include "model/loader.h"
#include "model/weight_update.h"
#include "support/engine_driver.h"
#include "support/python_runner.h"

namespace bx {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kScript = "tests/ref/gguf_architectures.py";
// f32 arithmetic over a 2-layer model of width 64 against float64: about 1e-6 is expected; the
// ablated references are off by 1e-2 and more.
constexpr double kMaxRelError = 1e-4;

class Scratch {
 public:
  Scratch() : dir_(fs::temp_directory_path() / ("bx_gguf_arch_" + std::to_string(::getpid()))) {
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

// Writes `arch`'s GGUF with the gguf package (extra: the script's bad-input flags); "" when no
// interpreter is configured (the caller skips).
std::string make_gguf(const Scratch& s, const std::string& arch, const std::string& name,
                      const std::vector<std::string>& extra = {}) {
  const std::string python = test::python_interpreter();
  if (python.empty()) return "";
  const std::string path = s.path(name + ".gguf");
  std::vector<std::string> args{"make", arch, path};
  args.insert(args.end(), extra.begin(), extra.end());
  EXPECT_EQ(0, test::run_python(python, kScript, args)) << kScript << " make " << arch;
  return path;
}

LoadOptions options() {
  LoadOptions o;
  o.threads = 2;
  o.max_batch_tokens = 64;
  o.max_logit_rows = 64;
  return o;
}

std::string error_of(const std::string& path) {
  try {
    load_model(path, options());
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded without an error)";
}

#define SKIP_WITHOUT_PYTHON()             \
  if (test::python_interpreter().empty()) \
  GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing (run scripts/setup.sh)"

class GgufArchitecture : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufArchitecture, LogitsMatchTheFloat64ReferenceOfTheFamily) {
  SKIP_WITHOUT_PYTHON();
  const std::string arch = GetParam();
  Scratch s;
  const std::string path = make_gguf(s, arch, arch);
  LoadedModel m = load_model(path, options());
  const ModelConfig& c = m.config;

  // What the loader read from the file.
  if (arch == "qwen2") {
    EXPECT_EQ(c.architecture, "qwen2");
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_FALSE(c.output_bias);
    EXPECT_FALSE(c.qk_norm);
    EXPECT_EQ(c.rope_layout, RopeLayout::half_split);
  } else if (arch == "qwen3") {
    EXPECT_EQ(c.architecture, "qwen3");
    EXPECT_TRUE(c.qk_norm);
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_EQ(c.head_dim, 32);
    EXPECT_EQ(c.q_dim(), 128);  // != dim 64: attention.key_length is honoured
    EXPECT_EQ(c.rope_layout, RopeLayout::half_split);
  } else if (arch == "llama3") {
    EXPECT_EQ(c.architecture, "llama");
    EXPECT_EQ(c.rope_layout, RopeLayout::adjacent_pairs);
    EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::freq_factors);
    EXPECT_EQ(c.rope_scaling.freq_factors.size(), 8u);
  } else if (arch == "mistral") {
    EXPECT_EQ(c.architecture, "llama");
    EXPECT_EQ(c.n_heads, 8);
    EXPECT_EQ(c.n_kv_heads, 2);
    EXPECT_EQ(c.context_length, 128);  // capped at attention.sliding_window
    EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::none);
  }

  std::vector<int32_t> tokens;
  for (int i = 0; i < 24; ++i) tokens.push_back((i * 37 + 5) % c.vocab_size);
  test::SingleSequence seq(m, static_cast<int64_t>(tokens.size()));
  const test::EngineRows rows = seq.forward_all(tokens);
  test::write_logits(s.path("logits.bin"), rows);
  const std::string ids = test::ids_csv(tokens);
  ASSERT_EQ(0, test::run_python(
                   test::python_interpreter(), kScript,
                   {"compare", arch, path, ids, s.path("logits.bin"), s.path("result.json")}));
  std::ifstream in(s.path("result.json"));
  const json result = json::parse(in);
  const double rel = result["max_rel_error"].get<double>();
  const double ablated = result["ablated_rel_error"].get<double>();
  std::printf("%s: max relative error %.3g (reference without the family's feature: %.3g)\n",
              arch.c_str(), rel, ablated);
  EXPECT_LT(rel, kMaxRelError);
  EXPECT_GT(ablated, 100 * kMaxRelError) << "the family's feature changes nothing here";
}

INSTANTIATE_TEST_SUITE_P(Families, GgufArchitecture,
                         ::testing::Values("qwen2", "qwen3", "llama3", "mistral"));

// Our frequencies and transformers' (float32 torch) for the same Llama 3.1 parameters.
void expect_transformers_frequencies(const RopeScaling& scaling, const json& reference,
                                     const std::string& what) {
  const json& p = reference["params"];
  const int head_dim = p["head_dim"].get<int>();
  const double theta = p["theta"].get<double>();
  const std::vector<double> expected = reference["inv_freq"].get<std::vector<double>>();
  ASSERT_EQ(expected.size(), static_cast<size_t>(head_dim / 2));
  bool unscaled_differs = false;
  for (int i = 0; i < head_dim / 2; ++i) {
    const double ours = rope_frequency(i, head_dim, theta, scaling);
    const double theirs = expected[static_cast<size_t>(i)];
    // transformers computes in float32: a few ulps of 2^-24.
    EXPECT_NEAR(ours, theirs, 1e-6 * theirs) << what << ": pair " << i;
    const double unscaled = rope_frequency(i, head_dim, theta, RopeScaling{});
    unscaled_differs |= std::abs(unscaled - theirs) > 0.1 * theirs;
  }
  EXPECT_TRUE(unscaled_differs) << what << ": the scaling changes no frequency at these parameters";
}

TEST(GgufLlama3Rope, FrequenciesMatchTransformersForGgufFactorsAndConfigJson) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  ASSERT_EQ(0, test::run_python(test::python_interpreter(), kScript,
                                {"llama3-freqs", s.path("freqs.json")}));
  std::ifstream in(s.path("freqs.json"));
  const json reference = json::parse(in);

  const std::string path = make_gguf(s, "llama3", "llama3");
  const ModelConfig gguf_config = load_model(path, options()).config;
  expect_transformers_frequencies(gguf_config.rope_scaling, reference, "GGUF rope_freqs.weight");

  const json& p = reference["params"];
  const json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"hidden_size", 64},
      {"intermediate_size", 96},
      {"num_hidden_layers", 2},
      {"num_attention_heads", 4},
      {"num_key_value_heads", 2},
      {"head_dim", p["head_dim"]},
      {"vocab_size", 96},
      {"max_position_embeddings", 256},
      {"rope_theta", p["theta"]},
      {"rope_scaling",
       {{"rope_type", "llama3"},
        {"factor", p["factor"]},
        {"low_freq_factor", p["low_freq_factor"]},
        {"high_freq_factor", p["high_freq_factor"]},
        {"original_max_position_embeddings", p["original_max_position_embeddings"]}}}};
  const ModelConfig hf = parse_hf_config(config.dump(), "config.json");
  EXPECT_EQ(hf.rope_scaling.kind, RopeScaling::Kind::llama3);
  expect_transformers_frequencies(hf.rope_scaling, reference, "config.json rope_scaling");
}

TEST(GgufArchitectureErrors, UnsupportedArchitectureNamesItAndListsTheSupported) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  const std::string e =
      error_of(make_gguf(s, "qwen3", "gemma", {"--general-architecture", "gemma2"}));
  EXPECT_NE(e.find("'gemma2'"), std::string::npos) << e;
  EXPECT_NE(e.find("llama, qwen2, qwen3, qwen3moe, gemma3"), std::string::npos) << e;
}

TEST(GgufArchitectureErrors, AMissingKeyOrTensorIsNamed) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  std::string e = error_of(make_gguf(s, "qwen2", "nokey", {"--drop", "qwen2.block_count"}));
  EXPECT_NE(e.find("qwen2.block_count"), std::string::npos) << e;
  e = error_of(make_gguf(s, "qwen3", "nonorm", {"--drop", "blk.1.attn_k_norm.weight"}));
  EXPECT_NE(e.find("'blk.1.attn_k_norm.weight'"), std::string::npos) << e;
  e = error_of(make_gguf(s, "qwen2", "nobias", {"--drop", "blk.0.attn_v.bias"}));
  EXPECT_NE(e.find("'blk.0.attn_v.bias'"), std::string::npos) << e;
  e = error_of(
      make_gguf(s, "qwen3", "noeps", {"--drop", "qwen3.attention.layer_norm_rms_epsilon"}));
  EXPECT_NE(e.find("qwen3.attention.layer_norm_rms_epsilon"), std::string::npos) << e;
}

TEST(GgufArchitectureErrors, AnUnsupportedRopeScalingTypeIsRefused) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  const std::string e = error_of(make_gguf(s, "qwen2", "yarn", {"--rope-scaling-type", "yarn"}));
  EXPECT_NE(e.find("qwen2.rope.scaling.type is 'yarn'"), std::string::npos) << e;
  EXPECT_NE(e.find("rope_freqs.weight"), std::string::npos) << e;
  // "none" is no scaling.
  const ModelConfig none =
      load_model(make_gguf(s, "qwen2", "none", {"--rope-scaling-type", "none"}), options()).config;
  EXPECT_EQ(none.rope_scaling.kind, RopeScaling::Kind::none);
}

// update_weights on a qwen GGUF: GGUF names are taken, and under Hugging Face names the q/k rows
// are not permuted (qwen GGUFs keep Hugging Face's order; only llama GGUFs are permuted), so the
// same values under either name give the same logits, and other logits than before the update.
TEST(GgufArchitectureWeights, QwenGgufTakesGgufNamesAndUnpermutedHfRows) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  const std::string path = make_gguf(s, "qwen3", "qwen3");
  LoadedModel by_gguf = load_model(path, options()), by_hf = load_model(path, options());
  const ModelConfig& c = by_gguf.config;
  std::vector<float> wq(static_cast<size_t>(c.q_dim()) * static_cast<size_t>(c.dim));
  for (size_t i = 0; i < wq.size(); ++i) wq[i] = 0.01f * static_cast<float>(i % 97) - 0.4f;
  const std::vector<int64_t> shape{c.q_dim(), c.dim};
  apply_weight_update(
      by_gguf,
      plan_weight_update(by_gguf, {{"blk.0.attn_q.weight", wq.data(), DType::f32, shape, false}}));
  apply_weight_update(by_hf, plan_weight_update(by_hf, {{"model.layers.0.self_attn.q_proj.weight",
                                                         wq.data(), DType::f32, shape, false}}));
  LoadedModel original = load_model(path, options());
  const std::vector<int32_t> tokens{1, 5, 9, 33, 70, 2, 41, 88};
  const auto logits = [&](LoadedModel& m) {
    test::SingleSequence seq(m, static_cast<int64_t>(tokens.size()));
    return seq.forward_all(tokens).logits;
  };
  const auto a = logits(by_gguf), b = logits(by_hf), before = logits(original);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, before);
}

}  // namespace
}  // namespace bx
