// Generated-weight models (model/random_model.h), the KV pool sizing (engine/kv_sizing.h) and
// the greedy-row path of the engine (EngineOptions::device_greedy), on the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "core/counter_hash.h"
#include "engine/engine.h"
#include "engine/kv_sizing.h"
#include "kernels/rows.h"
#include "model/loader.h"
#include "model/random_model.h"
#include "support/engine_runner.h"

namespace bx {
namespace {

LoadOptions cpu_options() {
  LoadOptions o;
  o.threads = 2;
  o.max_batch_tokens = 256;
  o.max_logit_rows = 64;
  return o;
}

void expect_error(const std::string& spec, const std::string& fragment) {
  try {
    parse_random_model_spec(spec);
    ADD_FAILURE() << spec << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(RandomModelSpec, ParsesNameAndSeed) {
  EXPECT_TRUE(is_random_model_spec("random:qwen3-8b"));
  EXPECT_FALSE(is_random_model_spec("models/random.gguf"));
  RandomModelSpec s = parse_random_model_spec("random:qwen3-8b");
  EXPECT_EQ(s.name, "qwen3-8b");
  EXPECT_EQ(s.seed, 0u);
  s = parse_random_model_spec("random:qwen3-tiny:18446744073709551615");
  EXPECT_EQ(s.name, "qwen3-tiny");
  EXPECT_EQ(s.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(random_model_weights_hash(s), "random:qwen3-tiny:seed=18446744073709551615:gen1");
  expect_error("random:llama-7b", "unknown");
  expect_error("random:qwen3-8b:x1", "seed 'x1'");
  expect_error("random:qwen3-8b:", "seed ''");
  expect_error("random:qwen3-8b:-1", "seed '-1'");
}

TEST(RandomModelSpec, Qwen3_8bHasTheRealShape) {
  const ModelConfig c = random_model_config("qwen3-8b");
  EXPECT_EQ(c.dim, 4096);
  EXPECT_EQ(c.n_layers, 36);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.ffn_dim, 12288);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.tied_output);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_layout, RopeLayout::half_split);
}

TEST(RandomModelSpec, Qwen3_8bIsRefusedOnTheCpu) {
  try {
    load_model("random:qwen3-8b", cpu_options());
    ADD_FAILURE() << "loaded 8 B parameters on the CPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--backend cuda"), std::string::npos) << e.what();
  }
}

TEST(CounterHash, UniformWithTheStatedMoments) {
  const uint64_t stream = hash_stream(7, 42);
  double sum = 0, sum2 = 0;
  const int n = 1 << 16;
  std::set<float> distinct;
  for (int i = 0; i < n; ++i) {
    const float u = hash_uniform_pm1(stream, static_cast<uint64_t>(i));
    ASSERT_GE(u, -1.0f);
    ASSERT_LT(u, 1.0f);
    sum += u, sum2 += static_cast<double>(u) * u;
    distinct.insert(u);
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum2 / n, 1.0 / 3.0, 0.01);  // variance of U[-1, 1)
  EXPECT_GT(distinct.size(), static_cast<size_t>(n) * 99 / 100);
  EXPECT_NE(hash_uniform_pm1(hash_stream(7, 42), 5), hash_uniform_pm1(hash_stream(8, 42), 5));
  EXPECT_NE(hash_uniform_pm1(hash_stream(7, 42), 5), hash_uniform_pm1(hash_stream(7, 43), 5));
}

TEST(RandomModel, CpuGenerateMatrixHoldsTheHashValues) {
  LoadedModel m = load_model("random:qwen3-tiny", cpu_options());
  const Tensor t = m.backend->generate_matrix(3, 5, DType::f32, 99, 0.5f, 2.0f);
  std::vector<float> host(15);
  m.backend->copy_to_host(t, host.data());
  for (size_t i = 0; i < host.size(); ++i) {
    EXPECT_EQ(host[i], 0.5f + 2.0f * hash_uniform_pm1(99, i)) << i;
  }
}

std::vector<float> first_logits(LoadedModel& m, std::vector<int32_t> prompt) {
  const size_t T = prompt.size();
  std::vector<int32_t> positions(T);
  for (size_t t = 0; t < T; ++t) positions[t] = static_cast<int32_t>(t);
  m.reserve_kv_blocks(8);
  std::vector<int32_t> table = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<const int32_t*> tables(T, table.data());
  std::vector<int32_t> rows = {static_cast<int32_t>(T - 1)};
  std::vector<float> logits(static_cast<size_t>(m.config.vocab_size));
  m.model->forward(ForwardBatch{prompt, positions, tables, rows}, logits.data(), nullptr);
  return logits;
}

