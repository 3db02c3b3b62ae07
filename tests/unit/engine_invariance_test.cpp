// The invariance matrix (T3/T4 for the engine): 36 requests — prompts of 1 to 300 tokens, greedy
// and seeded sampling, shared prefixes, stop strings, n = 2, min_tokens — run under engine
// configurations that change everything a scheduler can change: sequence cap, token budget,
// prefill chunk, prefix cache off / cold / warm, a KV pool small enough to force preemption,
// shuffled and staggered arrivals, one and two threads. Every sample's token ids, logprob bits,
// text and finish reason must equal those of the request run alone with default settings, and
// score() must return exactly the logprobs generation reported.
//
// The negative control runs the same matrix with a matmul whose K split depends on the batch
// size (ReductionOrder::split_k_by_m) and shows that it finds differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "support/engine_runner.h"
#include "support/kquant_model.h"
#include "support/random_model.h"
#include "support/shared_model.h"

namespace bx {
namespace {

const char* const kTextA =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park with her friend Ben. One day, they found a big red ball under a tree. Lily wanted to "
    "kick it, but Ben said they should share. So they took turns and laughed all afternoon. "
    "When the sun went down, Mom called them home for dinner. They ate soup and bread and told "
    "Dad about the ball. Dad smiled and said that sharing is the best way to play. The next "
    "morning Lily woke up early and ran to the window. It was raining, and the park was wet and "
    "grey. She felt sad, but then she had an idea. She built a fort of pillows in the living "
    "room and invited Ben to come over. They played pirates and sailed across the carpet sea. "
    "The cat watched them from the sofa and yawned. In the end they were tired and happy, and "
    "they fell asleep in the fort while the rain kept falling on the roof of the little house.";

const char* const kTextB =
    "Tom had a small dog called Max. Max liked to run and jump and bark at the birds. One "
    "morning Max saw a shiny stone in the garden and dug a big hole to get it. Tom was not happy "
    "because the flowers fell over, but Max looked so proud that Tom began to laugh.";

// Builds the request set from the model's tokenizer: prompts are BOS + a slice of a text, so
// lengths are exact and many prompts share prefixes.
std::vector<EngineRequest> make_requests(const Tokenizer& tok) {
  const std::vector<int32_t> a = tok.encode(kTextA, /*add_bos=*/false);
  const std::vector<int32_t> b = tok.encode(kTextB, /*add_bos=*/false);
  const int32_t bos = tok.bos_id();
  const auto slice = [&](const std::vector<int32_t>& text, size_t from, size_t n) {
    std::vector<int32_t> p = {bos};
    p.insert(p.end(), text.begin() + static_cast<ptrdiff_t>(from),
             text.begin() + static_cast<ptrdiff_t>(std::min(text.size(), from + n)));
    return p;
  };
  std::vector<EngineRequest> out;
  const size_t lengths[] = {0,  1,  2,  5,   15,  16,  17,  31,  33,
                            48, 64, 65, 100, 128, 150, 200, 255, 299};
  for (size_t i = 0; i < 36; ++i) {
    EngineRequest r;
    const size_t len = lengths[i % std::size(lengths)];
    if (i < 18) {
      r.prompt = slice(a, 0, len);  // all prefixes of one text: shared blocks everywhere
    } else if (i < 28) {
      r.prompt = slice(a, 7 * (i - 17), len);  // other starts: shared only with each other
    } else {
      r.prompt = slice(b, i % 3, len);
    }
    r.max_tokens = 6 + static_cast<int>((i * 7) % 29);
    if (i % 3 != 0) {  // two thirds seeded sampling, one third greedy
      r.sampling.temperature = 0.7f + 0.15f * static_cast<float>(i % 4);
      r.sampling.top_k = i % 5 == 1 ? 20 : 0;
      r.sampling.top_p = i % 5 == 2 ? 0.9f : 1.0f;
      r.sampling.min_p = i % 5 == 3 ? 0.05f : 0.0f;
      r.sampling.seed = 77 + i;
    } else {
      r.sampling.temperature = 0.0f;
    }
    if (i % 4 == 1) r.stop = {"."};
    if (i % 6 == 2) r.stop = {" the", "!"};
    if (i % 7 == 3) r.n = 2;
    if (i % 9 == 4) r.min_tokens = 3;
    if (i % 11 == 5) r.ignore_eos = true;
    out.push_back(std::move(r));
  }
  return out;
}

struct Config {
  std::string name;
  EngineOptions options;
  bool shuffle = false;
  bool stagger = false;
  bool warm = false;  // run the set once first on the same engine, then compare the second run
};

// Named, so no value lands in the wrong field (EngineOptions' fields are positional in braces).
EngineOptions options(int budget, int max_seqs, int prefill_chunk, int64_t kv_cache_tokens,
                      bool prefix_cache) {
  EngineOptions o;
  o.max_batch_tokens = budget;
  o.max_seqs = max_seqs;
  o.prefill_chunk = prefill_chunk;
  o.kv_cache_tokens = kv_cache_tokens;
  o.prefix_cache = prefix_cache;
  return o;
}

std::vector<Config> configs() {
  std::vector<Config> c;
  c.push_back({"all together, max-seqs 64, budget 4096", options(4096, 64, 512, 0, true)});
  c.push_back({"max-seqs 1", options(4096, 1, 512, 0, true)});
  c.push_back({"max-batch-tokens 16", options(16, 64, 512, 0, true)});
  c.push_back({"prefill-chunk 7", options(4096, 64, 7, 0, true)});
  c.push_back({"prefix cache off", options(4096, 64, 512, 0, false)});
  c.push_back({"prefix cache warm", options(4096, 64, 512, 0, true), false, false, true});
  c.push_back({"KV pool of 24 blocks (preemption)", options(4096, 64, 512, 24 * 16, true)});
  c.push_back({"shuffled, staggered", options(4096, 64, 512, 0, true), true, true});
  c.push_back({"budget 16, chunk 7, 24-block pool, shuffled, staggered",
               options(16, 8, 7, 24 * 16, true), true, true});
  c.push_back(
      {"no prefix cache, 24-block pool, max-seqs 3", options(64, 3, 13, 24 * 16, false), true});
  return c;
}

LoadedModel load(int threads, ReductionOrder order = ReductionOrder::canonical) {
  LoadOptions o;
  o.threads = threads;
  o.max_batch_tokens = 4096;
  o.max_logit_rows = 64;
  o.reduction_order = order;
  return load_model(test::stories260k_path(), o);
}

// Runs the request set under one configuration; the results are in request order.
std::vector<test::RequestResult> run_config(LoadedModel& model,
                                            const std::vector<EngineRequest>& requests,
                                            const Config& config, EngineStats* stats,
                                            uint64_t* prefix_hits) {
  Engine engine(model, config.options);
  std::vector<size_t> order(requests.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (config.shuffle) std::shuffle(order.begin(), order.end(), std::mt19937(1234));
  if (config.warm) {
    for (const EngineRequest& r : requests) engine.submit(r);
    engine.run_until_idle();
  }
  const uint64_t hits_before = engine.pool().prefix_hits();
  std::vector<std::shared_ptr<RequestStream>> streams(requests.size());
  std::mt19937 rng(99);
  for (size_t k = 0; k < order.size(); ++k) {
    streams[order[k]] = engine.submit(requests[order[k]]);
    if (config.stagger) {
      for (int s = static_cast<int>(rng() % 4); s > 0; --s) engine.step();
    }
  }
  engine.run_until_idle();
  std::vector<test::RequestResult> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    test::drain(*streams[i], results[i]);
    EXPECT_TRUE(streams[i]->done());
  }
  if (stats) *stats = engine.stats();
  if (prefix_hits) *prefix_hits = engine.pool().prefix_hits() - hits_before;
  EXPECT_EQ(engine.pool().held_blocks(), 0) << "blocks still held after every request ended";
  return results;
}

std::vector<test::RequestResult> run_each_alone(LoadedModel& model,
                                                const std::vector<EngineRequest>& requests) {
  std::vector<test::RequestResult> out;
  for (const EngineRequest& r : requests) out.push_back(test::run_alone(model, r));
  return out;
}

class EngineMatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_stories260k()) return;
    model_ = new LoadedModel(load(1));
    requests_ = new std::vector<EngineRequest>(make_requests(*model_->tokenizer));
    baseline_ = new std::vector<test::RequestResult>(run_each_alone(*model_, *requests_));
  }
  static void TearDownTestSuite() {
    delete baseline_;
    delete requests_;
    delete model_;
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << test::stories260k_path() << " not found";
  }
  static inline LoadedModel* model_ = nullptr;
  static inline std::vector<EngineRequest>* requests_ = nullptr;
  static inline std::vector<test::RequestResult>* baseline_ = nullptr;
};

