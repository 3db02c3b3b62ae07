// Gemma 3 on the GPU: random:gemma3-tiny (sliding windows of 80 positions on three of its four
// layers, its own RoPE table for them, GELU-tanh MLP, post-norms, scaled embedding).
//
//   T2 accurate   the CUDA backend's logits against the CPU backend's over a 300-token prompt
//                 (windows starting mid-chunk), within bf16 bounds; and those of a prompt past
//                 the 512-position attention split, where whole splits fall before the window.
//   T3 invariant  each request alone (full rows, eager launches) gives the bits it gives inside
//                 a batch with chunked prefill, device greedy and decode steps replayed as CUDA
//                 graphs, for prompts up to 700 tokens (decode crossing split boundaries with
//                 the window past them).
// The windowed attention op itself is a case of backend_ops_cuda_test (CUDA against the CPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "backend/cuda_backend.h"
#include "engine/engine.h"
#include "model/loader.h"
#include "support/cuda_test_data.h"
#include "support/engine_runner.h"

namespace bx {
namespace {

LoadedModel load(bool cuda) {
  LoadOptions options;
  options.threads = 2;
  options.max_batch_tokens = 1024;
  options.max_logit_rows = 64;
  if (cuda) options.make_backend = [] { return std::make_unique<CudaBackend>(); };
  return load_model("random:gemma3-tiny:2", options);
}

// Relative RMS difference of the logits of every position of `tokens`, CUDA against the CPU.
double logits_rms_difference(LoadedModel& gpu, LoadedModel& cpu,
                             const std::vector<int32_t>& tokens) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  std::vector<int32_t> positions(tokens.size()), rows(tokens.size());
  for (size_t t = 0; t < tokens.size(); ++t) positions[t] = rows[t] = static_cast<int32_t>(t);
  const int64_t blocks = (T + gpu.kv_shape.block_size - 1) / gpu.kv_shape.block_size;
  gpu.reserve_kv_blocks(blocks), cpu.reserve_kv_blocks(blocks);
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) table[static_cast<size_t>(b)] = static_cast<int32_t>(b);
  const std::vector<const int32_t*> tables(tokens.size(), table.data());
  const size_t V = static_cast<size_t>(gpu.config.vocab_size);
  std::vector<float> a(V * 64), b(V * 64);
  double num = 0, den = 0;
  // 64 logit rows a call (the model's limit), the whole prompt in every call's KV.
  for (int64_t first = 0; first < T; first += 64) {
    const int64_t n = std::min<int64_t>(64, T - first);
    const std::vector<int32_t> some(rows.begin() + first, rows.begin() + first + n);
    const ForwardBatch batch{tokens, positions, tables, some};
    gpu.model->forward(batch, a.data(), nullptr);
    cpu.model->forward(batch, b.data(), nullptr);
    for (size_t i = 0; i < static_cast<size_t>(n) * V; ++i) {
      num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
      den += static_cast<double>(b[i]) * b[i];
    }
  }
  return std::sqrt(num / den);
}

TEST(Gemma3Cuda, TinyModelMatchesCpuWithinBf16Bounds) {
  BX_REQUIRE_HOPPER();
  LoadedModel gpu = load(true), cpu = load(false);
  EXPECT_NE(gpu.system_fingerprint(), cpu.system_fingerprint());
  for (const int length : {300, 700}) {
    std::vector<int32_t> tokens;
    for (int t = 0; t < length; ++t) tokens.push_back((t * 37 + t * t + 3) % 1024);
    const double rms = logits_rms_difference(gpu, cpu, tokens);
    std::printf("gemma3-tiny %d tokens: CUDA vs CPU relative RMS %.3g\n", length, rms);
    EXPECT_LT(rms, 3e-2) << length << " tokens";
  }
}

std::vector<EngineRequest> requests(int count) {
  std::vector<EngineRequest> out;
  for (int i = 0; i < count; ++i) {
    EngineRequest r;
    const int length = 1 + (i * 97) % 700;
    for (int t = 0; t < length; ++t) r.prompt.push_back((t * 31 + i * 17 + 1) % 1024);
    r.max_tokens = 24 - i % 3;
    r.sampling.temperature = i % 3 == 2 ? 0.7f : 0.0f;
    r.sampling.seed = 40 + static_cast<uint64_t>(i);
    r.ignore_eos = true;
    out.push_back(r);
  }
  return out;
}

TEST(Gemma3Cuda, BatchWithGraphsEqualsEachRequestAlone) {
  BX_REQUIRE_HOPPER();
  LoadedModel m = load(true);
  const std::vector<EngineRequest> rs = requests(16);
  EngineOptions batch_options;
  batch_options.max_batch_tokens = 96;  // chunked prefill, mixed prefill and decode steps
  const int64_t replayed_before = m.model->replayed_steps();
  const std::vector<test::SampleResult> batched =
      test::first_samples_together(m, rs, batch_options);
  EXPECT_GT(m.model->replayed_steps(), replayed_before) << "no decode step was replayed";
  m.model->set_replay(false);
  EngineOptions alone_options;
  alone_options.device_greedy = false;
  int differ = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    const test::SampleResult alone = test::run_alone(m, rs[i], alone_options).samples.at(0);
    EXPECT_EQ(alone.tokens.size(), static_cast<size_t>(rs[i].max_tokens));
    if (!alone.same_bits(batched[i])) ++differ;
  }
  std::printf("gemma3-tiny on CUDA: %d of %zu requests differ alone vs batched\n", differ,
              rs.size());
  EXPECT_EQ(differ, 0);
}

}  // namespace
}  // namespace bx
