// Gemma 3 (text): the Hugging Face Gemma3ForCausalLM folder and the GGUF gemma3 file, against
// references nobody here wrote, and the engine's invariance on random:gemma3-tiny.
//
//   T2  a random Gemma3ForCausalLM folder written by transformers (tests/ref/gemma3.py make-hf;
//       5 layers, 4 of them sliding over 6 positions, a 24-token prompt) against the script's
//       float64 numpy forward pass of Gemma 3 and against transformers' own float32 forward;
//       the numpy pass is itself checked against transformers. A random gemma3 GGUF written by
//       the gguf package (norms stored as 1 + w, as llama.cpp's converter does) against the
//       same numpy pass. Negative control for both: the reference without the sliding window is
//       far off, so the comparison sees the window.
//   T3  the windowed attention kernel: the fast path equals the scalar reference bit for bit
//       for windows that start mid-chunk; keys and values outside the window change nothing,
//       one inside does (negative control); a window as long as the context is full attention.
//   T3/T4 the engine invariance matrix on random:gemma3-tiny (windows of 80 over prompts up to
//       199 tokens, so windows start mid-chunk in prefill, chunked prefill and decode), with the
//       negative control of a batch-dependent matmul.
//   Bad input: a GGUF without its sliding-window size, with softcapping or a pattern of the
//       wrong length, and config.json keys the engine refuses, each named in one error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "model/loader.h"
#include "support/engine_driver.h"
#include "support/engine_runner.h"
#include "support/python_runner.h"

namespace bx {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kScript = "tests/ref/gemma3.py";
// f32 against float64 over 5 layers of width 64: about 1e-6 expected; the reference without the
// window is off by far more.
constexpr double kMaxRelError = 1e-4;

#define SKIP_WITHOUT_PYTHON()             \
  if (test::python_interpreter().empty()) \
  GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing (run scripts/setup.sh)"

class Scratch {
 public:
  Scratch() : dir_(fs::temp_directory_path() / ("bx_gemma3_" + std::to_string(::getpid()))) {
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

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

std::vector<int32_t> prompt(int vocab) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 24; ++i) tokens.push_back((i * 37 + 5) % vocab);
  return tokens;
}

// Runs the script's compare on the engine's logits of every position; returns its result.
json compare(const Scratch& s, const std::string& format, const std::string& path) {
  LoadedModel m = load_model(path, options());
  const std::vector<int32_t> tokens = prompt(m.config.vocab_size);
  test::SingleSequence seq(m, static_cast<int64_t>(tokens.size()));
  const test::EngineRows rows = seq.forward_all(tokens);
  test::write_logits(s.path("logits.bin"), rows);
  const std::string ids = test::ids_csv(tokens);
  EXPECT_EQ(0, test::run_python(
                   test::python_interpreter(), kScript,
                   {"compare", format, path, ids, s.path("logits.bin"), s.path("result.json")}));
  std::ifstream in(s.path("result.json"));
  return json::parse(in);
}

void expect_gemma3_config(const ModelConfig& c) {
  EXPECT_EQ(c.sliding_window, 6);
  EXPECT_EQ(c.windowed, (std::vector<uint8_t>{1, 1, 0, 1, 1}));
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_local_theta, 1e4);
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::linear);
  EXPECT_EQ(c.rope_scaling.factor, 4.0);
  EXPECT_EQ(c.rope_layout, RopeLayout::half_split);
  EXPECT_TRUE(c.tied_output);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.post_norms);
  EXPECT_TRUE(c.gelu_tanh_mlp);
  EXPECT_EQ(c.embed_scale, std::sqrt(64.0f));
  EXPECT_EQ(c.context_length, 256);  // the window does not cap the context
}

TEST(Gemma3, HfFolderMatchesFloat64ReferenceAndTransformers) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  const std::string dir = s.path("hf");
  ASSERT_EQ(0, test::run_python(test::python_interpreter(), kScript, {"make-hf", dir}));
  const ModelConfig c = load_model(dir, options()).config;
  expect_gemma3_config(c);
  EXPECT_EQ(c.attention_scale, static_cast<float>(std::pow(24.0, -0.5)));  // query_pre_attn_scalar

  const json r = compare(s, "hf", dir);
  std::printf(
      "hf: float64 %.3g, transformers %.3g (float64 vs transformers %.3g), no window %.3g\n",
      r["max_rel_error"].get<double>(), r["transformers_rel_error"].get<double>(),
      r["reference_vs_transformers"].get<double>(), r["ablated_rel_error"].get<double>());
  EXPECT_LT(r["reference_vs_transformers"].get<double>(), kMaxRelError);
  EXPECT_LT(r["max_rel_error"].get<double>(), kMaxRelError);
  EXPECT_LT(r["transformers_rel_error"].get<double>(), kMaxRelError);
  EXPECT_GT(r["ablated_rel_error"].get<double>(), 100 * kMaxRelError)
      << "the window changes nothing";
}