// "-q4k": the same shape, matmul weights as Q4_K blocks (Q8_0 where K is not whole super-blocks).
TEST(RandomModelSpec, Q4kSuffixKeepsTheShapeAndBlocksTheWeights) {
  const RandomModelSpec s = parse_random_model_spec("random:qwen3-8b-q4k:2");
  EXPECT_EQ(s.name, "qwen3-8b-q4k");
  EXPECT_EQ(s.base_name, "qwen3-8b");
  EXPECT_EQ(s.matmul_dtype, DType::q4_k);
  EXPECT_EQ(random_model_weights_hash(s), "random:qwen3-8b-q4k:seed=2:gen1");
  EXPECT_EQ(parse_random_model_spec("random:qwen3-tiny").matmul_dtype, DType::f32);
  expect_error("random:qwen3-moe-tiny-q4k", "dense models");
  expect_error("random:qwen3-q4k", "unknown");

  LoadedModel q = load_model("random:qwen3-tiny-q4k:3", cpu_options());
  LoadedModel f = load_model("random:qwen3-tiny:3", cpu_options());
  EXPECT_EQ(q.weight_storage, "Q4_K+Q8_0");
  EXPECT_NE(q.system_fingerprint(), f.system_fingerprint());
  // Per layer: o (K = 256) is Q4_K, q, k, v, gate, up (K = 128) and down (K = 384) Q8_0; the
  // output projection (K = 128) Q8_0: 4.5 and 8.5 bits a weight.
  const ModelConfig& c = q.config;
  const int64_t D = c.dim, F = c.ffn_dim, qd = c.n_heads * c.head_dim,
                kv = c.n_kv_heads * c.head_dim, V = c.vocab_size;
  const int64_t q4k = D * qd, q8 = D * (qd + 2 * kv) + 3 * F * D;
  EXPECT_EQ(q.matmul_weight_bytes, c.n_layers * (q4k / 256 * 144 + q8 / 32 * 34) + V * D / 32 * 34);
  const std::vector<int32_t> prompt = {5, 17, 300, 1000, 2};
  const std::vector<float> lq = first_logits(q, prompt);
  double mean = 0, var = 0;
  for (float v : lq) mean += v;
  mean /= static_cast<double>(lq.size());
  for (float v : lq) var += (v - mean) * (v - mean);
  const double stddev = std::sqrt(var / static_cast<double>(lq.size()));
  EXPECT_GT(stddev, 0.3);  // activations neither vanish nor explode through the blocks
  EXPECT_LT(stddev, 30.0);
}

TEST(RandomModel, TinyIsReproducibleSeededAndNotDegenerate) {
  LoadedModel a = load_model("random:qwen3-tiny:3", cpu_options());
  LoadedModel b = load_model("random:qwen3-tiny:3", cpu_options());
  LoadedModel c = load_model("random:qwen3-tiny:4", cpu_options());
  EXPECT_EQ(a.weights_hash, "random:qwen3-tiny:seed=3:gen1");
  EXPECT_EQ(a.system_fingerprint(), b.system_fingerprint());
  EXPECT_NE(a.system_fingerprint(), c.system_fingerprint());
  EXPECT_EQ(a.tokenizer, nullptr);
  EXPECT_TRUE(a.config.eos_token_ids.empty());
  const std::vector<int32_t> prompt = {5, 17, 300, 1000, 2};
  const std::vector<float> la = first_logits(a, prompt), lb = first_logits(b, prompt),
                           lc = first_logits(c, prompt);
  EXPECT_EQ(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0);
  EXPECT_NE(std::memcmp(la.data(), lc.data(), la.size() * sizeof(float)), 0);
  // Spread logits: standard deviation of order 1 and a clear maximum.
  double mean = 0, var = 0;
  for (float v : la) mean += v;
  mean /= static_cast<double>(la.size());
  for (float v : la) var += (v - mean) * (v - mean);
  const double stddev = std::sqrt(var / static_cast<double>(la.size()));
  EXPECT_GT(stddev, 0.3);
  EXPECT_LT(stddev, 30.0);
  const float top = la[static_cast<size_t>(argmax(la.data(), static_cast<int64_t>(la.size())))];
  EXPECT_GT(top - mean, 2.0 * stddev);
}

