// The backend interface: the ops a decoder forward pass needs, on one device.
//
// The model code (model/llama.cpp) is written once against this interface; the CPU backend
// implements it now, a CUDA backend later. Tensors are 2-D row-major views of memory the backend
// owns. Everything is allocated before the first forward pass (STYLE.md 7): weights by
// upload_matrix (or upload_blocks), work buffers by alloc, the KV cache by init_kv_cache.
//
// Invariance: every op computes each output row from the same input row only (or, for attention,
// from its own sequence's cache), in an order fixed by the shapes (INVARIANCE.md R1-R5).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/matmul.h"
#include "kernels/rope.h"
#include "sampling/sampler.h"

namespace bx {

struct Tensor {
  void* data = nullptr;  // device memory of the backend that made it
  DType dtype = DType::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;    // elements between rows (a multiple of 32 for Q8_0 / Q4_0 / Q4_1)

  // Rows [first, first + count) of this tensor.
  Tensor rows_view(int64_t first, int64_t count) const;
};

// One forward call's tokens: a ragged batch of sequences, flattened.
struct ForwardBatch {
  std::span<const int32_t> tokens;      // [T] token ids
  std::span<const int32_t> positions;   // [T] absolute position of each token in its sequence
  std::span<const int32_t* const> block_tables;  // [T] KV block table of each token's sequence
  std::span<const int32_t> logit_rows;  // [R] indices into tokens whose logits are wanted
};

struct KvCacheShape {
  int n_layers = 0;
  int64_t n_blocks = 0;
  int block_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu-avx512", "cpu-scalar", ... — goes into the system fingerprint.
  virtual std::string name() const = 0;
  // The rest of the arithmetic that decides output bits, for the system fingerprint: the dtypes
  // of activations, matmul inputs and the KV cache ("act=F32|kv=F32"), and the version of this
  // backend's kernels, bumped whenever a reduction order or any bit-deciding operation changes.
  virtual std::string numerics() const = 0;
  virtual std::string kernel_version() const = 0;

  // --- set-up (never called inside forward) ---
  virtual Tensor alloc(DType dtype, int64_t rows, int64_t cols) = 0;
  // A weight matrix [rows, cols] from host f32 data, stored as `dtype` (f32 or bf16).
  virtual Tensor upload_matrix(const float* host, int64_t rows, int64_t cols, DType dtype) = 0;
  // Block-quantized weights kept as they are (optional; the loader asks first):
  // can_hold_blocks(dtype) says whether this backend's embed and matmul read `dtype` (Q8_0, Q4_0,
  // Q4_1) directly, giving the bits of the dequantized f32 copy (kernels/quant.h, matmul.h).
  // upload_blocks copies rows * cols / 32 raw GGUF blocks (row-major, cols a multiple of 32).
  virtual bool can_hold_blocks(DType dtype) const {
    (void)dtype;
    return false;
  }
  virtual Tensor upload_blocks(const void* blocks, int64_t rows, int64_t cols, DType dtype) {
    (void)blocks, (void)rows, (void)cols;
    throw Error("backend " + name() + " cannot hold " + std::string(dtype_name(dtype)) +
                " weights: dequantize them at load");
  }
  // A generated weight matrix [rows, cols] (model/random_model.h): element (r, c) is
  // hash_weight(stream, r * cols + c, offset, scale) (core/counter_hash.h), in f32, then held as
  // upload_matrix would hold those values with `dtype`. The default computes them on the host
  // and calls upload_matrix (fine for small shapes); a GPU backend computes them in place.
  virtual Tensor generate_matrix(int64_t rows, int64_t cols, DType dtype, uint64_t stream,
                                 float offset, float scale);
  virtual void init_kv_cache(const KvCacheShape& shape) = 0;
  // Bytes the KV cache may take on this device: its free memory plus what the current KV cache
  // holds (a new one replaces it). -1 where memory is not a device's (the CPU): the engine then
  // sizes the pool from the sequences it serves (engine/kv_sizing.h).
  virtual int64_t kv_memory_available() const { return -1; }
  // Bytes of one KV cache element (F32: 4, BF16: 2).
  virtual int kv_element_bytes() const { return 4; }
  virtual void set_rope_table(const RopeTable& table) = 0;
  virtual void set_reduction_order(ReductionOrder order) = 0;  // canonical unless a test says so
  // Stores the weight matrices *parts (one dtype, cols and stride) back to back in one allocation,
  // in order, and points each Tensor at its rows there; values unchanged, the old memory freed
  // (so no other copy of these Tensors may be used after). Lets matmul_parts run them as one
  // matmul. Returns false, changing nothing, where the backend does not pack (the default).
  virtual bool pack_rows(std::span<Tensor* const> parts) {
    (void)parts;
    return false;
  }

