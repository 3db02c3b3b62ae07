// The engine's parts and rules: the block pool and prefix cache, stop strings, stopping rules,
// n > 1, cancellation returning every block, validation errors, and the engine's own thread.
// (The invariance matrix is in engine_invariance_test.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "engine/block_pool.h"
#include "engine/stop_strings.h"
#include "support/engine_runner.h"
#include "support/random_model.h"
#include "support/shared_model.h"

namespace bx {
namespace {

// ---- block pool ----

TEST(BlockPool, AllocatesEveryBlockOnceThenRunsDry) {
  BlockPool pool(4, 16);
  std::vector<int32_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(pool.allocate().value());
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_FALSE(pool.allocate().has_value());
  EXPECT_EQ(pool.free_blocks(), 0);
  pool.release(2);
  EXPECT_EQ(pool.allocate().value(), 2);
}

TEST(BlockPool, ReferenceCountsKeepSharedBlocksHeld) {
  BlockPool pool(2, 4);
  const int32_t b = pool.allocate().value();
  pool.retain(b);
  pool.release(b);
  EXPECT_EQ(pool.held_blocks(), 1);
  pool.release(b);
  EXPECT_EQ(pool.held_blocks(), 0);
  EXPECT_EQ(pool.free_blocks(), 2);
  EXPECT_THROW(pool.release(b), Error);  // not held any more
}

TEST(BlockPool, PublishedBlocksAreFoundByKeyAndTokensAndEvictedOldestFirst) {
  BlockPool pool(3, 2);
  const std::vector<int32_t> t1 = {5, 6}, t2 = {7, 8}, t3 = {9, 9};
  const BlockKey k1 = block_key({}, t1), k2 = block_key(k1, t2), k3 = block_key({}, t3);
  const int32_t b1 = pool.allocate().value(), b2 = pool.allocate().value();
  const int32_t b3 = pool.allocate().value();
  EXPECT_TRUE(pool.publish(b1, k1, {}, t1));
  EXPECT_TRUE(pool.publish(b2, k2, k1, t2));
  EXPECT_TRUE(pool.publish(b3, k3, {}, t3));
  EXPECT_FALSE(pool.publish(b3, k1, {}, t1));  // a key names one block
  EXPECT_EQ(pool.find(k2, k1, t2), b2);
  // The same key with other tokens or another parent is a miss, never a wrong block.
  EXPECT_FALSE(pool.find(k2, k1, t1).has_value());
  EXPECT_FALSE(pool.find(k2, {}, t2).has_value());
  // Released published blocks stay findable (idle) until evicted, oldest release first.
  pool.release(b2);
  pool.release(b1);
  pool.release(b3);
  EXPECT_EQ(pool.free_blocks(), 3);
  EXPECT_EQ(pool.allocate().value(), b2);
  EXPECT_FALSE(pool.find(k2, k1, t2).has_value());
  EXPECT_EQ(pool.find(k1, {}, t1), b1);
  pool.retain(b1);  // reused: leaves the eviction order
  EXPECT_EQ(pool.allocate().value(), b3);
  EXPECT_FALSE(pool.allocate().has_value());
}

TEST(BlockPool, KeysChainTheirParents) {
  const std::vector<int32_t> t = {1, 2, 3};
  EXPECT_FALSE(block_key({}, t) == block_key(block_key({}, t), t));
  EXPECT_TRUE(block_key({}, t) == block_key({}, t));
}

// ---- stop strings ----

std::string feed(StopStringMatcher& m, const std::vector<std::string>& pieces, bool* stopped,
                 std::string* which = nullptr) {
  std::string out;
  *stopped = false;
  for (const std::string& p : pieces) {
    StopStringMatcher::Result r = m.push(p);
    out += r.text;
    if (r.stopped) {
      *stopped = true;
      if (which) *which = r.stop;
      return out;
    }
  }
  return out + m.flush();
}

TEST(StopStrings, FoundAcrossPiecesAndNeverEmitted) {
  bool stopped = false;
  StopStringMatcher m({"END"});
  EXPECT_EQ(feed(m, {"hello E", "N", "D and more"}, &stopped), "hello ");
  EXPECT_TRUE(stopped);
}

TEST(StopStrings, HeldTextIsReleasedWhenItCannotStartAStop) {
  StopStringMatcher m({"abc"});
  EXPECT_EQ(m.push("xxab").text, "xx");  // "ab" might become "abc"
  EXPECT_EQ(m.push("d").text, "abd");
  EXPECT_EQ(m.push("a").text, "");
  EXPECT_EQ(m.flush(), "a");
}

TEST(StopStrings, EarliestOccurrenceWinsAndTiesGoToTheLongest) {
  bool stopped = false;
  std::string which;
  StopStringMatcher m({"b", "ab", "abc"});
  EXPECT_EQ(feed(m, {"xabcd"}, &stopped, &which), "x");
  EXPECT_EQ(which, "abc");
  StopStringMatcher none({});
  EXPECT_EQ(feed(none, {"a", "b"}, &stopped), "ab");
  EXPECT_FALSE(stopped);
}

// ---- the engine on the shared model ----

class EngineRules : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_stories260k()) return;
    LoadOptions o;
    o.max_batch_tokens = 512;
    o.max_logit_rows = 64;
    model_ = new LoadedModel(load_model(test::stories260k_path(), o));
  }
  static void TearDownTestSuite() { delete model_; }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << test::stories260k_path() << " not found";
  }
  static EngineRequest greedy(const std::string& text, int max_tokens) {
    EngineRequest r;
    r.prompt = model_->tokenizer->encode(text, /*add_bos=*/true);
    r.sampling.temperature = 0.0f;
    r.max_tokens = max_tokens;
    return r;
  }
  static inline LoadedModel* model_ = nullptr;
};