std::vector<EngineRequest> mixed_requests(int vocab) {
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 10; ++i) {
    EngineRequest r;
    for (int t = 0; t < 3 + (i * 7) % 40; ++t) r.prompt.push_back((t * 31 + i * 17) % vocab);
    r.max_tokens = 5 + i % 7;
    r.sampling.temperature = i % 3 == 0 ? 0.8f : 0.0f;  // sampled rows take the full path
    r.sampling.seed = 11 + static_cast<uint64_t>(i);
    r.top_logprobs = i % 4 == 1 ? 3 : 0;  // greedy rows that need the full row
    r.min_tokens = i % 5 == 2 ? 2 : 0;
    r.stop_token_ids = {7};
    requests.push_back(r);
  }
  return requests;
}

// Greedy rows on the device vs full rows on the host, and the host Sampler on 1 vs 3 threads.
TEST(RandomModel, DeviceGreedyAndSamplerThreadsGiveTheSameBits) {
  LoadedModel m = load_model("random:qwen3-tiny:1", cpu_options());
  const std::vector<EngineRequest> rs = mixed_requests(m.config.vocab_size);
  EngineOptions full, greedy;
  full.device_greedy = false;
  full.sampler_threads = 1;
  greedy.device_greedy = true;
  greedy.sampler_threads = 3;
  greedy.max_batch_tokens = 64;  // and another schedule
  const auto a = test::run_together(m, rs, full), b = test::run_together(m, rs, greedy);
  std::set<int32_t> firsts;
  for (size_t i = 0; i < rs.size(); ++i) {
    ASSERT_EQ(a[i].samples.size(), 1u);
    ASSERT_EQ(b[i].samples.size(), 1u);
    EXPECT_TRUE(a[i].samples[0].same_bits(b[i].samples[0])) << "request " << i;
    EXPECT_FALSE(a[i].samples[0].tokens.empty());
    firsts.insert(a[i].samples[0].tokens.at(0));
  }
  EXPECT_GT(firsts.size(), 3u);  // the prompts lead to different tokens
}

TEST(KvSizing, TokensFromDeviceMemory) {
  const KvCacheShape qwen3_8b{36, 0, 16, 8, 128};
  EXPECT_EQ(kv_bytes_per_token(qwen3_8b, 2), 147456);  // 144 KiB per token in BF16
  // 60 GiB free, 0.9 of it: floor(0.9 * 60 GiB / 144 KiB) = 393216 tokens, whole blocks.
  const int64_t gib = int64_t{1} << 30;
  EXPECT_EQ(kv_tokens_for_memory(60 * gib, 0.9, 147456, 16, 40960, 256), 393216);
  // Rounded down to whole blocks.
  EXPECT_EQ(kv_tokens_for_memory(1000, 1.0, 10, 16, 1, 1000), 96);
  EXPECT_EQ(kv_tokens_for_memory(1000, 0.5, 10, 16, 1, 1000), 48);
  // At most max_seqs contexts, rounded up to whole blocks: 3 * 20 = 60 -> 64.
  EXPECT_EQ(kv_tokens_for_memory(60 * gib, 0.9, 10, 16, 20, 3), 64);
  EXPECT_THROW(kv_tokens_for_memory(1 * gib, 0.9, 147456, 16, 40960, 1), Error);
  EXPECT_THROW(kv_tokens_for_memory(1 * gib, 0.0, 147456, 16, 1, 1), Error);
  EXPECT_THROW(kv_tokens_for_memory(1 * gib, 1.5, 147456, 16, 1, 1), Error);
}

TEST(KvSizing, HostPoolIsSizedByTheSequences) {
  EXPECT_EQ(kv_tokens_for_host(4096, 4, 1024), 16384);
  EXPECT_EQ(kv_tokens_for_host(4096, 1000, 1024), int64_t{1} << 20);  // 1 GiB cap
  EXPECT_EQ(kv_tokens_for_host(40960, 64, int64_t{1} << 20), 40960);  // one context at least
  LoadedModel m = load_model("random:qwen3-tiny", cpu_options());
  EXPECT_EQ(m.backend->kv_memory_available(), -1);
  EngineOptions o;
  o.max_seqs = 4;
  Engine engine(m, o);
  EXPECT_EQ(engine.options().kv_cache_tokens, 4 * 4096);
}

}  // namespace
}  // namespace bx