TEST(Gemma3, GgufFileMatchesFloat64Reference) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  const std::string path = s.path("gemma3.gguf");
  ASSERT_EQ(0, test::run_python(test::python_interpreter(), kScript, {"make-gguf", path}));
  const ModelConfig c = load_model(path, options()).config;
  expect_gemma3_config(c);
  EXPECT_EQ(c.architecture, "gemma3");
  EXPECT_EQ(c.attention_scale, 1.0f / std::sqrt(16.0f));  // llama.cpp's rule: head_dim

  const json r = compare(s, "gguf", path);
  std::printf("gguf: float64 %.3g, no window %.3g\n", r["max_rel_error"].get<double>(),
              r["ablated_rel_error"].get<double>());
  EXPECT_LT(r["max_rel_error"].get<double>(), kMaxRelError);
  EXPECT_GT(r["ablated_rel_error"].get<double>(), 100 * kMaxRelError)
      << "the window changes nothing";
}

TEST(Gemma3, BadGgufFilesNameTheKey) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  const auto make = [&](const std::string& name, const std::vector<std::string>& extra) {
    const std::string path = s.path(name + ".gguf");
    std::vector<std::string> args{"make-gguf", path};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_EQ(0, test::run_python(test::python_interpreter(), kScript, args));
    return path;
  };
  const std::string no_window = make("no-window", {"--drop", "gemma3.attention.sliding_window"});
  EXPECT_NE(error_of(no_window).find("gemma3.attention.sliding_window is missing"),
            std::string::npos)
      << error_of(no_window);
  const std::string softcap = make("softcap", {"--set-float", "gemma3.final_logit_softcapping=30"});
  EXPECT_NE(error_of(softcap).find("gemma3.final_logit_softcapping is set"), std::string::npos)
      << error_of(softcap);
  const std::string no_factor = make("no-factor", {"--drop", "gemma3.rope.scaling.factor"});
  EXPECT_NE(error_of(no_factor).find("gemma3.rope.scaling.factor is missing"), std::string::npos)
      << error_of(no_factor);
}

TEST(Gemma3, RefusedConfigKeysAreNamed) {
  SKIP_WITHOUT_PYTHON();
  Scratch s;
  const std::string dir = s.path("hf");
  ASSERT_EQ(0, test::run_python(test::python_interpreter(), kScript, {"make-hf", dir}));
  const std::string config_path = dir + "/config.json";
  const json original = json::parse(std::ifstream(config_path));
  const auto error_with = [&](const std::function<void(json&)>& edit) {
    json j = original;
    edit(j);
    std::ofstream(config_path) << j.dump();
    return error_of(dir);
  };
  const std::pair<std::function<void(json&)>, std::string> cases[] = {
      {[](json& j) { j["final_logit_softcapping"] = 30.0; }, "\"final_logit_softcapping\" is 30"},
      {[](json& j) { j["attn_logit_softcapping"] = 50.0; }, "\"attn_logit_softcapping\" is 50"},
      {[](json& j) { j["hidden_activation"] = "gelu"; }, "\"hidden_activation\" is \"gelu\""},
      {[](json& j) { j["layer_types"].erase(0); }, "\"layer_types\" is"},
      {[](json& j) { j["layer_types"][1] = "chunked_attention"; }, "\"layer_types\"[1]"},
      {[](json& j) { j["use_bidirectional_attention"] = true; }, "use_bidirectional_attention"},
      {[](json& j) { j["rope_parameters"]["sliding_attention"]["rope_type"] = "yarn"; },
       "\"yarn\" is not supported"},
  };
  for (const auto& [edit, message] : cases) {
    const std::string e = error_with(edit);
    EXPECT_NE(e.find(message), std::string::npos) << e;
    EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  }
  // The old form (rope_theta, rope_local_base_freq, rope_scaling, sliding_window_pattern) reads
  // the same model.
  const ModelConfig c = [&] {
    json j = original;
    j.erase("rope_parameters");
    j.erase("layer_types");
    j["rope_theta"] = 1e6;
    j["rope_local_base_freq"] = 1e4;
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 4.0}};
    j["sliding_window_pattern"] = 3;
    std::ofstream(config_path) << j.dump();
    return load_model(dir, options()).config;
  }();
  expect_gemma3_config(c);
}

// --- the windowed attention kernel ---

struct WindowCase {
  static constexpr int kHeads = 4, kKvHeads = 2, kHeadDim = 32, kBlock = 16;
  int64_t positions = 300;
  std::vector<float> q, k, v;
  std::vector<int32_t> table;
  std::vector<float> cache_k, cache_v;

