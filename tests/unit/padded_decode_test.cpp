// The engine's padded decode steps on the CPU: a backend that reports GraphCapture (its
// "recording" runs the ops as they are issued) makes the ModelRunner pad every decode step to its
// bucket with filler tokens in the scratch block, as on CUDA. The real rows must keep their bits:
// the same requests give the same tokens and logprobs as on the plain CPU backend.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "backend/cpu_backend.h"
#include "engine/engine.h"
#include "model/loader.h"
#include "support/engine_runner.h"

namespace bx {
namespace {

// The CPU backend, with a GraphCapture whose recordings run the ops directly; counts the padded
// batches it is given and checks that each comes with its tables once per sequence.
class PaddingCpuBackend final : public Backend, public GraphCapture {
 public:
  explicit PaddingCpuBackend(int threads) : cpu_(threads) {}
  int64_t padded_batches = 0;
  int64_t batches_without_tables = 0;

  std::string name() const override { return cpu_.name(); }
  std::string numerics() const override { return cpu_.numerics(); }
  std::string kernel_version() const override { return cpu_.kernel_version(); }
  BackendCapabilities capabilities() override { return {this, nullptr}; }
  Tensor alloc(DType d, int64_t r, int64_t c) override { return cpu_.alloc(d, r, c); }
  Tensor upload_matrix(const float* h, int64_t r, int64_t c, DType d) override {
    return cpu_.upload_matrix(h, r, c, d);
  }
  bool can_hold_blocks(DType d) const override { return cpu_.can_hold_blocks(d); }
  Tensor upload_blocks(const void* b, int64_t r, int64_t c, DType d) override {
    return cpu_.upload_blocks(b, r, c, d);
  }
  void init_kv_cache(const KvCacheShape& s) override { cpu_.init_kv_cache(s); }
  void set_rope_table(const RopeTable& t) override { cpu_.set_rope_table(t); }
  void set_local_rope_table(const RopeTable& t) override { cpu_.set_local_rope_table(t); }
  void set_reduction_order(ReductionOrder o) override { cpu_.set_reduction_order(o); }
  int64_t allocation_count() const override { return cpu_.allocation_count(); }

  bool replay(uint64_t) override { return false; }
  void begin_recording(uint64_t) override {}
  bool end_recording(uint64_t, bool) override { return true; }  // the ops ran as issued

  void begin_batch(const ForwardBatch& b) override {
    if (b.fillers > 0) ++padded_batches;
    if (b.table_offsets.empty()) ++batches_without_tables;
    for (size_t t = 0; t < b.table_offsets.size(); ++t) {
      EXPECT_EQ(b.block_tables[t], b.table_blocks.data() + b.table_offsets[t]) << "token " << t;
    }
    cpu_.begin_batch(b);
  }
  void embed(const Tensor& t, Tensor out) override { cpu_.embed(t, out); }
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) override {
    cpu_.rmsnorm(x, w, eps, out);
  }
  void gemm(const GemmOp& op) override { cpu_.gemm(op); }
  void rope(const RopeOp& op) override { cpu_.rope(op); }
  void kv_write(int layer, const Tensor& k, const Tensor& v) override {
    cpu_.kv_write(layer, k, v);
  }
  void attention(int layer, const Tensor& q, int n_heads, float scale, int window,
                 Tensor out) override {
    cpu_.attention(layer, q, n_heads, scale, window, out);
  }
  void scale(Tensor x, float factor) override { cpu_.scale(x, factor); }
  void add(const Tensor& x, Tensor y) override { cpu_.add(x, y); }
  void gather_logit_rows(const Tensor& x, Tensor out) override { cpu_.gather_logit_rows(x, out); }
  void log_softmax(const Tensor& x, Tensor out) override { cpu_.log_softmax(x, out); }
  void copy_to_host(const Tensor& x, float* host) override { cpu_.copy_to_host(x, host); }
  void copy_from_host(const float* host, Tensor x) override { cpu_.copy_from_host(host, x); }

 private:
  CpuBackend cpu_;
};

LoadOptions options(bool padding) {
  LoadOptions o;
  o.threads = 2;
  o.max_batch_tokens = 128;
  o.max_logit_rows = 64;
  if (padding) o.make_backend = [] { return std::make_unique<PaddingCpuBackend>(2); };
  return o;
}

std::vector<EngineRequest> requests(int vocab, uint64_t seed) {
  std::vector<EngineRequest> out;
  for (int i = 0; i < 11; ++i) {  // 11 sequences decoding together: buckets 16, 8, 4, ...
    EngineRequest r;
    for (int t = 0; t < 2 + (i * 13) % 40; ++t) r.prompt.push_back((t * 29 + i * 7 + 3) % vocab);
    r.max_tokens = 6 + i;
    r.ignore_eos = true;
    r.sampling.temperature = i % 2 == 0 ? 0.0f : 0.9f;
    r.sampling.seed = seed + static_cast<uint64_t>(i);
    r.top_logprobs = i == 4 ? 2 : 0;
    out.push_back(r);
  }
  return out;
}

TEST(PaddedDecode, FillerRowsLeaveTheRealRowsBitsUnchanged) {
  LoadedModel plain = load_model("random:qwen3-tiny:6", options(false));
  LoadedModel padded = load_model("random:qwen3-tiny:6", options(true));
  const auto* backend = dynamic_cast<PaddingCpuBackend*>(padded.backend.get());
  ASSERT_NE(backend, nullptr);
  const std::vector<EngineRequest> rs = requests(plain.config.vocab_size, 100);
  const std::vector<test::SampleResult> expected = test::first_samples_together(plain, rs, {});
  const std::vector<test::SampleResult> got = test::first_samples_together(padded, rs, {});
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(got[i].tokens.size(), static_cast<size_t>(rs[i].max_tokens));
    EXPECT_TRUE(got[i].same_bits(expected[i])) << "request " << i;
  }
  EXPECT_GT(backend->padded_batches, 5) << "the engine padded too few decode steps";
  EXPECT_EQ(backend->batches_without_tables, 0) << "the runner left the tables to the backend";
  EXPECT_GT(padded.model->replayed_steps(), 5);

  // Negative control: other seeds change the sampled requests' bits, and the check sees it.
  const std::vector<test::SampleResult> other =
      test::first_samples_together(padded, requests(plain.config.vocab_size, 200), {});
  int differ = 0;
  for (size_t i = 0; i < rs.size(); ++i) differ += other[i].same_bits(expected[i]) ? 0 : 1;
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace bx
