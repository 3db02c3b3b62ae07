// A Backend that forwards every op to a CudaBackend and, while enabled, brackets each op with
// CUDA events on the backend's stream: the per-op GPU time of a forward pass, without adding a
// synchronisation between ops. Ops are keyed by name, and GEMMs also by their epilogue and weight
// shape ("gemm store 4096x12288" = N x K), so the table shows which kernel a decode step spends its
// time in. Recorded replays (CUDA graphs) issue no ops here: profile with
// LlamaModel::set_replay(false). A GemmOp is timed as one op whether the CudaBackend fuses it or
// runs its unfused kernels (set_fused(false)).
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

class OpTimingBackend final : public Backend, public DeviceSampling {
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
  bool can_hold_blocks(DType d) const override { return inner_->can_hold_blocks(d); }
  Tensor upload_blocks(const void* b, int64_t r, int64_t c, DType d) override {
    return inner_->upload_blocks(b, r, c, d);
  }
  Tensor generate_matrix(int64_t r, int64_t c, DType d, uint64_t s, float o, float k) override {
    return inner_->generate_matrix(r, c, d, s, o, k);
  }
  void init_kv_cache(const KvCacheShape& s) override { inner_->init_kv_cache(s); }
  void reserve_step_state(const StepLimits& l) override { inner_->reserve_step_state(l); }
  int64_t allocation_count() const override { return inner_->allocation_count(); }
  int64_t kv_memory_available() const override { return inner_->kv_memory_available(); }
  int kv_element_bytes() const override { return inner_->kv_element_bytes(); }
  void set_rope_table(const RopeTable& t) override { inner_->set_rope_table(t); }
  void set_local_rope_table(const RopeTable& t) override { inner_->set_local_rope_table(t); }
  void set_reduction_order(ReductionOrder o) override { inner_->set_reduction_order(o); }
  bool pack_rows(std::span<Tensor* const> parts) override { return inner_->pack_rows(parts); }
  void set_fused(bool fused) { inner_->set_fused(fused); }

  // Graph capture passes through; sampling is timed here (so this class is the DeviceSampling).
  BackendCapabilities capabilities() override {
    return {inner_->capabilities().graph_capture, this};
  }
  DType gemm_input_dtype() const override { return inner_->gemm_input_dtype(); }
  void begin_batch(const ForwardBatch& b) override { inner_->begin_batch(b); }
  void embed(const Tensor& t, Tensor out) override {
    timed("embed", [&] { inner_->embed(t, out); });
  }
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) override {
    timed("rmsnorm", [&] { inner_->rmsnorm(x, w, eps, out); });
  }
  // Keyed by epilogue and the weight's shape (N x K over all parts), e.g. "gemm store 4096x12288".
  void gemm(const GemmOp& op) override {
    static constexpr const char* kEpilogue[] = {"store", "accumulate", "swiglu"};
    std::string key = std::string("gemm ") + kEpilogue[static_cast<int>(op.epilogue)];
    if (op.n_parts > 1) key += " " + std::to_string(op.n_parts) + " parts";
    if (op.epilogue == GemmEpilogue::swiglu) key += " 2x";
    key += " " + std::to_string(op.n_total()) + "x" + std::to_string(op.w[0].cols);
    timed(std::move(key), [&] { inner_->gemm(op); });
  }
  void rope(const RopeOp& op) override {
    timed(op.q_norm.data != nullptr ? "qk_norm_rope" : "rope", [&] { inner_->rope(op); });
  }
  void kv_write(int l, const Tensor& k, const Tensor& v) override {
    timed("kv_write", [&] { inner_->kv_write(l, k, v); });
  }
  void attention(int l, const Tensor& q, int h, float s, int window, Tensor out) override {
    timed("attention", [&] { inner_->attention(l, q, h, s, window, out); });
  }
  void scale(Tensor x, float factor) override {
    timed("scale", [&] { inner_->scale(x, factor); });
  }
  void add(const Tensor& x, Tensor y) override {
    timed("add", [&] { inner_->add(x, y); });
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
  void copy_from_host(const float* host, Tensor x) override { inner_->copy_from_host(host, x); }
  void greedy_rows(const Tensor& l, const Tensor& p, int32_t* ids, float* chosen) override {
    timed("greedy_rows", [&] { inner_->greedy_rows(l, p, ids, chosen); });
  }
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
