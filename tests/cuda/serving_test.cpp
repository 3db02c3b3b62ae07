// The GPU serving path: generated weights on the device (random:NAME specs), the greedy choice
// on the device, the KV pool sized from free memory, and the Qwen3-8B shape through the engine.
//
//   T1 exact      generate_matrix on the GPU holds exactly the host's hash values (rounded to
//                 bf16 as upload_matrix rounds them); greedy_rows equals bx::argmax on rows with
//                 ties, NaNs, signed zeros and infinities, and its logprob is the row's own.
//   T2 accurate   random:qwen3-tiny on the GPU against the CPU backend, within bf16 bounds.
//   T3 invariant  with the greedy choice on the device and decode steps replayed as CUDA graphs
//                 (padded to a bucket), each request gives the same bits as with full rows
//                 copied to the host and eager launches, and the same alone as inside a batch —
//                 on the tiny model and on the Qwen3-8B shape. Negative control: fast mode (cuBLAS)
//                 changes some logprob of the 8B model between batch and alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "backend/cuda_backend.h"
#include "core/counter_hash.h"
#include "core/half.h"
#include "engine/engine.h"
#include "kernels/rows.h"
#include "model/loader.h"
#include "support/cuda_test_data.h"
#include "support/engine_runner.h"

namespace bx {
namespace {

LoadedModel load(const std::string& spec, bool cuda,
                 CudaBackend::Mode mode = CudaBackend::Mode::invariant) {
  LoadOptions options;
  options.threads = 2;
  options.max_batch_tokens = 512;
  options.max_logit_rows = 64;
  if (cuda) options.make_backend = [mode] { return std::make_unique<CudaBackend>(mode); };
  return load_model(spec, options);
}

TEST(CudaServing, GenerateMatrixHoldsTheHostValues) {
  BX_REQUIRE_HOPPER();
  CudaBackend backend;
  const int64_t rows = 37, cols = 101;  // stride padded to 104
  const uint64_t stream = hash_stream(5, 77);
  const Tensor w = backend.generate_matrix(rows, cols, DType::f32, stream, 0.25f, 0.5f);
  ASSERT_EQ(w.dtype, DType::bf16);
  std::vector<uint16_t> got(static_cast<size_t>(rows * w.stride));
  cuda::check_cuda(cudaMemcpy(got.data(), w.data, got.size() * 2, cudaMemcpyDeviceToHost), "copy");
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < w.stride; ++c) {
      const uint16_t want =
          c < cols
              ? f32_to_bf16(hash_weight(stream, static_cast<uint64_t>(r * cols + c), 0.25f, 0.5f))
              : 0;
      ASSERT_EQ(got[static_cast<size_t>(r * w.stride + c)], want) << r << ", " << c;
    }
  }
  const Tensor norm = backend.generate_matrix(1, 300, DType::f32, stream, 1.0f, 0.1f);
  ASSERT_EQ(norm.dtype, DType::f32);
  std::vector<float> host(300);
  backend.copy_to_host(norm, host.data());
  for (size_t i = 0; i < host.size(); ++i) ASSERT_EQ(host[i], hash_weight(stream, i, 1.0f, 0.1f));
}

TEST(CudaServing, GreedyRowsEqualsHostArgmax) {
  BX_REQUIRE_HOPPER();
  CudaBackend backend;
  const int64_t V = 5000;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < 9; ++r) {
    std::vector<float> row(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) row[i] = static_cast<float>((i * 37 + r * 11) % 101) - 50.0f;
    rows.push_back(row);  // ties of the maximum 50 at many ids
  }
  rows[1][4999] = 1000.0f;                                              // maximum at the last id
  rows[2].assign(static_cast<size_t>(V), nan);                          // all NaN: id 0
  rows[3][0] = nan;                                                     // NaN first
  rows[4].assign(static_cast<size_t>(V), -0.0f), rows[4][3000] = 0.0f;  // -0 and +0 tie
  rows[5][700] = inf, rows[5][4000] = inf;                              // infinities tie
  rows[6].assign(static_cast<size_t>(V), -inf);                         // all -inf: id 0
  rows[7][2500] = 50.5f;
  const Tensor logits = backend.alloc(DType::f32, 9, V);
  const Tensor logprobs = backend.alloc(DType::f32, 9, V);
  for (int r = 0; r < 9; ++r) {
    cuda::check_cuda(cudaMemcpy(static_cast<float*>(logits.data) + r * V, rows[r].data(),
                                static_cast<size_t>(V) * 4, cudaMemcpyHostToDevice),
                     "upload");
  }
  backend.log_softmax(logits, logprobs);
  std::vector<int32_t> ids(9);
  std::vector<float> chosen(9);
  backend.greedy_rows(logits, logprobs, ids.data(), chosen.data());
  std::vector<float> host_logprobs(static_cast<size_t>(9 * V));
  backend.copy_to_host(logprobs, host_logprobs.data());
  for (int r = 0; r < 9; ++r) {
    const int64_t want = argmax(rows[r].data(), V);
    EXPECT_EQ(ids[r], want) << "row " << r;
    const float lp = host_logprobs[static_cast<size_t>(r * V + want)];
    EXPECT_EQ(std::memcmp(&chosen[r], &lp, sizeof lp), 0) << "row " << r;
  }
  EXPECT_EQ(ids[2], 0);
  EXPECT_EQ(ids[5], 700);
}