TEST_F(EngineRules, StopTokenIdEndsTheSampleAndIsNotInTheText) {
  const test::RequestResult free_run = test::run_alone(*model_, greedy("Once upon a time", 20));
  const std::vector<int32_t>& t = free_run.samples.at(0).tokens;
  ASSERT_GE(t.size(), 6u);
  EngineRequest r = greedy("Once upon a time", 20);
  r.stop_token_ids = {t[4]};
  const test::SampleResult s = test::run_alone(*model_, r).samples.at(0);
  const size_t first = static_cast<size_t>(std::find(t.begin(), t.end(), t[4]) - t.begin());
  EXPECT_EQ(s.tokens, std::vector<int32_t>(t.begin(), t.begin() + static_cast<ptrdiff_t>(first) + 1));
  EXPECT_EQ(s.finish, FinishReason::stop);
  EXPECT_EQ(s.stop_reason, "token:" + std::to_string(t[4]));
  EXPECT_EQ(s.text, model_->tokenizer->decode(std::vector<int32_t>(
                        t.begin(), t.begin() + static_cast<ptrdiff_t>(first))));
}

TEST_F(EngineRules, EosEndsUnlessIgnoredOrBeforeMinTokens) {
  // stories260K almost never says EOS (its stories end with BOS); a random model with a flat
  // distribution does, within a few hundred sampled tokens. Find a seed whose run ends so.
  test::RandomLlamaSpec spec;
  spec.seed = 11;
  test::RandomLlamaFile file("engine-eos", spec);
  LoadedModel model = load_model(file.path(), LoadOptions{});
  EngineRequest r;
  r.prompt = {model.tokenizer->bos_id()};
  r.max_tokens = 200;
  r.sampling.temperature = 8.0f;  // nearly uniform: EOS about once in 320 tokens
  const int32_t eos = model.tokenizer->eos_id();
  test::SampleResult ended;
  for (uint64_t seed = 0; seed < 100 && ended.finish != FinishReason::stop; ++seed) {
    r.sampling.seed = seed;
    ended = test::run_alone(model, r).samples.at(0);
  }
  ASSERT_EQ(ended.finish, FinishReason::stop) << "no seed in 0..99 ended with EOS";
  ASSERT_EQ(ended.tokens.back(), eos);
  EXPECT_FALSE(ended.stop_reason.has_value());
  const size_t n = ended.tokens.size();

  r.max_tokens = static_cast<int>(n) + 5;
  r.ignore_eos = true;
  const test::SampleResult ignored = test::run_alone(model, r).samples.at(0);
  EXPECT_EQ(ignored.finish, FinishReason::length);
  EXPECT_EQ(ignored.tokens.size(), n + 5);
  EXPECT_EQ(ignored.tokens[n - 1], eos);
  EXPECT_TRUE(std::equal(ended.logprobs.begin(), ended.logprobs.end(), ignored.logprobs.begin(),
                         [](float a, float b) {
                           return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
                         }));

  r.ignore_eos = false;
  r.min_tokens = static_cast<int>(n) + 2;
  const test::SampleResult min = test::run_alone(model, r).samples.at(0);
  ASSERT_GE(min.tokens.size(), n + 2);
  for (size_t i = 0; i + 1 < static_cast<size_t>(r.min_tokens); ++i) {
    EXPECT_NE(min.tokens[i], eos) << i;
  }
}