TEST_F(EngineMatrix, RequestSetCoversTheCases) {
  size_t shortest = SIZE_MAX, longest = 0, stopped_on_string = 0, samples = 0, greedy = 0;
  for (size_t i = 0; i < requests_->size(); ++i) {
    const EngineRequest& r = (*requests_)[i];
    shortest = std::min(shortest, r.prompt.size());
    longest = std::max(longest, r.prompt.size());
    greedy += r.sampling.temperature == 0.0f ? 1 : 0;
    for (const test::SampleResult& s : (*baseline_)[i].samples) {
      ++samples;
      stopped_on_string += s.stop_reason && s.stop_reason->rfind("token:", 0) != 0 ? 1 : 0;
    }
  }
  std::printf(
      "matrix: %zu requests, %zu samples, prompts %zu..%zu tokens, %zu greedy, "
      "%zu samples ended on a stop string\n",
      requests_->size(), samples, shortest, longest, greedy, stopped_on_string);
  EXPECT_GE(requests_->size(), 32u);
  EXPECT_EQ(shortest, 1u);
  EXPECT_EQ(longest, 300u);
  EXPECT_GT(stopped_on_string, 0u);
  // n = 2 with sampling gives two different samples (seeds derived per sample).
  bool some_pair_differs = false;
  for (size_t i = 0; i < requests_->size(); ++i) {
    const auto& s = (*baseline_)[i].samples;
    ASSERT_EQ(s.size(), static_cast<size_t>((*requests_)[i].n));
    if (s.size() == 2 && (*requests_)[i].sampling.temperature > 0) {
      some_pair_differs |= s[0].tokens != s[1].tokens;
    }
  }
  EXPECT_TRUE(some_pair_differs);
}