  // --- weight updates in place (model/weight_update.h; optional) ---
  // The dtype upload_matrix(host, rows, cols, requested) holds a [rows, cols] matrix in.
  virtual DType held_dtype(DType requested, int64_t rows) const {
    (void)rows;
    return requested;
  }
  // Rows dst_first + k * dst_step (k < count) of `dst` (F32 or BF16, made by alloc or
  // upload_matrix) get the k-th of `count` dense rows of dst.cols values at `src` (F32 or BF16;
  // in this backend's device memory where src_on_device, else in host memory), converted as
  // upload_matrix converts (BF16 -> F32 exactly, F32 -> BF16 to nearest even). Done on return.
  virtual void write_rows(Tensor dst, int64_t dst_first, int64_t dst_step, int64_t count,
                          const void* src, DType src_dtype, bool src_on_device) {
    (void)dst, (void)dst_first, (void)dst_step, (void)count, (void)src, (void)src_dtype,
        (void)src_on_device;
    throw Error("backend " + name() + " cannot update weights in place");
  }
  // Frees the memory of a tensor made by alloc / upload_* that nothing uses any more (the
  // default keeps it until the backend goes).
  virtual void free_tensor(const Tensor& t) { (void)t; }

  // --- recording the ops of a forward pass for replay (CUDA graphs; optional) ---
  // A backend that can record the ops issued after begin_batch and launch them again as one
  // unit says so with can_replay(). A recording is only valid for a batch of the same shape
  // whose device-side inputs (ids, positions, block tables) sit where they sat when it was made;
  // begin_batch keeps them there, and replay() reports false when they have moved.
  virtual bool can_replay() const { return false; }
  // Launches the ops recorded under `key` (after begin_batch); false if there is no valid one.
  virtual bool replay(uint64_t key) {
    (void)key;
    return false;
  }
  // Ops issued from here to end_recording are recorded under `key`, not run.
  virtual void begin_recording(uint64_t key) { (void)key; }
  // Ends the recording; launches it if `launch`. False if recording failed: the ops have not
  // run, and the caller must issue them again directly.
  virtual bool end_recording(uint64_t key, bool launch) {
    (void)key, (void)launch;
    return false;
  }

