// Top logprobs: the ordering rule (value descending, ties to the lower id, NaN last) and, through
// the engine on the shared model, that each token's alternatives come from the same unmodified
// log_softmax row as its logprob and do not change what is generated.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "engine/request.h"
#include "support/engine_runner.h"
#include "support/shared_model.h"

namespace bx {
namespace {

TEST(TopLogprobs, OrdersByValueThenLowerIdWithNanLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> row = {-2.0f, nan, -1.0f, -2.0f, -0.5f, -1.0f};
  const std::vector<TokenLogprob> top = top_logprobs(row, 6);
  const std::vector<int32_t> want = {4, 2, 5, 0, 3, 1};
  ASSERT_EQ(top.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(top[i].token, want[i]) << i;
  EXPECT_EQ(top[0].logprob, -0.5f);
  EXPECT_TRUE(std::isnan(top[5].logprob));
  EXPECT_EQ(top_logprobs(row, 2).size(), 2u);
  EXPECT_EQ(top_logprobs(row, 99).size(), row.size());  // clamped to the row
  EXPECT_TRUE(top_logprobs(row, 0).empty());
}

class TopLogprobsEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_stories260k()) GTEST_SKIP() << test::stories260k_path() << " not found";
    model_ = load_model(test::stories260k_path(), LoadOptions{});
  }
  LoadedModel model_;
};

TEST_F(TopLogprobsEngine, AlternativesComeFromTheChosenTokensRow) {
  EngineRequest r;
  r.prompt = model_.tokenizer->encode("Once upon a time", true);
  r.max_tokens = 12;
  r.sampling.temperature = 0.0f;
  r.top_logprobs = 5;
  Engine engine(model_, {});
  const auto stream = engine.submit(r);
  engine.run_until_idle();
  int tokens = 0;
  while (std::optional<EngineEvent> e = stream->try_next()) {
    if (e->kind != EngineEvent::Kind::token) continue;
    ++tokens;
    ASSERT_EQ(e->top_logprobs.size(), 5u);
    // Greedy: the chosen id is the row's argmax, so it heads the list with the same bits.
    EXPECT_EQ(e->top_logprobs[0].token, e->token);
    EXPECT_EQ(std::bit_cast<uint32_t>(e->top_logprobs[0].logprob),
              std::bit_cast<uint32_t>(e->logprob));
    for (size_t i = 1; i < 5; ++i) {
      EXPECT_GE(e->top_logprobs[i - 1].logprob, e->top_logprobs[i].logprob);
    }
  }
  EXPECT_EQ(tokens, 12);

  // Asking for alternatives changes no generated bit, also when sampling.
  r.sampling.temperature = 0.9f;
  r.sampling.seed = 7;
  const test::RequestResult with = test::run_alone(model_, r);
  r.top_logprobs = 0;
  const test::RequestResult without = test::run_alone(model_, r);
  ASSERT_EQ(with.samples.size(), 1u);
  ASSERT_EQ(without.samples.size(), 1u);
  EXPECT_TRUE(with.samples[0].same_bits(without.samples[0]));
}

TEST_F(TopLogprobsEngine, OutOfRangeCountIsRejected) {
  EngineRequest r;
  r.prompt = {1};
  r.top_logprobs = EngineRequest::kMaxTopLogprobs + 1;
  Engine engine(model_, {});
  EXPECT_THROW(engine.submit(r), Error);
  r.top_logprobs = -1;
  EXPECT_THROW(engine.submit(r), Error);
}

}  // namespace
}  // namespace bx