TEST_F(EngineMatrix, EveryConfigurationEqualsEachRequestAlone) {
  for (const Config& config : configs()) {
    EngineStats stats;
    uint64_t hits = 0;
    const std::vector<test::RequestResult> got =
        run_config(*model_, *requests_, config, &stats, &hits);
    const int differ = test::count_differences(got, *baseline_);
    std::printf("matrix: %-55s steps %4llu  preemptions %3llu  prefix hits %4llu  differ %d\n",
                config.name.c_str(), static_cast<unsigned long long>(stats.steps),
                static_cast<unsigned long long>(stats.preemptions),
                static_cast<unsigned long long>(hits), differ);
    EXPECT_EQ(differ, 0) << config.name;
    if (config.options.kv_cache_tokens > 0) {
      EXPECT_GT(stats.preemptions, 0u) << config.name << ": the small pool should preempt";
    }
    if (config.warm) {
      EXPECT_GT(hits, 0u) << config.name << ": the warm cache should hit";
    }
  }
}

TEST_F(EngineMatrix, TwoThreadsEqualEachRequestAlone) {
  LoadedModel model = load(2);
  const std::vector<test::RequestResult> got =
      run_config(model, *requests_, configs()[8], nullptr, nullptr);
  EXPECT_EQ(test::count_differences(got, *baseline_), 0);
}

