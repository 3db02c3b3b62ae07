// Weight updates in place (model/weight_update.h, engine/weight_swap.h, Engine::run_exclusive):
// after an update to W the engine gives the bits of a fresh load of W (INVARIANCE.md promise 8),
// for BF16 and F32 sources, biases and every Hugging Face name; a bad update changes nothing;
// pause holds new requests without dropping any. (The Python tests cover GGUF models, Q4_1
// weights becoming F32, and threads generating while the weights change.)
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/half.h"
#include "engine/completion.h"
#include "engine/engine.h"
#include "engine/weight_swap.h"
#include "model/loader.h"
#include "model/weight_update.h"
#include "support/engine_runner.h"
#include "support/random_hf_model.h"

namespace bx {
namespace {

std::vector<EngineRequest> requests(int vocab) {
  std::vector<EngineRequest> out;
  for (int i = 0; i < 4; ++i) {
    EngineRequest r;
    for (int t = 0; t < 5 + 3 * i; ++t) r.prompt.push_back(1 + (t * 37 + i * 11) % (vocab - 1));
    r.max_tokens = 12;
    r.ignore_eos = true;
    r.sampling.temperature = i % 2 == 0 ? 0.0f : 0.9f;
    r.sampling.seed = 7 + static_cast<uint64_t>(i);
    out.push_back(r);
  }
  return out;
}

bool all_same(const std::vector<test::SampleResult>& a, const std::vector<test::SampleResult>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].same_bits(b[i])) return false;
  }
  return true;
}

// The tensors of `spec` as update sources, in `dtype` (bits kept alive in `storage`).
std::vector<WeightSource> sources_of(const std::vector<test::HfTensor>& tensors, DType dtype,
                                     std::vector<std::vector<uint16_t>>& storage) {
  std::vector<WeightSource> out;
  for (const test::HfTensor& t : tensors) {
    WeightSource s{t.name, t.values.data(), DType::f32, t.shape, false};
    if (dtype == DType::bf16) {
      storage.emplace_back(t.values.size());
      for (size_t i = 0; i < t.values.size(); ++i) storage.back()[i] = f32_to_bf16(t.values[i]);
      s.data = storage.back().data();
      s.dtype = DType::bf16;
    }
    out.push_back(std::move(s));
  }
  return out;
}

struct Case {
  const char* architecture;
  const char* dtype;
  bool tied;
};

class WeightUpdate : public ::testing::TestWithParam<Case> {};

TEST_P(WeightUpdate, UpdatedEngineEqualsAFreshLoadOfTheNewWeights) {
  const Case c = GetParam();
  test::RandomHfSpec a;
  a.architecture = c.architecture;
  a.tied_output = c.tied;
  a.attention_bias = true;
  test::RandomHfSpec b = a;
  b.seed = 2;
  b.dtype = c.dtype;
  const test::RandomHfFolder folder_a("update-a", a), folder_b("update-b", b);
  LoadedModel model = load_model(folder_a.path(), {});
  LoadedModel fresh = load_model(folder_b.path(), {});
  const std::vector<EngineRequest> reqs = requests(a.vocab_size);
  const auto before = test::first_samples_together(model, reqs);
  const auto expected = test::first_samples_together(fresh, reqs);
  ASSERT_FALSE(all_same(before, expected));  // the comparison below can fail

  const DType dtype = std::string(c.dtype) == "BF16" ? DType::bf16 : DType::f32;
  std::vector<std::vector<uint16_t>> storage;
  const std::vector<test::HfTensor> tensors = test::random_hf_tensors(b);
  {
    Engine engine(model, {});
    EXPECT_EQ(swap_weights(engine, model, sources_of(tensors, dtype, storage), InFlight::finish),
              1u);
  }
  EXPECT_TRUE(all_same(test::first_samples_together(model, reqs), expected));
  EXPECT_EQ(model.weight_dtype, fresh.weight_dtype);
  EXPECT_EQ(model.weights_version, 1u);

  // Back to A's weights: A's bits again.
  std::vector<std::vector<uint16_t>> storage_a;
  {
    Engine engine(model, {});
    swap_weights(engine, model, sources_of(test::random_hf_tensors(a), DType::f32, storage_a),
                 InFlight::finish);
  }
  EXPECT_TRUE(all_same(test::first_samples_together(model, reqs), before));
}

