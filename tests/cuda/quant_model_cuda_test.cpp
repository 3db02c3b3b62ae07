// Quantized GGUF models on the CUDA backend, weights held in their blocks (kernels/cuda/
// gemm_quant.h) in invariant mode.
//
//   loads        Q4_1 (SmolLM2-135M's widths: D 576, 9 / 3 heads of 64, F 1536, tied output),
//                Q8_0 and Q4_0 files load with their matmul weights and embedding as blocks;
//                the kernel version says so (cuda-k2-q1) and a dequantized load keeps cuda-k2.
//   exact        the logprobs and ids of greedy and seeded requests equal, bit for bit, those of
//                the same file dequantized at load (bf16 weights, the dense GEMM), and those of
//                the unfused ops over the blocks (the fused ones are checked to have run).
//   T3 invariant each request of a ragged batch gives the bits of the request alone, under
//                several token budgets, on those files and on random:qwen3-tiny-q4k (Q4_K and
//                Q8_0 blocks). Negative control: an M-dependent K split makes some request differ.
//   K-quants     a file written by the gguf package with Q4_K, Q6_K, Q5_K (held as blocks) and
//   Q2_K,
//                Q3_K, Q5_0, Q5_1, IQ4_NL, IQ4_XS (dequantized at load) matrices loads, gives the
//                bits of its dequantized load, and each request of a batch the bits alone.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "model/loader.h"
#include "support/cuda_test_data.h"
#include "support/engine_runner.h"
#include "support/kquant_model.h"
#include "support/random_model.h"

namespace bx {
namespace {

LoadedModel load_cuda(const std::string& path, bool dequantize = false,
                      ReductionOrder order = ReductionOrder::canonical) {
  LoadOptions options;
  options.threads = 2;
  options.max_batch_tokens = 512;
  options.max_logit_rows = 64;
  options.reduction_order = order;
  options.dequantize_weights = dequantize;
  options.make_backend = [] { return std::make_unique<CudaBackend>(CudaBackend::Mode::invariant); };
  return load_model(path, options);
}

std::vector<EngineRequest> make_requests(int vocab, int count) {
  std::vector<EngineRequest> requests;
  for (int i = 0; i < count; ++i) {
    EngineRequest r;
    r.prompt.push_back(1);
    const int length = (i * 37) % 150;  // crosses attention-chunk (64) boundaries
    for (int t = 0; t < length; ++t) r.prompt.push_back(3 + (t * 31 + i * 17) % (vocab - 3));
    r.max_tokens = 6 + (i * 5) % 12;
    r.ignore_eos = true;
    r.sampling.temperature = i % 2 ? 0.9f : 0.0f;
    r.sampling.seed = 100 + static_cast<uint64_t>(i);
    requests.push_back(r);
  }
  return requests;
}

std::vector<test::SampleResult> run_alone(LoadedModel& model,
                                          const std::vector<EngineRequest>& requests) {
  std::vector<test::SampleResult> out;
  for (const EngineRequest& r : requests) out.push_back(test::run_alone(model, r).samples.at(0));
  return out;
}

struct QuantFile {
  const char* name;
  gguf::GgmlType type;
  test::RandomLlamaSpec spec;
};

std::vector<QuantFile> quant_files() {
  test::RandomLlamaSpec smol;  // SmolLM2-135M's widths, 2 layers, a small vocabulary
  smol.dim = 576;
  smol.n_heads = 9;
  smol.n_kv_heads = 3;
  smol.ffn_dim = 1536;
  smol.n_layers = 2;
  smol.vocab_size = 512;
  smol.tied_output = true;
  smol.weight_type = gguf::GgmlType::Q4_1;
  smol.seed = 3;
  test::RandomLlamaSpec small;
  small.dim = 128;
  small.n_heads = 4;
  small.n_kv_heads = 2;
  small.ffn_dim = 352;  // 11 blocks of 32
  small.n_layers = 2;
  small.tied_output = false;
  small.seed = 4;
  test::RandomLlamaSpec q8 = small, q4 = small;
  q8.weight_type = gguf::GgmlType::Q8_0;
  q4.weight_type = gguf::GgmlType::Q4_0;
  return {{"smollm2-q4_1", gguf::GgmlType::Q4_1, smol},
          {"small-q8_0", gguf::GgmlType::Q8_0, q8},
          {"small-q4_0", gguf::GgmlType::Q4_0, q4}};
}

TEST(QuantModelCuda, BlocksGiveTheBitsOfTheDequantizedLoad) {
  BX_REQUIRE_HOPPER();
  for (const QuantFile& f : quant_files()) {
    test::RandomLlamaFile file(std::string("cuda-") + f.name, f.spec);
    LoadedModel blocks = load_cuda(file.path());
    LoadedModel dense = load_cuda(file.path(), /*dequantize=*/true);
    EXPECT_EQ(blocks.backend->kernel_version(), "cuda-k2-q1") << f.name;
    EXPECT_EQ(dense.backend->kernel_version(), "cuda-k2") << f.name;
    EXPECT_NE(blocks.system_fingerprint(), dense.system_fingerprint()) << f.name;
    // At most 8.5 bits a weight (Q8_0) against bf16's 16.
    EXPECT_LT(blocks.matmul_weight_bytes * 16, dense.matmul_weight_bytes * 9) << f.name;
    const std::vector<EngineRequest> requests = make_requests(blocks.config.vocab_size, 6);
    const std::vector<test::SampleResult> a = run_alone(blocks, requests);
    const std::vector<test::SampleResult> b = run_alone(dense, requests);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_TRUE(a[i].same_bits(b[i])) << f.name << " request " << i;
    }
    // The fused ops over blocks (q | k | v packed, the gated epilogue, the residual adds) ran,
    // and the unfused ops give their bits.
    auto* cuda = dynamic_cast<CudaBackend*>(blocks.backend.get());
    ASSERT_NE(cuda, nullptr);
    EXPECT_GT(cuda->fused_gemms(), 0) << f.name;
    cuda->set_fused(false);
    const int64_t fused_before = cuda->fused_gemms();
    const std::vector<test::SampleResult> unfused = run_alone(blocks, requests);
    EXPECT_EQ(cuda->fused_gemms(), fused_before) << f.name;
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_TRUE(unfused[i].same_bits(a[i])) << f.name << " unfused, request " << i;
    }
  }
}