  WindowCase() {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const auto fill = [&](std::vector<float>& x, int64_t n) {
      x.resize(static_cast<size_t>(n));
      for (float& e : x) e = u(rng);
    };
    fill(q, positions * kHeads * kHeadDim);
    fill(k, positions * kKvHeads * kHeadDim);
    fill(v, positions * kKvHeads * kHeadDim);
    const int64_t blocks = (positions + kBlock - 1) / kBlock;
    for (int64_t b = 0; b < blocks; ++b) table.push_back(static_cast<int32_t>(blocks - 1 - b));
    cache_k.assign(static_cast<size_t>(blocks * kBlock * kKvHeads * kHeadDim), 0.0f);
    cache_v = cache_k;
  }
  KvLayerView kv() {
    const int64_t blocks = static_cast<int64_t>(table.size());
    return KvLayerView{cache_k.data(), cache_v.data(), blocks, kBlock, kKvHeads, kHeadDim};
  }
  // Writes every position's k and v, then attends the queries at `at` with `window`.
  std::vector<float> run(const std::vector<int32_t>& at, int window, ThreadPool* pool) {
    std::vector<int32_t> all(static_cast<size_t>(positions));
    for (int32_t p = 0; p < positions; ++p) all[static_cast<size_t>(p)] = p;
    const std::vector<const int32_t*> tables(all.size(), table.data());
    const int64_t kv_width = int64_t{kKvHeads} * kHeadDim, q_width = int64_t{kHeads} * kHeadDim;
    kv_cache_write(kv(), k.data(), kv_width, v.data(), kv_width, all.data(), tables.data(),
                   positions);
    std::vector<float> qs, out(at.size() * static_cast<size_t>(q_width));
    for (int32_t p : at) {
      qs.insert(qs.end(), q.begin() + p * q_width, q.begin() + (p + 1) * q_width);
    }
    AttentionArgs a;
    a.q = qs.data();
    a.q_stride = q_width;
    a.out = out.data();
    a.out_stride = q_width;
    a.positions = at.data();
    a.block_tables = tables.data();
    a.T = static_cast<int64_t>(at.size());
    a.n_heads = kHeads;
    a.scale = 0.125f;
    a.window = window;
    a.kv = kv();
    if (pool != nullptr) {
      attention(a, *pool);
    } else {
      attention_reference(a);
    }
    return out;
  }
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(WindowedAttention, FastPathEqualsReferenceAndIgnoresMaskedPositions) {
  WindowCase c;
  const std::vector<int32_t> at = {0, 5, 63, 64, 79, 80, 81, 127, 128, 150, 200, 255, 299};
  ThreadPool one(1), three(3);
  for (const int window : {1, 7, 64, 80, 100, 1000}) {
    const std::vector<float> ref = c.run(at, window, nullptr);
    EXPECT_TRUE(same_bits(c.run(at, window, &one), ref)) << "window " << window;
    EXPECT_TRUE(same_bits(c.run(at, window, &three), ref)) << "window " << window;
    // A query alone gives the bits it gives in the batch.
    for (size_t i = 0; i < at.size(); ++i) {
      const std::vector<float> alone = c.run({at[i]}, window, &three);
      const size_t w = alone.size();
      EXPECT_EQ(0, std::memcmp(alone.data(), ref.data() + i * w, w * sizeof(float)))
          << "window " << window << " position " << at[i];
    }
  }
  // A window longer than every position is full attention, bit for bit.
  EXPECT_TRUE(same_bits(c.run(at, 1000, &three), c.run(at, 0, &three)));

  // Position 299 with window 80 reads 220..299: changing position 219 changes nothing, changing
  // 220 does (the negative control).
  const std::vector<float> before = c.run({299}, 80, &three);
  const int64_t kv_width = int64_t{WindowCase::kKvHeads} * WindowCase::kHeadDim;
  WindowCase outside = c;
  for (int64_t d = 0; d < kv_width; ++d) {
    outside.k[static_cast<size_t>(219 * kv_width + d)] += 3.0f;
    outside.v[static_cast<size_t>(219 * kv_width + d)] -= 2.0f;
  }
  EXPECT_TRUE(same_bits(outside.run({299}, 80, &three), before));
  WindowCase inside = c;
  for (int64_t d = 0; d < kv_width; ++d) {
    inside.v[static_cast<size_t>(220 * kv_width + d)] -= 2.0f;
  }
  EXPECT_FALSE(same_bits(inside.run({299}, 80, &three), before));
  // ...and without the window, position 219 is read.
  EXPECT_FALSE(same_bits(outside.run({299}, 0, &three), c.run({299}, 0, &three)));
}

TEST(WindowedAttention, NegativeWindowIsRefused) {
  WindowCase c;
  try {
    c.run({10}, -1, nullptr);
    ADD_FAILURE() << "a negative window was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention window -1"), std::string::npos) << e.what();
  }
}