TEST(CudaServing, TinyRandomModelMatchesCpuWithinBf16Bounds) {
  BX_REQUIRE_HOPPER();
  LoadedModel gpu = load("random:qwen3-tiny:2", true);
  LoadedModel cpu = load("random:qwen3-tiny:2", false);
  EXPECT_NE(gpu.system_fingerprint(), cpu.system_fingerprint());
  const std::vector<int32_t> tokens = {3, 500, 17, 1023, 64, 9, 200, 5};
  std::vector<int32_t> positions(tokens.size()), rows(tokens.size());
  for (size_t t = 0; t < tokens.size(); ++t) positions[t] = rows[t] = static_cast<int32_t>(t);
  gpu.reserve_kv_blocks(4), cpu.reserve_kv_blocks(4);
  const std::vector<int32_t> table = {0, 1, 2, 3};
  const std::vector<const int32_t*> tables(tokens.size(), table.data());
  const ForwardBatch batch{tokens, positions, tables, rows};
  const size_t n = tokens.size() * static_cast<size_t>(gpu.config.vocab_size);
  std::vector<float> a(n), b(n);
  gpu.model->forward(batch, a.data(), nullptr);
  cpu.model->forward(batch, b.data(), nullptr);
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  EXPECT_LT(std::sqrt(num / den), 3e-2);
  EXPECT_GT(den / static_cast<double>(n), 0.1);  // logits of order 1, not degenerate
}

std::vector<EngineRequest> requests(int vocab, int count, int max_tokens) {
  std::vector<EngineRequest> out;
  for (int i = 0; i < count; ++i) {
    EngineRequest r;
    for (int t = 0; t < 1 + (i * 37) % 90; ++t) r.prompt.push_back((t * 31 + i * 17 + 1) % vocab);
    r.max_tokens = max_tokens - i % 3;
    r.sampling.temperature = i % 3 == 2 ? 0.7f : 0.0f;
    r.sampling.seed = 40 + static_cast<uint64_t>(i);
    r.top_logprobs = i % 5 == 4 ? 2 : 0;
    out.push_back(r);
  }
  return out;
}

// Each request alone, with full rows and eager launches; all together with the greedy choice
// on the device and decode steps replayed as CUDA graphs (padded to their bucket).
int differing_requests(LoadedModel& m, const std::vector<EngineRequest>& rs) {
  EngineOptions alone_options;
  alone_options.device_greedy = false;
  EngineOptions batch_options;
  batch_options.max_batch_tokens = 96;  // chunked prefill, mixed prefill and decode steps
  const int64_t replayed_before = m.model->replayed_steps();
  const std::vector<test::SampleResult> batched =
      test::first_samples_together(m, rs, batch_options);
  EXPECT_GT(m.model->replayed_steps(), replayed_before) << "no decode step was replayed";
  m.model->set_replay(false);
  int differ = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    const test::SampleResult alone = test::run_alone(m, rs[i], alone_options).samples.at(0);
    EXPECT_EQ(alone.tokens.size(), static_cast<size_t>(rs[i].max_tokens));
    if (!alone.same_bits(batched[i])) ++differ;
  }
  m.model->set_replay(true);
  return differ;
}