void expect_batch_equals_alone(LoadedModel& model, const std::string& what) {
  const std::vector<EngineRequest> requests = make_requests(model.config.vocab_size, 10);
  const std::vector<test::SampleResult> alone = run_alone(model, requests);
  for (auto [budget, seqs] : {std::pair{512, 16}, {7, 16}, {64, 3}, {1, 16}}) {
    EngineOptions options;
    options.max_batch_tokens = budget;
    options.max_seqs = seqs;
    const std::vector<test::SampleResult> batched =
        test::first_samples_together(model, requests, options);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_TRUE(batched[i].same_bits(alone[i]))
          << what << " request " << i << ", max_batch_tokens " << budget << ", max_seqs " << seqs;
    }
  }
}

TEST(QuantModelCuda, BatchEqualsAloneForEveryBudget) {
  BX_REQUIRE_HOPPER();
  for (const QuantFile& f : quant_files()) {
    test::RandomLlamaFile file(std::string("cuda-batch-") + f.name, f.spec);
    LoadedModel model = load_cuda(file.path());
    ASSERT_EQ(model.backend->kernel_version(), "cuda-k2-q1") << f.name;
    expect_batch_equals_alone(model, f.name);
  }
  LoadedModel q4k = load_cuda("random:qwen3-tiny-q4k:5");
  ASSERT_EQ(q4k.backend->kernel_version(), "cuda-k2-q1");
  expect_batch_equals_alone(q4k, "random:qwen3-tiny-q4k");
}

// The K-quant file: BITEXACT_KQUANT_GGUF (scripts/device/pack_seams.sh makes one with
// tests/ref/make_kquant_gguf.py), else one written now through BITEXACT_PYTHON, else skipped.
TEST(QuantModelCuda, KQuantFileGivesTheDequantizedBitsAndBatchEqualsAlone) {
  BX_REQUIRE_HOPPER();
  std::string path;
  std::unique_ptr<test::KQuantLlamaFile> written;
  const char* env = std::getenv("BITEXACT_KQUANT_GGUF");
  if (env != nullptr && std::filesystem::exists(env)) {
    path = env;
  } else {
    const std::string python = test::python_interpreter();
    if (python.empty()) GTEST_SKIP() << "neither BITEXACT_KQUANT_GGUF nor BITEXACT_PYTHON is set";
    written = std::make_unique<test::KQuantLlamaFile>("cuda-kquant", python, 13);
    ASSERT_TRUE(written->ok()) << "tests/ref/make_kquant_gguf.py failed";
    path = written->path();
  }
  LoadedModel blocks = load_cuda(path);
  LoadedModel dense = load_cuda(path, /*dequantize=*/true);
  EXPECT_EQ(blocks.backend->kernel_version(), "cuda-k2-q1");
  EXPECT_EQ(dense.backend->kernel_version(), "cuda-k2");
  const std::vector<EngineRequest> requests = make_requests(blocks.config.vocab_size, 6);
  const std::vector<test::SampleResult> a = run_alone(blocks, requests);
  const std::vector<test::SampleResult> b = run_alone(dense, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_TRUE(a[i].same_bits(b[i])) << "K-quant file, request " << i;
  }
  expect_batch_equals_alone(blocks, "K-quant file");
}

// On the D = 128 Q8_0 and Q4_0 files (the SmolLM2-width Q4_1 file shows no difference under this
// control on either backend, the CPU's included, so it cannot serve as one).
TEST(QuantModelCuda, NegativeControlSplitKByMDiffers) {
  BX_REQUIRE_HOPPER();
  for (const QuantFile& f : quant_files()) {
    if (f.type == gguf::GgmlType::Q4_1) continue;
    test::RandomLlamaFile file(std::string("cuda-control-") + f.name, f.spec);
    LoadedModel model = load_cuda(file.path(), false, ReductionOrder::split_k_by_m);
    ASSERT_EQ(model.backend->kernel_version(), "cuda-k2-q1") << f.name;
    const std::vector<EngineRequest> requests = make_requests(model.config.vocab_size, 10);
    const std::vector<test::SampleResult> alone = run_alone(model, requests);
    const std::vector<test::SampleResult> batched = test::first_samples_together(model, requests);
    int differing = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      differing += batched[i].same_bits(alone[i]) ? 0 : 1;
    }
    std::printf("split-K-by-M control (%s blocks): %d of %zu requests differ\n", f.name, differing,
                requests.size());
    EXPECT_GT(differing, 0) << f.name;
  }
}

}  // namespace
}  // namespace bx