// --- the engine invariance matrix on random:gemma3-tiny ---

std::vector<EngineRequest> gemma_requests() {
  const int lengths[] = {1, 2, 5, 16, 33, 64, 79, 80, 81, 100, 150, 199};
  return test::matrix_requests(16, lengths, /*shared=*/8);
}

LoadedModel load_tiny(int threads, ReductionOrder order = ReductionOrder::canonical) {
  LoadOptions o;
  o.threads = threads;
  o.max_batch_tokens = 4096;
  o.max_logit_rows = 64;
  o.reduction_order = order;
  return load_model("random:gemma3-tiny:3", o);
}

class GemmaEngineMatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new LoadedModel(load_tiny(1));
    requests_ = new std::vector<EngineRequest>(gemma_requests());
    alone_ = new std::vector<test::RequestResult>();
    for (const EngineRequest& r : *requests_) alone_->push_back(test::run_alone(*model_, r));
  }
  static void TearDownTestSuite() {
    delete alone_;
    delete requests_;
    delete model_;
  }
  static inline LoadedModel* model_ = nullptr;
  static inline std::vector<EngineRequest>* requests_ = nullptr;
  static inline std::vector<test::RequestResult>* alone_ = nullptr;
};

TEST_F(GemmaEngineMatrix, TheModelIsGemma3WithWindowsShorterThanThePrompts) {
  const ModelConfig& c = model_->config;
  EXPECT_EQ(c.architecture, "Gemma3ForCausalLM");
  EXPECT_EQ(c.windowed, (std::vector<uint8_t>{1, 1, 0, 1}));
  EXPECT_EQ(c.sliding_window, 80);
  EXPECT_TRUE(c.post_norms && c.gelu_tanh_mlp && c.qk_norm && c.tied_output);
  // Greedy outputs vary: the model is not degenerate.
  std::vector<int32_t> firsts;
  for (const test::RequestResult& r : *alone_) firsts.push_back(r.samples.at(0).tokens.at(0));
  std::sort(firsts.begin(), firsts.end());
  EXPECT_GT(std::unique(firsts.begin(), firsts.end()) - firsts.begin(), 4);
}

TEST_F(GemmaEngineMatrix, EveryScheduleEqualsEachRequestAlone) {
  EXPECT_TRUE((*alone_)[15].samples.at(0).same_bits((*alone_)[4].samples.at(0)));
  LoadedModel two_threads = load_tiny(2);
  for (LoadedModel* model : {model_, &two_threads}) {
    for (const test::Schedule& s : test::matrix_schedules()) {
      EngineStats stats;
      const int differ =
          test::count_differences(test::run_schedule(*model, *requests_, s, &stats), *alone_);
      std::printf("gemma3 matrix (%d threads): %-40s steps %4llu preemptions %3llu differ %d\n",
                  model == model_ ? 1 : 2, s.name.c_str(),
                  static_cast<unsigned long long>(stats.steps),
                  static_cast<unsigned long long>(stats.preemptions), differ);
      EXPECT_EQ(differ, 0) << s.name;
      if (s.options.kv_cache_tokens > 0) {
        EXPECT_GT(stats.preemptions, 0u) << s.name;
      }
    }
  }
}

TEST_F(GemmaEngineMatrix, ScoresEqualTheGenerationLogprobs) {
  Engine engine(*model_, EngineOptions{});
  int compared = 0;
  for (size_t i = 0; i < requests_->size(); ++i) {
    for (const test::SampleResult& s : (*alone_)[i].samples) {
      const EngineEvent scored = engine.score((*requests_)[i].prompt, s.tokens);
      ASSERT_EQ(scored.score_logprobs.size(), s.logprobs.size());
      for (size_t t = 0; t < s.logprobs.size(); ++t) {
        EXPECT_EQ(std::bit_cast<uint32_t>(scored.score_logprobs[t]),
                  std::bit_cast<uint32_t>(s.logprobs[t]))
            << "request " << i << " token " << t;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 150);
}

TEST_F(GemmaEngineMatrix, NegativeControlFastModeDiffers) {
  LoadedModel fast = load_tiny(1, ReductionOrder::split_k_by_m);
  std::vector<test::RequestResult> alone;
  for (const EngineRequest& r : *requests_) alone.push_back(test::run_alone(fast, r));
  const int differ = test::count_differences(
      test::run_schedule(fast, *requests_, test::matrix_schedules()[0], nullptr), alone);
  std::printf("gemma3 negative control: %d samples differ from their run alone\n", differ);
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace bx
