// The CPU backend: the Backend ops on host memory, through the invariant kernels in kernels/.
// It runs every fusion unfused: its op sequences define the bits (GemmOp, RopeOp).
#pragma once

#include <memory>
#include <unordered_set>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"

namespace bx {

// MoE layers (kernels/moe.h): in fast mode (split_k_by_m) the expert GEMMs split K by their
// token counts and each token combines its experts in the order they ran (the conventional,
// batch-dependent way); in invariant mode, the canonical GEMMs and the rank-order combine.
class CpuBackend final : public Backend, public MoeLayers {
 public:
  // quant_dot: dequantized_f32 is kernel version cpu-k1 (the default), int8_activations cpu-k2
  // (block-quantized dense matmuls on int8 activations: kernels/matmul.h; MoE experts keep the
  // cpu-k1 arithmetic).
  explicit CpuBackend(int threads, QuantDot quant_dot = QuantDot::dequantized_f32);
  ~CpuBackend() override;

  std::string name() const override { return "cpu"; }
  std::string numerics() const override { return "act=F32|kv=F32"; }
  std::string kernel_version() const override {
    return quant_dot_ == QuantDot::int8_activations ? "cpu-k2" : "cpu-k1";
  }
  BackendCapabilities capabilities() override { return {.moe = this}; }
  std::string unsupported_head_dim(int head_dim) const override;
  ThreadPool& pool() { return pool_; }

  Tensor alloc(DType dtype, int64_t rows, int64_t cols) override;
  Tensor upload_matrix(const float* host, int64_t rows, int64_t cols, DType dtype) override;
  bool can_hold_blocks(DType dtype) const override;  // every format of kernels/quant.h
  Tensor upload_blocks(const void* blocks, int64_t rows, int64_t cols, DType dtype) override;
  // Weight updates (backend/cpu_weight_write.cpp): host sources only.
  void write_rows(Tensor dst, int64_t dst_first, int64_t dst_step, int64_t count, const void* src,
                  DType src_dtype, bool src_on_device) override;
  void free_tensor(const Tensor& t) override;
  // cpu-k2 only: Q8_0 weights of a multiple of 8 rows move into the tiles the int8-dot kernel
  // streams (kernels/q8_0_tiles.h); matmul and embed read them there.
  bool prefer_gemm_layout(const Tensor& w) override;
  void init_kv_cache(const KvCacheShape& shape) override;
  // The CPU's step state is the model's work buffers and the batch's own arrays (begin_batch
  // keeps spans into them): reserve_step_state has nothing to add.
  int64_t allocation_count() const override { return allocation_count_; }
  void set_rope_table(const RopeTable& table) override;
  void set_local_rope_table(const RopeTable& table) override;
  void set_reduction_order(ReductionOrder order) override { order_ = order; }

  void begin_batch(const ForwardBatch& batch) override;
  void embed(const Tensor& table, Tensor out) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) override;
  // The epilogues as GemmOp defines them: matmul, then the row kernels (kernels/rows.h).
  void gemm(const GemmOp& op) override;
  void rope(const RopeOp& op) override;
  void kv_write(int layer, const Tensor& k, const Tensor& v) override;
  void attention(int layer, const Tensor& q, int n_heads, float scale, int window,
                 Tensor out) override;
  void scale(Tensor x, float factor) override;
  void add(const Tensor& x, Tensor y) override;
  void gather_logit_rows(const Tensor& x, Tensor out) override;
  void log_softmax(const Tensor& x, Tensor out) override;
  void copy_to_host(const Tensor& x, float* host) override;
  void copy_from_host(const float* host, Tensor x) override;

  int64_t moe_scratch_bytes(int64_t T, int64_t D, int64_t F, int E, int k) const override;
  void moe(const MoeOp& op) override;

 private:
  struct AlignedFree {
    void operator()(void* p) const;
  };
  void* allocate_bytes(size_t bytes);
  KvLayerView kv_layer(int layer) const;
  void matmul(const Tensor& x, const Tensor& w, Tensor y);  // y = x @ w^T
  void add_bias(Tensor y, const Tensor& bias);              // y[t] += bias[0] for every row t
  void norm_heads(const Tensor& x, int n_heads, const Tensor& w, float eps);

  ThreadPool pool_;
  ReductionOrder order_ = ReductionOrder::canonical;
  QuantDot quant_dot_;
  std::vector<std::unique_ptr<void, AlignedFree>> allocations_;
  std::unique_ptr<void, AlignedFree> kv_storage_;  // [L][2 (k, v)][n_blocks][block_size][Hkv*Dh]
  KvCacheShape kv_shape_;
  RopeTable rope_table_;
  RopeTable local_rope_table_;    // RopeOp::local_table (empty unless set)
  ForwardBatch batch_;            // spans into the caller's arrays, valid during one forward call
  std::unordered_set<const void*> q8_0_tiled_;  // data of the weights prefer_gemm_layout tiled
  std::vector<uint8_t> tiled_row_;  // embed: one row of a tiled table back in GGUF blocks
  int64_t allocation_count_ = 0;  // allocate_bytes calls
};

}  // namespace bx