// The scalar, AVX2 and AVX-512 kernels give the same bits, so the ISA is one more thing that
// cannot change a result.
TEST_F(EngineMatrix, EveryIsaEqualsEachRequestAlone) {
  const Isa best = best_supported_isa();
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (!isa_supported(isa)) continue;
    set_isa(isa);
    const std::vector<test::RequestResult> got =
        run_config(*model_, *requests_, configs()[8], nullptr, nullptr);
    EXPECT_EQ(test::count_differences(got, *baseline_), 0) << isa_name(isa);
  }
  set_isa(best);
}

// 12 requests of lengths 2 to 150 over the random models' vocabulary, greedy and sampled.
std::vector<EngineRequest> random_model_requests() {
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 12; ++i) {
    EngineRequest r;
    r.prompt.push_back(1);  // BOS
    const int length = 1 + (i * 37) % 150;
    for (int t = 0; t < length; ++t) r.prompt.push_back(3 + (t * 31 + (i % 3) * 17) % 300);
    r.max_tokens = 6 + i % 5;
    r.ignore_eos = true;
    r.n = i % 4 == 3 ? 2 : 1;
    r.sampling.temperature = i % 2 ? 1.0f : 0.0f;
    r.sampling.seed = static_cast<uint64_t>(i);
    requests.push_back(r);
  }
  return requests;
}

// random_model_requests() alone (one thread) and under three engine configurations (two
// threads): every sample equal.
void expect_each_request_alone(const std::string& path, const std::string& what) {
  const std::vector<EngineRequest> requests = random_model_requests();
  LoadOptions options;
  options.max_batch_tokens = 4096;
  options.max_logit_rows = 64;
  options.threads = 1;
  LoadedModel alone_model = load_model(path, options);
  const std::vector<test::RequestResult> alone = run_each_alone(alone_model, requests);
  options.threads = 2;
  LoadedModel model = load_model(path, options);
  for (const Config& config : {configs()[0], configs()[8], configs()[9]}) {
    const std::vector<test::RequestResult> got =
        run_config(model, requests, config, nullptr, nullptr);
    EXPECT_EQ(test::count_differences(got, alone), 0) << what << ", " << config.name;
  }
}

// The same promise on random models whose matmul weights are BF16 (held as BF16) or Q8_0,
// with GQA and prompts that cross attention-chunk boundaries.
TEST(EngineMatrixRandom, Bf16AndQ8WeightsEqualEachRequestAlone) {
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
    test::RandomLlamaFile file(std::string("engine-matrix-") + gguf::ggml_type_name(type), spec);
    expect_each_request_alone(file.path(), gguf::ggml_type_name(type));
  }
}

// And on a K-quant model written by the gguf package (Q4_K, Q6_K, Q5_K, Q2_K, Q3_K, Q5_0, Q5_1,
// IQ4_NL, IQ4_XS matrices held as blocks: support/kquant_model.h).
TEST(EngineMatrixRandom, KQuantWeightsEqualEachRequestAlone) {
  const std::string python = test::python_interpreter();
  if (python.empty()) GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing (run scripts/setup.sh)";
  test::KQuantLlamaFile file("engine-matrix-kquant", python, 13);
  ASSERT_TRUE(file.ok()) << "tests/ref/make_kquant_gguf.py failed (is the gguf package installed?)";
  expect_each_request_alone(file.path(), "K-quant model");
}