TEST_F(EngineRules, MaxTokensBeyondTheContextEndsAtTheContext) {
  const int32_t context = model_->config.context_length;
  EngineRequest r;
  r.prompt.assign(static_cast<size_t>(context - 3), model_->tokenizer->bos_id() + 300);
  r.prompt[0] = model_->tokenizer->bos_id();
  r.sampling.temperature = 0.0f;
  r.max_tokens = 100;
  r.ignore_eos = true;
  const test::SampleResult s = test::run_alone(*model_, r).samples.at(0);
  EXPECT_EQ(s.tokens.size(), 3u);
  EXPECT_EQ(s.finish, FinishReason::length);
}

TEST_F(EngineRules, SampleZeroOfTwoEqualsTheSingleSample) {
  EngineRequest r = greedy("Lily and Ben", 24);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 5;
  const test::RequestResult one = test::run_alone(*model_, r);
  r.n = 2;
  const test::RequestResult two = test::run_alone(*model_, r);
  ASSERT_EQ(two.samples.size(), 2u);
  EXPECT_TRUE(two.samples[0].same_bits(one.samples.at(0)));
  EXPECT_NE(two.samples[0].tokens, two.samples[1].tokens);
}

TEST_F(EngineRules, BadRequestsAreRejectedWithAClearMessage) {
  Engine engine(*model_, EngineOptions{});
  const auto message = [&](EngineRequest r) -> std::string {
    try {
      engine.submit(std::move(r));
    } catch (const Error& e) {
      return e.what();
    }
    return "(accepted)";
  };
  const int32_t vocab = model_->config.vocab_size;
  EngineRequest ok = greedy("Hi", 4);
  EngineRequest r = ok;
  r.prompt.clear();
  EXPECT_NE(message(r).find("the prompt has no tokens"), std::string::npos);
  r = ok, r.prompt.push_back(vocab);
  EXPECT_NE(message(r).find("prompt token id 512 is outside the vocabulary [0, 512)"),
            std::string::npos);
  r = ok, r.prompt.assign(static_cast<size_t>(model_->config.context_length), 1);
  EXPECT_NE(message(r).find("but the model's context holds 2048"), std::string::npos);
  r = ok, r.max_tokens = -1;
  EXPECT_NE(message(r).find("max_tokens is -1"), std::string::npos);
  r = ok, r.min_tokens = 5;
  EXPECT_NE(message(r).find("min_tokens is 5, expected 0 to max_tokens (4)"), std::string::npos);
  r = ok, r.n = 0;
  EXPECT_NE(message(r).find("n is 0, expected 1 to 64"), std::string::npos);
  r = ok, r.stop = {""};
  EXPECT_NE(message(r).find("a stop string is empty"), std::string::npos);
  r = ok, r.stop_token_ids = {-1};
  EXPECT_NE(message(r).find("stop token id -1"), std::string::npos);
  r = ok, r.sampling.temperature = -1.0f;
  EXPECT_NE(message(r).find("temperature"), std::string::npos);
  r = ok, r.score_ids = {1, 2};
  EXPECT_NE(message(r).find("needs max_tokens = 0 and n = 1"), std::string::npos);
  EXPECT_EQ(message(ok), "(accepted)");

  // A request that could never fit the pool alone is refused when submitted.
  EngineOptions small;
  small.kv_cache_tokens = 64;
  Engine tiny(*model_, small);
  EngineRequest big = greedy("Hi", 100);
  try {
    tiny.submit(big);
    ADD_FAILURE() << "a request larger than the pool was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("but the pool holds 4 blocks"), std::string::npos)
        << e.what();
  }
}

