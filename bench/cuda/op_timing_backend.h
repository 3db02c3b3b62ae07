// A Backend that forwards every op to a CudaBackend and, while enabled, brackets each op with
// CUDA events on the backend's stream: the per-op GPU time of a forward pass, without adding a
// synchronisation between ops. Ops are keyed by name, and matmuls also by their weight's shape
// ("matmul 4096x12288" = N x K), so the table shows which kernel a decode step spends its time in.
// Recorded replays (CUDA graphs) issue no ops here: profile with LlamaModel::set_replay(false).
// The fused ops (matmul_parts, matmul_swiglu, matmul_add, mlp_add) are timed as one op each when
// the CudaBackend fuses, and as the unfused ops they compose otherwise (set_fused(false)).
#pragma once

#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

namespace bx::bench {

class OpTimingBackend final : public Backend {
 public:
  explicit OpTimingBackend(CudaBackend::Mode mode)
      : inner_(std::make_unique<CudaBackend>(mode)),
        stream_(static_cast<cudaStream_t>(inner_->stream_handle())) {}
  ~OpTimingBackend() override {
    for (auto& [a, b] : events_) cudaEventDestroy(a), cudaEventDestroy(b);
  }

  // Starts recording (clears earlier records); collect() synchronises and sums them.
  void enable() {
    records_.clear();
    enabled_ = true;
  }
  // Milliseconds per op key, summed over the recorded ops; stops recording.
  std::map<std::string, std::pair<double, int>> collect() {
    enabled_ = false;
    cuda::check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (timing)");
    std::map<std::string, std::pair<double, int>> totals;
    for (size_t i = 0; i < records_.size(); ++i) {
      float ms = 0;
      cuda::check_cuda(cudaEventElapsedTime(&ms, events_[i].first, events_[i].second),
                       "cudaEventElapsedTime");
      auto& [sum, count] = totals[records_[i]];
      sum += ms, count += 1;
    }
    return totals;
  }

  std::string name() const override { return inner_->name(); }
  std::string numerics() const override { return inner_->numerics(); }
  std::string kernel_version() const override { return inner_->kernel_version(); }
  Tensor alloc(DType d, int64_t r, int64_t c) override { return inner_->alloc(d, r, c); }
  Tensor upload_matrix(const float* h, int64_t r, int64_t c, DType d) override {
    return inner_->upload_matrix(h, r, c, d);
  }
  Tensor generate_matrix(int64_t r, int64_t c, DType d, uint64_t s, float o, float k) override {
    return inner_->generate_matrix(r, c, d, s, o, k);
  }
  void init_kv_cache(const KvCacheShape& s) override { inner_->init_kv_cache(s); }
  int64_t kv_memory_available() const override { return inner_->kv_memory_available(); }
  int kv_element_bytes() const override { return inner_->kv_element_bytes(); }
  void set_rope_table(const RopeTable& t) override { inner_->set_rope_table(t); }
  void set_reduction_order(ReductionOrder o) override { inner_->set_reduction_order(o); }
  bool pack_rows(std::span<Tensor* const> parts) override { return inner_->pack_rows(parts); }
  void set_fused(bool fused) { inner_->set_fused(fused); }