// The negative control on the K-quant model: the batch-dependent K split does change samples.
TEST(EngineMatrixRandom, KQuantNegativeControlDiffers) {
  const std::string python = test::python_interpreter();
  if (python.empty()) GTEST_SKIP() << "BITEXACT_PYTHON is unset or missing (run scripts/setup.sh)";
  test::KQuantLlamaFile file("engine-matrix-kquant-control", python, 13);
  ASSERT_TRUE(file.ok()) << "tests/ref/make_kquant_gguf.py failed (is the gguf package installed?)";
  const std::vector<EngineRequest> requests = random_model_requests();
  LoadOptions options;
  options.max_batch_tokens = 4096;
  options.max_logit_rows = 64;
  options.reduction_order = ReductionOrder::split_k_by_m;
  LoadedModel model = load_model(file.path(), options);
  const std::vector<test::RequestResult> alone = run_each_alone(model, requests);
  const std::vector<test::RequestResult> got =
      run_config(model, requests, configs()[0], nullptr, nullptr);
  EXPECT_GT(test::count_differences(got, alone), 0);
}

// Scoring the generated tokens by teacher forcing gives back exactly the generation logprobs
// (KL = 0 between sampler and trainer), with and without the prefix cache holding the prompt.
TEST_F(EngineMatrix, ScoreReturnsTheGenerationLogprobs) {
  for (bool prefix_cache : {true, false}) {
    EngineOptions o;
    o.prefix_cache = prefix_cache;
    o.prefill_chunk = 11;
    Engine engine(*model_, o);
    int compared = 0;
    for (size_t i = 0; i < requests_->size(); ++i) {
      const EngineRequest& r = (*requests_)[i];
      for (const test::SampleResult& s : (*baseline_)[i].samples) {
        const EngineEvent scored = engine.score(r.prompt, s.tokens);
        ASSERT_EQ(scored.score_logprobs.size(), s.logprobs.size());
        for (size_t t = 0; t < s.logprobs.size(); ++t) {
          EXPECT_EQ(std::bit_cast<uint32_t>(scored.score_logprobs[t]),
                    std::bit_cast<uint32_t>(s.logprobs[t]))
              << "request " << i << " token " << t;
          ++compared;
        }
      }
    }
    std::printf(
        "score: %d generated logprobs equal their teacher-forced scores (prefix cache %s)\n",
        compared, prefix_cache ? "on" : "off");
  }
}

// Prompt logprobs: the same bits whether asked alone, with generation, or chunked differently.
TEST_F(EngineMatrix, PromptLogprobsDoNotDependOnChunking) {
  const EngineRequest& base = (*requests_)[17];  // 299 prompt tokens
  EngineRequest r = base;
  r.prompt_logprobs = true;
  const test::RequestResult alone = test::run_alone(*model_, r);
  ASSERT_TRUE(alone.scored);
  ASSERT_EQ(alone.prompt_logprobs.size(), r.prompt.size() - 1);
  EXPECT_TRUE(alone.samples.at(0).same_bits((*baseline_)[17].samples.at(0)));
  EngineOptions o;
  o.prefill_chunk = 5;
  o.max_batch_tokens = 37;
  const test::RequestResult chunked = test::run_alone(*model_, r, o);
  ASSERT_EQ(chunked.prompt_logprobs.size(), alone.prompt_logprobs.size());
  for (size_t t = 0; t < alone.prompt_logprobs.size(); ++t) {
    EXPECT_EQ(std::bit_cast<uint32_t>(chunked.prompt_logprobs[t]),
              std::bit_cast<uint32_t>(alone.prompt_logprobs[t]));
  }
}

// The negative control: with a matmul whose K split follows the batch size, the same matrix
// comparison finds differences — so the comparisons above can fail.
TEST_F(EngineMatrix, NegativeControlOrderVaryingMatmulDiffers) {
  LoadedModel model = load(1, ReductionOrder::split_k_by_m);
  const std::vector<test::RequestResult> alone = run_each_alone(model, *requests_);
  const std::vector<test::RequestResult> together =
      run_config(model, *requests_, configs()[0], nullptr, nullptr);
  const int differ = test::count_differences(together, alone);
  std::printf("negative control: %d samples differ from their run alone\n", differ);
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace bx