  // --- ops (f32 tensors unless stated) ---
  // Copies the batch's token ids, positions and block tables where the ops below can read them.
  virtual void begin_batch(const ForwardBatch& batch) = 0;
  virtual void embed(const Tensor& table, Tensor out) = 0;  // out[t] = table[tokens[t]] (as f32)
  virtual void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) = 0;
  virtual void matmul(const Tensor& x, const Tensor& w, Tensor y) = 0;  // y = x @ w^T
  virtual void rope(Tensor x, int n_heads) = 0;                      // at the batch positions
  virtual void kv_write(int layer, const Tensor& k, const Tensor& v) = 0;
  virtual void attention(int layer, const Tensor& q, int n_heads, float scale, Tensor out) = 0;
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor out) = 0;
  virtual void add_inplace(Tensor y, const Tensor& x) = 0;
  // Fused forms of the sequences the model runs. Each is defined as the composition its default
  // runs, with those ops' bits; a backend overrides one only where its fused version gives
  // exactly the same bits for every batch (or it must bump kernel_version).
  // y[i] = x @ w[i]^T for each i (q, k, v from one input). Default: matmul per part, in order.
  virtual void matmul_parts(const Tensor& x, std::span<const Tensor> w, std::span<Tensor> y);
  // out = silu(x @ w_gate^T) * (x @ w_up^T) (F.silu(gate) * up); `up` [rows, F] is scratch.
  // Default: matmul(x, w_gate, out), matmul(x, w_up, up), silu_mul(out, up, out).
  virtual void matmul_swiglu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor out,
                             Tensor up);
  // y += x @ w^T (the residual add); `scratch` [rows, w.rows]. Default: matmul(x, w, scratch),
  // add_inplace(y, scratch).
  virtual void matmul_add(const Tensor& x, const Tensor& w, Tensor y, Tensor scratch);
  // The SwiGLU MLP added to the residual: x += (silu(h Wg^T) * (h Wu^T)) Wd^T. h [rows, D] is
  // overwritten (scratch), gate and up [rows, F] are scratch. Default:
  // matmul_swiglu(h, w_gate, w_up, gate, up), matmul_add(gate, w_down, x, h).
  virtual void mlp_add(Tensor h, const Tensor& w_gate, const Tensor& w_up, const Tensor& w_down,
                       Tensor x, Tensor gate, Tensor up);
  // y[t, :] += bias[0, :] for every row t (bias [1, cols]), after the matmul that made y (R3).
  // Models with attention biases (Qwen2, attention_bias) need it; the default throws bx::Error
  // naming the backend, so a backend without it fails clearly on those models only.
  virtual void add_bias(Tensor y, const Tensor& bias);
  // Per-head RMSNorm (weights q_norm / k_norm [1, head_dim]; skipped where null) then RoPE at
  // the batch positions, of q [T, n_heads * head_dim] and k [T, n_kv_heads * head_dim], in place.
  // Exactly rmsnorm over each head as a row, then rope(q, n_heads) and rope(k, n_kv_heads): the
  // default makes those calls; a backend may fuse them only with the same bits.
  virtual void qk_norm_rope(Tensor q, int n_heads, Tensor k, int n_kv_heads, const Tensor* q_norm,
                            const Tensor* k_norm, float eps);
  virtual void gather_logit_rows(const Tensor& x, Tensor out) = 0;  // out[r] = x[logit_rows[r]]
  virtual void log_softmax(const Tensor& x, Tensor out) = 0;
  virtual void copy_to_host(const Tensor& x, float* host) = 0;       // [rows, cols] densely
  // Greedy choice per row, without moving the rows to the host: ids[r] = argmax(logits[r])
  // (ties to the lowest id, NaNs skipped, 0 if all NaN: bx::argmax, kernels/rows.h) and
  // chosen[r] = logprobs[r, ids[r]], for r < logits.rows (host arrays). logprobs is
  // log_softmax(logits). The default copies each row to the host and calls bx::argmax.
  virtual void greedy_rows(const Tensor& logits, const Tensor& logprobs, int32_t* ids,
                           float* chosen);
  // Seeded sampling per row without moving the rows to the host: ids[r] and chosen[r] are what
  // Sampler::sample(logits[r], logprobs[r], params[r], token_indices[r]) returns, bit for bit
  // (sampling/sampler.h; temperature 0 is the greedy choice), for r < logits.rows; params and
  // token_indices have logits.rows entries. Throws bx::Error for invalid params (bx::validate).
  // can_sample_rows() says whether the device does it (the engine then uses it); the default
  // copies each row to the host and runs the Sampler there.
  virtual bool can_sample_rows() const { return false; }
  virtual void sample_rows(const Tensor& logits, const Tensor& logprobs,
                           std::span<const SamplingParams> params,
                           std::span<const uint64_t> token_indices, int32_t* ids, float* chosen);
};

}  // namespace bx
