// The CUDA backend: the Backend ops on one Hopper GPU, through the kernels in kernels/cuda/.
//
// Numerics: matmul weights are held as bf16 (whatever the file's type: matrices of more than one
// row are rounded to bf16 at upload, rows padded with zeros to a multiple of 8 elements), or in
// invariant mode as their Q8_0 / Q4_0 / Q4_1 / Q4_K / Q5_K / Q6_K blocks (upload_blocks), which
// the GEMM dequantizes to the same bf16 values inside the kernel (kernels/cuda/gemm_quant.h); norm
// weights stay f32. The residual stream and every activation tensor stay f32, as in the model
// code; each matmul rounds its input rows to bf16 (to_bf16_padded) and accumulates in f32 on the
// tensor cores. The KV cache is bf16. So results differ from the CPU backend by bf16 rounding,
// and the system fingerprint differs through name().
//
// Invariance: every op is a kernel whose reduction order depends on shapes only (see each header
// in kernels/cuda/); Mode::fast swaps the GEMM for cuBLAS (R8, labelled in name()).
//
// Fused epilogues (invariant mode, GemmOp): a store of parts runs q | k | v as one GEMM over their
// rows packed back to back (pack_rows), with the output split by columns; swiglu is one gated GEMM
// whose epilogue writes silu(gate) * up, as bf16 into a BF16 output (gemm_input_dtype: the rounding
// the next GEMM's input gets anyway); accumulate without a bias is one GEMM that adds its chains
// to the residual (gemm.h "accumulate"). Each gives the unfused ops' bits (the GEMM's elements do
// not depend on N, and the epilogues evaluate the unfused kernels' f32 expressions on the same
// chains; tests/cuda checks both), so the kernel version does not change. Biases are one f32 add
// after the chain (the add_inplace kernel with a broadcast row). set_fused(false) runs the unfused
// ops, to measure the difference. Fast mode and the split-K negative control always run them
// unfused.
//
// Only built when nvcc is found (BITEXACT_HAVE_CUDA). Ops run asynchronously on the backend's
// stream; copy_to_host synchronises.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace bx {
namespace cuda {
struct QuantGemmArgs;  // kernels/cuda/gemm_quant.h
}  // namespace cuda