// Cancelling 1,000 requests at random moments (queued, mid-prefill, mid-decode, after the end)
// returns every KV block to the pool; no request is left without its finished events.
TEST_F(EngineRules, CancellingAThousandRequestsReturnsThePoolToFull) {
  EngineOptions o;
  o.max_batch_tokens = 256;
  o.max_seqs = 32;
  o.prefill_chunk = 24;
  o.kv_cache_tokens = 1024;  // small: preemption happens too
  Engine engine(*model_, o);
  std::mt19937 rng(7);
  const std::vector<int32_t> text =
      model_->tokenizer->encode("Once upon a time there was a dog. The dog liked to run in the "
                                "park with his ball and his friends every day.", true);
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<std::shared_ptr<RequestStream>> live;
  int cancelled = 0;
  for (int i = 0; i < 1000; ++i) {
    EngineRequest r;
    r.prompt.assign(text.begin(), text.begin() + 1 + static_cast<ptrdiff_t>(rng() % text.size()));
    r.max_tokens = 1 + static_cast<int>(rng() % 40);
    r.sampling.temperature = 0.9f;
    r.sampling.seed = static_cast<uint64_t>(i);
    r.n = 1 + static_cast<int>(rng() % 2);
    streams.push_back(engine.submit(r));
    live.push_back(streams.back());
    if (rng() % 3 == 0) engine.step();
    // Cancel a random live request now and then.
    if (rng() % 2 == 0 && !live.empty()) {
      const size_t k = rng() % live.size();
      live[k]->cancel();
      ++cancelled;
      live.erase(live.begin() + static_cast<ptrdiff_t>(k));
    }
  }
  for (const auto& s : live) s->cancel();  // and everything still live, mid-flight
  engine.run_until_idle();
  EXPECT_EQ(engine.pool().held_blocks(), 0);
  EXPECT_EQ(engine.pool().free_blocks(), engine.pool().total_blocks());
  EXPECT_EQ(engine.running_count(), 0u);
  EXPECT_EQ(engine.waiting_count(), 0u);
  int finished_cancelled = 0;
  for (const auto& s : streams) {
    test::RequestResult r;
    test::drain(*s, r);
    EXPECT_TRUE(s->done());
    for (const test::SampleResult& sample : r.samples) {
      finished_cancelled += sample.finish == FinishReason::cancelled ? 1 : 0;
    }
  }
  std::printf("cancel: %d cancelled at random, %d samples ended as cancelled, %llu preemptions\n",
              cancelled, finished_cancelled,
              static_cast<unsigned long long>(engine.stats().preemptions));
  EXPECT_GT(finished_cancelled, 0);
}

// The engine's own thread with submissions from several client threads: each result equals the
// request run alone.
TEST_F(EngineRules, OwnThreadWithConcurrentClients) {
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 12; ++i) {
    EngineRequest r = greedy(i % 2 ? "The dog" : "Tom had a big red truck.", 10 + i);
    r.sampling.temperature = i % 3 ? 0.8f : 0.0f;
    r.sampling.seed = static_cast<uint64_t>(i);
    requests.push_back(r);
  }
  std::vector<test::RequestResult> alone;
  for (const EngineRequest& r : requests) alone.push_back(test::run_alone(*model_, r));

  Engine engine(*model_, EngineOptions{});
  engine.start();
  std::vector<test::RequestResult> got(requests.size());
  std::vector<std::thread> clients;
  for (size_t c = 0; c < 3; ++c) {
    clients.emplace_back([&, c] {
      for (size_t i = c; i < requests.size(); i += 3) {
        const std::shared_ptr<RequestStream> s = engine.submit(requests[i]);
        while (std::optional<EngineEvent> e = s->next()) {
          if (e->kind == EngineEvent::Kind::token) {
            got[i].samples.resize(1);
            got[i].samples[0].tokens.push_back(e->token);
            got[i].samples[0].logprobs.push_back(e->logprob);
            got[i].samples[0].text += e->text;
          } else if (e->kind == EngineEvent::Kind::finished) {
            got[i].samples.resize(1);
            got[i].samples[0].finish = e->finish;
            got[i].samples[0].stop_reason = e->stop_reason;
            got[i].samples[0].text += e->text;
          }
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  engine.stop();
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_TRUE(got[i].samples.at(0).same_bits(alone[i].samples.at(0))) << "request " << i;
  }
}

}  // namespace
}  // namespace bx