TEST(CudaServing, GraphReplayGivesTheEagerBits) {
  BX_REQUIRE_HOPPER();
  LoadedModel m = load("random:qwen3-tiny:9", true);
  const std::vector<EngineRequest> rs = requests(m.config.vocab_size, 20, 24);
  m.model->set_replay(false);
  const int64_t before = m.model->replayed_steps();
  const std::vector<test::SampleResult> eager = test::first_samples_together(m, rs, {});
  EXPECT_EQ(m.model->replayed_steps(), before);
  m.model->set_replay(true);
  // Twice: the first run records each bucket (after one direct run), the second replays them.
  for (int run = 0; run < 2; ++run) {
    const std::vector<test::SampleResult> replayed = test::first_samples_together(m, rs, {});
    for (size_t i = 0; i < rs.size(); ++i) {
      EXPECT_TRUE(eager[i].same_bits(replayed[i])) << "run " << run << ", request " << i;
    }
  }
  EXPECT_GT(m.model->replayed_steps(), before + 20);
}

// Decode steps whose contexts cross attention's 512-position split boundary change the attention
// launch (one more split slot) while the bucket stays the same: a replay must not reuse the
// recording made for the shorter contexts.
TEST(CudaServing, GraphReplayAcrossAnAttentionSplitBoundaryGivesTheEagerBits) {
  BX_REQUIRE_HOPPER();
  LoadedModel m = load("random:qwen3-tiny:9", true);
  std::vector<EngineRequest> rs;
  for (int i = 0; i < 6; ++i) {
    EngineRequest r;
    for (int t = 0; t < 490 + 3 * i; ++t) r.prompt.push_back((t * 29 + i * 13 + 1) % 1000);
    r.max_tokens = 40;  // positions 490+3i .. 530+3i: every sequence crosses 512
    rs.push_back(r);
  }
  m.model->set_replay(false);
  const std::vector<test::SampleResult> eager = test::first_samples_together(m, rs, {});
  m.model->set_replay(true);
  const int64_t before = m.model->replayed_steps();
  for (int run = 0; run < 2; ++run) {
    const std::vector<test::SampleResult> replayed = test::first_samples_together(m, rs, {});
    for (size_t i = 0; i < rs.size(); ++i) {
      EXPECT_TRUE(eager[i].same_bits(replayed[i])) << "run " << run << ", request " << i;
    }
  }
  EXPECT_GT(m.model->replayed_steps(), before + 40);
}

TEST(CudaServing, TinyDeviceGreedyIsInvariant) {
  BX_REQUIRE_HOPPER();
  LoadedModel m = load("random:qwen3-tiny:1", true);
  EXPECT_EQ(differing_requests(m, requests(m.config.vocab_size, 12, 10)), 0);
}

TEST(CudaServing, KvPoolIsSizedFromFreeMemory) {
  BX_REQUIRE_HOPPER();
  LoadedModel m = load("random:qwen3-tiny", true);
  const int64_t available = m.backend->kv_memory_available();
  EXPECT_GT(available, int64_t{1} << 30);
  EngineOptions o;
  o.max_seqs = 8;
  {
    Engine engine(m, o);  // capped at max_seqs contexts
    EXPECT_EQ(engine.options().kv_cache_tokens, 8 * 4096);
  }
  o.max_seqs = 64;
  o.kv_memory_fraction = 1e-3;  // the memory decides: about 60 MB, 60000 tokens < 64 * 4096
  Engine engine(m, o);
  const int64_t per_token = 2 * 2 * 2 * 64 * 2;
  const int64_t want =
      static_cast<int64_t>(std::floor(static_cast<double>(available) * 1e-3)) / per_token / 16 * 16;
  EXPECT_LT(want, 64 * 4096);
  EXPECT_NEAR(static_cast<double>(engine.options().kv_cache_tokens), static_cast<double>(want),
              static_cast<double>(want) * 0.01 + 16);
}

TEST(CudaServing, Qwen3_8bShapeDecodesInvariantly) {
  BX_REQUIRE_HOPPER();
  int fast_differ = 0;
  for (CudaBackend::Mode mode : {CudaBackend::Mode::invariant, CudaBackend::Mode::fast}) {
    LoadedModel m = load("random:qwen3-8b:7", true, mode);
    EXPECT_EQ(m.weights_hash, "random:qwen3-8b:seed=7:gen1");
    EXPECT_GT(m.matmul_weight_bytes, int64_t{15} * 1000 * 1000 * 1000);
    const int differ = differing_requests(m, requests(m.config.vocab_size, 6, 6));
    if (mode == CudaBackend::Mode::invariant) {
      EXPECT_EQ(differ, 0);
    } else {
      fast_differ = differ;
    }
  }
  // Negative control: cuBLAS picks kernels by M, so some logprob moves with the batch.
  EXPECT_GT(fast_differ, 0);
}

}  // namespace
}  // namespace bx
