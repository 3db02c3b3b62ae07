// Every architecture on the GPU: random Hugging Face folders (tests/support/random_hf_model.h,
// BF16 tensors, so both backends hold the same weights) of llama, qwen2 (q/k/v biases), qwen3
// (q/k norm, head_dim 128), mistral with llama3 RoPE scaling, and gemma3 with head_dim 128 and
// 256 (a sliding window of 80 positions on layers 0 and 2 of 4, full attention on 1 and 3), run
// on CUDA and on the CPU. Skips without a Hopper GPU.
//
//   T2 accurate   the logits of every position of a 600-token prompt (crossing 64-position
//                 chunks, the 512-position split and the windows): relative RMS difference CUDA
//                 vs CPU under kBf16Bound (below). Negative control: the CPU without the window
//                 (the same gemma3 weights with a window past the prompt) is far off.
//   T3 invariant  on CUDA, the prompt's logits in one forward pass == in prefill chunks of 100
//                 then single decode tokens == inside a batch with two other sequences, bit for
//                 bit; and through the engine, each request of a batch under a 96-token budget
//                 (chunked prefill, mixed steps, CUDA graphs) == the request alone. Negative
//                 control: a K split that follows M (ReductionOrder::split_k_by_m) makes the
//                 chunked prefill differ.
//   Errors        a head_dim the CUDA attention does not take is refused from config.json alone,
//                 before any weight is read, naming the value and the head dims it takes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "kernels/cuda/attention.h"
#include "model/loader.h"
#include "support/cuda_test_data.h"
#include "support/engine_driver.h"
#include "support/engine_runner.h"
#include "support/random_hf_model.h"