INSTANTIATE_TEST_SUITE_P(Models, WeightUpdate,
                         ::testing::Values(Case{"LlamaForCausalLM", "BF16", false},
                                           Case{"LlamaForCausalLM", "F32", true},
                                           Case{"Qwen3ForCausalLM", "BF16", false},
                                           Case{"Qwen2ForCausalLM", "F32", false}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(p.param.architecture) + "_" + p.param.dtype +
                                  (p.param.tied ? "_tied" : "");
                         });

TEST(WeightUpdateChecks, BadUpdatesChangeNothingAndNameTheTensor) {
  test::RandomHfSpec spec;
  spec.tied_output = true;
  const test::RandomHfFolder folder("update-bad", spec);
  LoadedModel model = load_model(folder.path(), {});
  const std::string fingerprint = model.system_fingerprint();
  const std::vector<EngineRequest> reqs = requests(spec.vocab_size);
  const auto before = test::first_samples_together(model, reqs);
  std::vector<float> q(64 * 64, 0.5f), small(10, 1.0f);
  const std::string q_name = "model.layers.0.self_attn.q_proj.weight";
  const auto expect_refused = [&](std::vector<WeightSource> sources, const std::string& what) {
    Engine engine(model, {});
    try {
      swap_weights(engine, model, std::move(sources), InFlight::finish);
      ADD_FAILURE() << "accepted an update that names " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_refused({{q_name, q.data(), DType::f32, {64, 64}, false},
                  {"model.layers.9.mlp.up_proj.weight", q.data(), DType::f32, {64, 64}, false}},
                 "model.layers.9.mlp.up_proj.weight");
  expect_refused({{q_name, q.data(), DType::f32, {64, 64}, false},
                  {"model.norm.weight", small.data(), DType::f32, {10}, false}},
                 "expected [64]");
  expect_refused({{q_name, q.data(), DType::f32, {64, 64}, false},
                  {"blk.0.attn_q.weight", q.data(), DType::f32, {64, 64}, false}},
                 "blk.0.attn_q.weight");  // GGUF names only for GGUF models
  // Tied: lm_head.weight only as a copy of the embedding given beside it.
  std::vector<float> embedding(static_cast<size_t>(spec.vocab_size) * 64, 0.25f);
  expect_refused({{"lm_head.weight", embedding.data(), DType::f32, {spec.vocab_size, 64}, false}},
                 "tied");
  EXPECT_EQ(model.weights_version, 0u);
  EXPECT_EQ(model.system_fingerprint(), fingerprint);
  EXPECT_TRUE(all_same(test::first_samples_together(model, reqs), before));

  Engine engine(model, {});
  swap_weights(
      engine, model,
      {{"model.embed_tokens.weight", embedding.data(), DType::f32, {spec.vocab_size, 64}, false},
       {"lm_head.weight", embedding.data(), DType::f32, {spec.vocab_size, 64}, false}},
      InFlight::finish);
  EXPECT_EQ(model.weights_version, 1u);
  EXPECT_NE(model.system_fingerprint(), fingerprint);
}

TEST(EnginePause, NewRequestsWaitUntilResumeAndNoneIsDropped) {
  test::RandomHfSpec spec;
  const test::RandomHfFolder folder("update-pause", spec);
  LoadedModel model = load_model(folder.path(), {});
  const std::vector<EngineRequest> reqs = requests(spec.vocab_size);
  const auto alone = test::first_samples_together(model, reqs);
  Engine engine(model, {});
  engine.start();
  engine.pause();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const EngineRequest& r : reqs) streams.push_back(engine.submit(r));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (const auto& s : streams) EXPECT_FALSE(s->try_next().has_value());
  EXPECT_EQ(engine.waiting_count(), reqs.size());
  engine.resume();
  std::vector<test::SampleResult> got;
  for (const auto& s : streams) {
    Completion c = collect(*s, 1).at(0);
    got.push_back({c.tokens, c.logprobs, c.text, c.finish, c.stop_reason});
  }
  engine.stop();
  EXPECT_TRUE(all_same(got, alone));
}

}  // namespace
}  // namespace bx