class CudaBackend final : public Backend,
                          public GraphCapture,
                          public DeviceSampling,
                          public MoeLayers {
 public:
  enum class Mode { invariant, fast };

  // Throws bx::Error if no Hopper GPU is present.
  explicit CudaBackend(Mode mode = Mode::invariant);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  // "cuda-sm90" (invariant) or "cuda-sm90-fast-cublas".
  std::string name() const override;
  // Matmul inputs are rounded to bf16 and the KV cache is bf16; activations stay f32.
  std::string numerics() const override { return "act=F32|mm=BF16|kv=BF16"; }
  // Bump with any change to a kernel in kernels/cuda/ that can change a bit. With weights held
  // in their blocks (upload_blocks) the GEMM over them is kernels/cuda/gemm_quant.h's, versioned
  // on its own ("-q1"): cuda-k2 stays the version of every bf16-weight model, cuda-k3 with the
  // opt-in attention of BITEXACT_ATTENTION_K3=1 (splits of 128 positions,
  // kernels/cuda/attention.h).
  std::string kernel_version() const override;
  Mode mode() const { return mode_; }

  Tensor alloc(DType dtype, int64_t rows, int64_t cols) override;
  Tensor upload_matrix(const float* host, int64_t rows, int64_t cols, DType dtype) override;
  // Invariant mode keeps Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K weights in their GGUF blocks (the
  // formats of kernels/cuda/gemm_quant.h; their GEMM gives the bits of the bf16 copy the other
  // formats get at load); fast mode (cuBLAS) takes none.
  bool can_hold_blocks(DType dtype) const override;
  // The raw blocks, N rows of cols / E blocks back to back (stride = cols elements), plus 16
  // bytes of padding (the kernel loads whole 16-byte chunks).
  Tensor upload_blocks(const void* blocks, int64_t rows, int64_t cols, DType dtype) override;
  // Generated on the device (kernels/cuda/generate.h); held as upload_matrix holds weights.
  Tensor generate_matrix(int64_t rows, int64_t cols, DType dtype, uint64_t stream, float offset,
                         float scale) override;
  // Weight updates in place (backend/cuda_weight_write.cu): matrices are held as BF16 and
  // vectors (one row) as F32, whatever the source, so an update never reallocates (and the CUDA
  // graphs' pointers stay valid); a device source is converted on the device.
  DType held_dtype(DType requested, int64_t rows) const override {
    (void)requested;
    return rows == 1 ? DType::f32 : DType::bf16;
  }
  void write_rows(Tensor dst, int64_t dst_first, int64_t dst_step, int64_t count, const void* src,
                  DType src_dtype, bool src_on_device) override;
  void init_kv_cache(const KvCacheShape& shape) override;
  // The batch arrays, their pinned staging, GEMM input rows, attention's plan and the sampling
  // buffers, for `limits` (at least what is held). A batch or a row count beyond them (a bare
  // backend in a test) reserves more first; each reservation drops the recordings.
  void reserve_step_state(const StepLimits& limits) override;
  int64_t allocation_count() const override;
  // cudaMemGetInfo's free bytes plus the current KV cache's.
  int64_t kv_memory_available() const override;
  int kv_element_bytes() const override { return 2; }  // BF16
  void set_rope_table(const RopeTable& table) override;
  void set_local_rope_table(const RopeTable& table) override;
  void set_reduction_order(ReductionOrder order) override { order_ = order; }
  // bf16 weights, or blocks of one format, of one cols and stride: moved into one allocation
  // (see Backend::pack_rows).
  bool pack_rows(std::span<Tensor* const> parts) override;
  // The fused ops on (default) or the Backend defaults (same bits; for measurements). A change
  // drops the recordings (they hold the other ops).
  void set_fused(bool fused);
  bool fused() const { return fused_; }
  // GEMMs issued by fused epilogues so far (one per store of parts, swiglu and accumulate that
  // fused), for tests.
  int64_t fused_gemms() const { return fused_gemms_; }

  // CUDA graphs (GraphCapture): stream capture of the ops, instantiated once per key, replayed
  // while the batch buffers and the KV cache stay where they were. Device sampling
  // (DeviceSampling): greedy and seeded choices on the GPU. Mixture-of-Experts layers
  // (MoeLayers): kernels/cuda/moe.h, with no host synchronisation (so they record); fast mode
  // routes through cuBLAS and combines by atomicAdd; the split-K order runs moe.h's controls.
  BackendCapabilities capabilities() override { return {this, this, this}; }
  std::string unsupported_head_dim(int head_dim) const override;
  DType gemm_input_dtype() const override { return DType::bf16; }
  bool replay(uint64_t key) override;
  void begin_recording(uint64_t key) override;
  bool end_recording(uint64_t key, bool launch) override;

  void begin_batch(const ForwardBatch& batch) override;
  void embed(const Tensor& table, Tensor out) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) override;
  void gemm(const GemmOp& op) override;
  void rope(const RopeOp& op) override;  // q/k norm and RoPE in one launch where fusable
  void kv_write(int layer, const Tensor& k, const Tensor& v) override;
  void attention(int layer, const Tensor& q, int n_heads, float scale, int window,
                 Tensor out) override;
  void scale(Tensor x, float factor) override;
  void add(const Tensor& x, Tensor y) override;
  void gather_logit_rows(const Tensor& x, Tensor out) override;
  void log_softmax(const Tensor& x, Tensor out) override;
  void copy_to_host(const Tensor& x, float* host) override;
  void copy_from_host(const float* host, Tensor x) override;  // synchronises
  void greedy_rows(const Tensor& logits, const Tensor& logprobs, int32_t* ids,
                   float* chosen) override;  // kernels/cuda/greedy.h
  void sample_rows(const Tensor& logits, const Tensor& logprobs,
                   std::span<const SamplingParams> params, std::span<const uint64_t> token_indices,
                   int32_t* ids, float* chosen) override;  // kernels/cuda/sample.h

  int64_t moe_scratch_bytes(int64_t T, int64_t D, int64_t F, int E, int k) const override;
  void moe(const MoeOp& op) override;  // kernels/cuda/moe.h

  // The cudaStream_t every op is enqueued on (for benchmarks that time ops with CUDA events).
  void* stream_handle() const;

 private:
  struct State;  // device buffers and the stream (CUDA types stay in the .cu file)
  void* device_bytes(size_t bytes);  // cudaMalloc'd, zeroed, freed with the backend
  int32_t block_count(int32_t position) const;
  void derive_tables(const ForwardBatch& batch);
  void reserve_rows(int64_t rows, int64_t vocab);
  // A GEMM's bf16 input rows: x itself where it is BF16 already, else x's rows rounded to bf16
  // in the GEMM input buffer, each padded with zeros to Kp columns.
  struct GemmInput {
    const uint16_t* x;
    int64_t stride;
  };
  GemmInput gemm_input(const Tensor& x, int64_t Kp);
  // y (+)= in W^T: the invariant GEMM, cuBLAS in fast mode, or the split-K control.
  void matmul(const GemmInput& in, const Tensor& w, Tensor y, bool accumulate = false);
  // The same over weights held in their blocks (kernels/cuda/gemm_quant.h).
  void matmul_blocks(const GemmInput& in, const Tensor& w, Tensor y, bool accumulate);
  // gemm_quant's arguments for y = in W^T (W in blocks; y's f32 data, if F32).
  cuda::QuantGemmArgs quant_gemm_args(const GemmInput& in, const Tensor& w, const Tensor& y);
  void add_bias(Tensor y, const Tensor& bias);  // y[t] += bias[0] for every row t
  void gemm_store(const GemmOp& op);
  void gemm_accumulate(const GemmOp& op);
  void gemm_swiglu(const GemmOp& op);
  // Whether the fused ops run now: invariant mode, canonical order, set_fused(true).
  bool fusing() const;

  Mode mode_;
  ReductionOrder order_ = ReductionOrder::canonical;
  bool fused_ = true;
  int64_t fused_gemms_ = 0;
  bool holds_blocks_ = false;  // some weight lives in its quant blocks (kernel_version)
  std::unique_ptr<State> state_;
};

}  // namespace bx