namespace bx {
namespace {

// The CUDA backend rounds every GEMM input (activations), q, the KV cache and the attention
// probabilities to bf16 (unit roundoff u = 2^-9 ~ 2e-3) where the CPU keeps f32; the weights are
// the same bf16 values on both. A layer rounds about six vectors (the x of the q/k/v, o and MLP
// GEMMs, K and V, q, P, the MLP's hidden row), each a relative error of RMS ~u / sqrt(3); over 2
// to 4 layers, independent, that is ~5e-3 relative on the final hidden state, which the
// unembedding carries to the logits with a gain of a few units. 3e-2 leaves a margin of ~2-6x
// over that estimate (the same bound as the other CUDA model tests); a wrong mask, window, RoPE
// or bias is off by 10-100x more (the negative control).
constexpr double kBf16Bound = 3e-2;
constexpr int kPromptLength = 600;
constexpr int kWindow = 80;

struct ArchCase {
  std::string name;
  test::RandomHfSpec spec;
};

std::vector<ArchCase> cases() {
  auto base = [](const std::string& arch, int seed) {
    test::RandomHfSpec s;
    s.architecture = arch;
    s.dim = 256;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.ffn_dim = 344;  // padded to 352 in bf16
    s.n_layers = 2;
    s.vocab_size = 320;
    s.context_length = 1024;
    s.dtype = "BF16";
    s.seed = static_cast<uint32_t>(seed);
    return s;
  };
  std::vector<ArchCase> out;
  out.push_back({"llama", base("LlamaForCausalLM", 51)});  // head_dim 64
  out.push_back({"qwen2", base("Qwen2ForCausalLM", 52)});  // q/k/v biases
  ArchCase qwen3{"qwen3", base("Qwen3ForCausalLM", 53)};   // q/k norm
  qwen3.spec.head_dim = 128;
  out.push_back(qwen3);
  ArchCase mistral{"mistral-llama3-rope", base("MistralForCausalLM", 54)};
  mistral.spec.llama3_scaling = true;  // original context 64: positions cross every regime
  out.push_back(mistral);
  for (const int head_dim : {128, 256}) {
    ArchCase gemma{"gemma3-d" + std::to_string(head_dim), base("Gemma3ForCausalLM", 55)};
    gemma.spec.head_dim = head_dim;
    gemma.spec.n_layers = 4;        // windows on layers 0 and 2 (sliding_window_pattern 2)
    gemma.spec.tied_output = true;  // as Gemma 3 checkpoints
    gemma.spec.sliding_window = kWindow;
    if (head_dim == 256) gemma.spec.n_kv_heads = 1;  // Gemma 3 1B: 4 query heads, 1 KV head
    out.push_back(gemma);
  }
  return out;
}

LoadedModel load(const std::string& path, bool cuda,
                 ReductionOrder order = ReductionOrder::canonical) {
  LoadOptions options;
  options.threads = 4;
  options.max_batch_tokens = 2048;
  options.max_logit_rows = 1024;
  options.reduction_order = order;
  if (cuda) options.make_backend = [] { return std::make_unique<CudaBackend>(); };
  return load_model(path, options);
}

std::vector<int32_t> prompt(int length, int vocab, int salt) {
  std::vector<int32_t> tokens;
  for (int t = 0; t < length; ++t) tokens.push_back((t * 37 + t * t + 3 + salt * 11) % vocab);
  return tokens;
}

// max over positions of ||a - b|| / ||b|| of the logits.
double logit_rel_norm(const test::EngineRows& a, const test::EngineRows& b) {
  double worst = 0;
  for (size_t t = 0; t < b.logits.size(); ++t) {
    double num = 0, den = 0;
    for (size_t v = 0; v < b.logits[t].size(); ++v) {
      const double e = static_cast<double>(a.logits[t][v]) - b.logits[t][v];
      num += e * e;
      den += static_cast<double>(b.logits[t][v]) * b.logits[t][v];
    }
    worst = std::max(worst, std::sqrt(num / den));
  }
  return worst;
}

bool same_logits(const test::EngineRows& a, const test::EngineRows& b, size_t* first_differing) {
  for (size_t t = 0; t < b.logits.size(); ++t) {
    if (!test::same_bits(a.logits[t].data(), b.logits[t].data(), b.logits[t].size())) {
      *first_differing = t;
      return false;
    }
  }
  return true;
}

// The prompt's logits computed in prefill chunks of `piece` tokens, then its last `decoded`
// tokens one a step (decode).
test::EngineRows forward_chunked(LoadedModel& m, const std::vector<int32_t>& tokens, int piece,
                                 int decoded) {
  test::SingleSequence seq(m, static_cast<int64_t>(tokens.size()));
  test::EngineRows out;
  const int T = static_cast<int>(tokens.size());
  for (int first = 0; first < T;) {
    const int n = first >= T - decoded ? 1 : std::min(piece, T - decoded - first);
    std::vector<int32_t> rows(static_cast<size_t>(n));
    std::iota(rows.begin(), rows.end(), 0);
    const std::vector<int32_t> part(tokens.begin() + first, tokens.begin() + first + n);
    test::EngineRows r = seq.forward(part, first, rows);
    for (auto& row : r.logits) out.logits.push_back(std::move(row));
    first += n;
  }
  return out;
}

// The logits of every position of prompts[which] when all prompts run in one forward pass, their
// tokens interleaved in runs of 50 (each sequence with its own blocks of the cache).
test::EngineRows forward_together(LoadedModel& m, const std::vector<std::vector<int32_t>>& prompts,
                                  size_t which) {
  const int64_t block_size = m.kv_shape.block_size;
  std::vector<std::vector<int32_t>> tables;
  int64_t next_block = 0;
  for (const auto& p : prompts) {
    const int64_t blocks = (static_cast<int64_t>(p.size()) + block_size - 1) / block_size;
    std::vector<int32_t> table(static_cast<size_t>(blocks));
    std::iota(table.begin(), table.end(), static_cast<int32_t>(next_block));
    next_block += blocks;
    tables.push_back(table);
  }
  m.reserve_kv_blocks(next_block);
  std::vector<int32_t> tokens, positions, rows;
  std::vector<const int32_t*> token_tables;
  std::vector<size_t> done(prompts.size(), 0);
  for (bool any = true; any;) {
    any = false;
    for (size_t s = 0; s < prompts.size(); ++s) {
      for (int k = 0; k < 50 && done[s] < prompts[s].size(); ++k, ++done[s]) {
        if (s == which) rows.push_back(static_cast<int32_t>(tokens.size()));
        tokens.push_back(prompts[s][done[s]]);
        positions.push_back(static_cast<int32_t>(done[s]));
        token_tables.push_back(tables[s].data());
        any = true;
      }
    }
  }
  ForwardBatch batch;
  batch.tokens = tokens;
  batch.positions = positions;
  batch.block_tables = token_tables;
  batch.logit_rows = rows;
  const size_t V = static_cast<size_t>(m.config.vocab_size);
  std::vector<float> logits(rows.size() * V);
  m.model->forward(batch, logits.data(), nullptr);
  test::EngineRows out;
  for (size_t r = 0; r < rows.size(); ++r) {
    out.logits.emplace_back(logits.begin() + static_cast<std::ptrdiff_t>(r * V),
                            logits.begin() + static_cast<std::ptrdiff_t>((r + 1) * V));
  }
  return out;
}

TEST(ArchitecturesCuda, LogitsMatchTheCpuWithinBf16Bounds) {
  BX_REQUIRE_HOPPER();
  for (const ArchCase& c : cases()) {
    test::RandomHfFolder folder("arch-cuda-" + c.name, c.spec);
    LoadedModel gpu = load(folder.path(), true), cpu = load(folder.path(), false);
    ASSERT_EQ(gpu.config.head_dim, test::random_hf_head_dim(c.spec)) << c.name;
    const std::vector<int32_t> tokens = prompt(kPromptLength, c.spec.vocab_size, 0);
    test::SingleSequence gs(gpu, kPromptLength), cs(cpu, kPromptLength);
    const test::EngineRows g = gs.forward_all(tokens), b = cs.forward_all(tokens);
    const double err = logit_rel_norm(g, b);
    std::printf("%-20s head_dim %3d: CUDA vs CPU logits, max relative norm %.3g (bound %.3g)\n",
                c.name.c_str(), gpu.config.head_dim, err, kBf16Bound);
    EXPECT_LT(err, kBf16Bound) << c.name;
    if (c.spec.sliding_window > 0) {
      ASSERT_EQ(gpu.config.sliding_window, kWindow) << c.name;
      ASSERT_EQ(gpu.config.windowed, (std::vector<uint8_t>{1, 0, 1, 0})) << c.name;
      // Negative control: the same weights without the window, on the CPU.
      test::RandomHfSpec full = c.spec;
      full.sliding_window = 0;
      test::RandomHfFolder unwindowed("arch-cuda-full-" + c.name, full);
      LoadedModel cpu_full = load(unwindowed.path(), false);
      test::SingleSequence fs(cpu_full, kPromptLength);
      const double ablated = logit_rel_norm(g, fs.forward_all(tokens));
      std::printf("%-20s CUDA (window %d) vs CPU without the window: %.3g\n", c.name.c_str(),
                  kWindow, ablated);
      EXPECT_GT(ablated, 3 * kBf16Bound) << c.name;
    }
  }
}

TEST(ArchitecturesCuda, PrefillChunksDecodeAndBatchGiveTheSameBits) {
  BX_REQUIRE_HOPPER();
  for (const ArchCase& c : cases()) {
    test::RandomHfFolder folder("arch-cuda-inv-" + c.name, c.spec);
    LoadedModel gpu = load(folder.path(), true);
    const std::vector<int32_t> tokens = prompt(kPromptLength, c.spec.vocab_size, 0);
    test::EngineRows whole;
    {
      test::SingleSequence seq(gpu, kPromptLength);
      whole = seq.forward_all(tokens);
    }
    size_t at = 0;
    const test::EngineRows chunked = forward_chunked(gpu, tokens, 100, 24);
    EXPECT_TRUE(same_logits(chunked, whole, &at))
        << c.name << ": prefill chunks of 100 + 24 decode steps differ at position " << at;
    const std::vector<std::vector<int32_t>> prompts = {prompt(333, c.spec.vocab_size, 1), tokens,
                                                       prompt(150, c.spec.vocab_size, 2)};
    const test::EngineRows together = forward_together(gpu, prompts, 1);
    EXPECT_TRUE(same_logits(together, whole, &at))
        << c.name << ": in a batch of three sequences, position " << at << " differs";
    std::printf("%-20s on CUDA: whole == chunked + decode == batched, bit for bit: %s\n",
                c.name.c_str(), HasFailure() ? "NO" : "yes");
  }
}

std::vector<EngineRequest> requests(int count, int vocab) {
  std::vector<EngineRequest> out;
  for (int i = 0; i < count; ++i) {
    EngineRequest r;
    const int length = 1 + (i * 97) % 640;
    for (int t = 0; t < length; ++t) r.prompt.push_back((t * 31 + i * 17 + 1) % vocab);
    r.max_tokens = 12 - i % 3;
    r.sampling.temperature = i % 3 == 2 ? 0.7f : 0.0f;
    r.sampling.seed = 40 + static_cast<uint64_t>(i);
    r.ignore_eos = true;
    out.push_back(r);
  }
  return out;
}

TEST(ArchitecturesCuda, EngineBatchWithGraphsEqualsEachRequestAlone) {
  BX_REQUIRE_HOPPER();
  for (const ArchCase& c : cases()) {
    test::RandomHfFolder folder("arch-cuda-engine-" + c.name, c.spec);
    LoadedModel m = load(folder.path(), true);
    const std::vector<EngineRequest> rs = requests(10, c.spec.vocab_size);
    EngineOptions batch_options;
    batch_options.max_batch_tokens = 96;  // chunked prefill, mixed prefill and decode steps
    const std::vector<test::SampleResult> batched =
        test::first_samples_together(m, rs, batch_options);
    m.model->set_replay(false);
    EngineOptions alone_options;
    alone_options.device_greedy = false;
    int differ = 0;
    for (size_t i = 0; i < rs.size(); ++i) {
      const test::SampleResult alone = test::run_alone(m, rs[i], alone_options).samples.at(0);
      EXPECT_EQ(alone.tokens.size(), static_cast<size_t>(rs[i].max_tokens)) << c.name;
      if (!alone.same_bits(batched[i])) ++differ;
    }
    m.model->set_replay(true);
    std::printf("%-20s on CUDA: %d of %zu requests differ alone vs batched\n", c.name.c_str(),
                differ, rs.size());
    EXPECT_EQ(differ, 0) << c.name;
  }
}

// Negative control of the bit comparisons above: with a K split that follows M, the chunked
// prefill's logits differ from the whole prompt's.
TEST(ArchitecturesCuda, NegativeControlSplitKByMChangesChunkedPrefill) {
  BX_REQUIRE_HOPPER();
  for (const ArchCase& c : cases()) {
    if (c.name != "qwen3" && c.name != "gemma3-d256") continue;
    test::RandomHfFolder folder("arch-cuda-ctrl-" + c.name, c.spec);
    LoadedModel gpu = load(folder.path(), true, ReductionOrder::split_k_by_m);
    const std::vector<int32_t> tokens = prompt(kPromptLength, c.spec.vocab_size, 0);
    test::EngineRows whole;
    {
      test::SingleSequence seq(gpu, kPromptLength);
      whole = seq.forward_all(tokens);
    }
    size_t at = 0;
    EXPECT_FALSE(same_logits(forward_chunked(gpu, tokens, 100, 24), whole, &at)) << c.name;
  }
}

// A head_dim beyond the CUDA attention's is refused from config.json alone (the folder has no
// weights), naming the value and what is supported.
TEST(ArchitecturesCuda, UnsupportedHeadDimIsRefusedBeforeTheWeights) {
  BX_REQUIRE_HOPPER();
  for (const int head_dim : {264, 132, 512}) {
    test::RandomHfSpec spec;
    spec.architecture = "Gemma3ForCausalLM";
    spec.head_dim = head_dim;
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("bitexact-arch-cuda-hd" + std::to_string(head_dim)))
                                .string();
    std::filesystem::create_directories(dir);
    test::write_text(dir + "/config.json", test::random_hf_config(spec).dump(2));
    std::string error = "(loaded without an error)";
    try {
      load(dir, true);
    } catch (const Error& e) {
      error = e.what();
    }
    std::filesystem::remove_all(dir);
    EXPECT_NE(error.find("head_dim " + std::to_string(head_dim)), std::string::npos) << error;
    EXPECT_NE(
        error.find("multiples of 8 up to 256"), std::string::npos)
        << error;
  }
}

}  // namespace
}  // namespace bx