  bool can_replay() const override { return inner_->can_replay(); }
  bool replay(uint64_t key) override { return inner_->replay(key); }
  void begin_recording(uint64_t key) override { inner_->begin_recording(key); }
  bool end_recording(uint64_t key, bool launch) override {
    return inner_->end_recording(key, launch);
  }
  void begin_batch(const ForwardBatch& b) override { inner_->begin_batch(b); }
  void embed(const Tensor& t, Tensor out) override {
    timed("embed", [&] { inner_->embed(t, out); });
  }
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) override {
    timed("rmsnorm", [&] { inner_->rmsnorm(x, w, eps, out); });
  }
  void matmul(const Tensor& x, const Tensor& w, Tensor y) override {
    timed("matmul " + std::to_string(w.rows) + "x" + std::to_string(w.cols),
          [&] { inner_->matmul(x, w, y); });
  }
  void rope(Tensor x, int h) override {
    timed("rope", [&] { inner_->rope(x, h); });
  }
  void qk_norm_rope(Tensor q, int h, Tensor k, int kv_h, const Tensor* q_norm, const Tensor* k_norm,
                    float eps) override {
    timed("qk_norm_rope", [&] { inner_->qk_norm_rope(q, h, k, kv_h, q_norm, k_norm, eps); });
  }
  void kv_write(int l, const Tensor& k, const Tensor& v) override {
    timed("kv_write", [&] { inner_->kv_write(l, k, v); });
  }
  void attention(int l, const Tensor& q, int h, float s, Tensor out) override {
    timed("attention", [&] { inner_->attention(l, q, h, s, out); });
  }
  void silu_mul(const Tensor& g, const Tensor& u, Tensor out) override {
    timed("silu_mul", [&] { inner_->silu_mul(g, u, out); });
  }
  void add_inplace(Tensor y, const Tensor& x) override {
    timed("add_inplace", [&] { inner_->add_inplace(y, x); });
  }
  void matmul_parts(const Tensor& x, std::span<const Tensor> w, std::span<Tensor> y) override {
    if (!inner_->fused()) return Backend::matmul_parts(x, w, y);
    int64_t n = 0;
    for (const Tensor& part : w) n += part.rows;
    timed("matmul_parts " + std::to_string(n) + "x" + std::to_string(x.cols),
          [&] { inner_->matmul_parts(x, w, y); });
  }
  void matmul_swiglu(const Tensor& x, const Tensor& g, const Tensor& u, Tensor out,
                     Tensor up) override {
    if (!inner_->fused()) return Backend::matmul_swiglu(x, g, u, out, up);
    timed("matmul_swiglu 2x" + std::to_string(g.rows) + "x" + std::to_string(g.cols),
          [&] { inner_->matmul_swiglu(x, g, u, out, up); });
  }
  void mlp_add(Tensor h, const Tensor& g, const Tensor& u, const Tensor& d, Tensor x, Tensor gate,
               Tensor up) override {
    if (!inner_->fused()) return Backend::mlp_add(h, g, u, d, x, gate, up);
    timed("mlp_add (gate|up+silu, down+residual) " + std::to_string(g.rows) + "x" +
              std::to_string(g.cols),
          [&] { inner_->mlp_add(h, g, u, d, x, gate, up); });
  }
  void matmul_add(const Tensor& x, const Tensor& w, Tensor y, Tensor scratch) override {
    if (!inner_->fused()) return Backend::matmul_add(x, w, y, scratch);
    timed("matmul_add " + std::to_string(w.rows) + "x" + std::to_string(w.cols),
          [&] { inner_->matmul_add(x, w, y, scratch); });
  }
  void gather_logit_rows(const Tensor& x, Tensor out) override {
    timed("gather_logit_rows", [&] { inner_->gather_logit_rows(x, out); });
  }
  void log_softmax(const Tensor& x, Tensor out) override {
    timed("log_softmax", [&] { inner_->log_softmax(x, out); });
  }
  void copy_to_host(const Tensor& x, float* host) override {
    timed("copy_to_host", [&] { inner_->copy_to_host(x, host); });
  }
  void greedy_rows(const Tensor& l, const Tensor& p, int32_t* ids, float* chosen) override {
    timed("greedy_rows", [&] { inner_->greedy_rows(l, p, ids, chosen); });
  }
  bool can_sample_rows() const override { return inner_->can_sample_rows(); }
  void sample_rows(const Tensor& l, const Tensor& p, std::span<const SamplingParams> params,
                   std::span<const uint64_t> indices, int32_t* ids, float* chosen) override {
    timed("sample_rows", [&] { inner_->sample_rows(l, p, params, indices, ids, chosen); });
  }

 private:
  template <typename Op>
  void timed(std::string key, Op&& op) {
    if (!enabled_) return op();
    const size_t i = records_.size();
    if (i == events_.size()) {
      cudaEvent_t a, b;
      cuda::check_cuda(cudaEventCreate(&a), "cudaEventCreate");
      cuda::check_cuda(cudaEventCreate(&b), "cudaEventCreate");
      events_.emplace_back(a, b);
    }
    cuda::check_cuda(cudaEventRecord(events_[i].first, stream_), "cudaEventRecord");
    op();
    cuda::check_cuda(cudaEventRecord(events_[i].second, stream_), "cudaEventRecord");
    records_.push_back(std::move(key));
  }

  std::unique_ptr<CudaBackend> inner_;
  cudaStream_t stream_;
  bool enabled_ = false;
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> events_;
  std::vector<std::string> records_;
};

}  // namespace bx::bench
