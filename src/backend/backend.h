// The backend interface: the ops a decoder forward pass needs, on one device.
//
// The model code (model/llama.cpp) is written once against this interface; the CPU backend and
// the CUDA backend implement it. Fusions are data (GemmOp's epilogue, RopeOp's norms), not
// methods; optional device features are small interfaces of their own (BackendCapabilities).
// Tensors are 2-D row-major views of memory the backend
// owns. Everything is allocated before the first forward pass (STYLE.md 7): weights by
// upload_matrix (or upload_blocks), work buffers by alloc, the KV cache by init_kv_cache, the
// per-step buffers by reserve_step_state; allocation_count lets a test check it.
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
  int64_t stride = 0;  // elements between rows (a multiple of the block size for block formats)

  // Rows [first, first + count) of this tensor.
  Tensor rows_view(int64_t first, int64_t count) const;
};

// One forward call's tokens: a ragged batch of sequences, flattened. The engine's ModelRunner
// builds it once per step, every field; the model and the backends read it as it is.
struct ForwardBatch {
  std::span<const int32_t> tokens;     // [T] token ids
  std::span<const int32_t> positions;  // [T] absolute position of each token in its sequence
  std::span<const int32_t* const> block_tables;  // [T] KV block table of each token's sequence
  std::span<const int32_t> logit_rows;           // [R] indices into tokens whose logits are wanted
  // The block tables once per sequence: table_blocks holds each sequence's blocks up to the one
  // of its last position in the batch, sequences in order of first appearance, and
  // block_tables[t] == table_blocks.data() + table_offsets[t]. Both empty in a batch made by
  // hand (tests, tools): a backend that reads them derives them from block_tables.
  std::span<const int32_t> table_offsets = {};  // [T]
  std::span<const int32_t> table_blocks = {};   // [sum over sequences of their blocks]
  // A decode step padded to its DecodeGraphs bucket: the last `fillers` tokens are filler (id 0
  // at position 0 in the scratch block, each its own logit row), and their rows are not returned
  // (LogitOutputs has R - fillers rows).
  int64_t fillers = 0;
};

// The largest step a backend must hold without allocating (Backend::reserve_step_state).
struct StepLimits {
  int64_t max_tokens = 0;        // T
  int64_t max_logit_rows = 0;    // R
  int64_t max_table_blocks = 0;  // ForwardBatch::table_blocks entries
  int64_t vocab = 0;             // V
};

struct KvCacheShape {
  int n_layers = 0;
  int64_t n_blocks = 0;
  int block_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// What a GEMM does with its finished chains (INVARIANCE.md R3: after the K loop, the same way for
// every M). Mirrors cuda::GemmArgs (kernels/cuda/gemm.h): one GEMM, the fusion as data.
enum class GemmEpilogue {
  store,       // y_i = x W_i^T (+ b_i)                 for each part i (q | k | v from one x)
  accumulate,  // y = y + (x W^T (+ b))                 (the residual add; one part)
  swiglu,      // y = silu(x Wg^T) * (x Wu^T)           (F.silu(gate) * up; w[0] = Wg; no bias)
  geglu,       // y = gelu_tanh(x Wg^T) * (x Wu^T)      (Gemma's gelu_pytorch_tanh(gate) * up)
};

// Whether an epilogue gates two projections (gate in w[0], up in w_up).
inline bool is_gated(GemmEpilogue e) {
  return e == GemmEpilogue::swiglu || e == GemmEpilogue::geglu;
}

// One GEMM: y[M, N] = x[M, K] @ W[N, K]^T and its epilogue. Bits: each output element is defined
// as the sequence of the unfused ops, which is what the CPU backend runs:
//   store:      y_i = matmul(x, W_i); y_i = y_i + b_i (one f32 add per element, where b_i is set)
//   accumulate: t = matmul(x, W); t = t + b (where set); y = y + t
//   swiglu:     g = matmul(x, Wg); u = matmul(x, Wu); y = (g / (1 + exp(-g))) * u (kernels/rows.h)
//   geglu:      g, u likewise; y = gelu_tanh_mul(g, u)                             (kernels/rows.h)
// A backend may fuse any of these only where it gives exactly these bits for every M (else it
// must bump kernel_version). With y of the backend's gemm_input_dtype() other than f32 (a swiglu
// output that feeds the next GEMM), y holds the values rounded as that GEMM would round them.
struct GemmOp {
  static constexpr int kMaxParts = 3;
  Tensor x;                // [M, K]: f32, or gemm_input_dtype() (a swiglu output)
  Tensor w[kMaxParts];     // [N_i, K] weights, one per output part
  Tensor y[kMaxParts];     // [M, N_i] outputs (f32; a swiglu output: gemm_input_dtype())
  Tensor bias[kMaxParts];  // [1, N_i] f32, or empty (data == nullptr): no bias
  int n_parts = 1;         // > 1 only with store
  GemmEpilogue epilogue = GemmEpilogue::store;
  Tensor w_up;  // swiglu, geglu: the up rows [N, K]
  // f32 work rows for backends that run the epilogue unfused: accumulate [M, >= N] (x W^T),
  // swiglu and geglu [M, >= 2N] (the up projection, and the gate where y is not f32).
  Tensor scratch;

  // y = x W^T (+ bias).
  static GemmOp projection(const Tensor& x, const Tensor& w, const Tensor& y,
                           const Tensor& bias = {});
  // y[i] = x w[i]^T (+ bias[i]) for each part (bias empty, or one per part, each maybe empty).
  static GemmOp parts(const Tensor& x, std::span<const Tensor> w, std::span<const Tensor> y,
                      std::span<const Tensor> bias = {});
  // y += x W^T (+ bias).
  static GemmOp residual(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& scratch,
                         const Tensor& bias = {});
  // y = silu(x Wg^T) * (x Wu^T).
  static GemmOp swiglu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, const Tensor& y,
                       const Tensor& scratch);
  // y = gelu_tanh(x Wg^T) * (x Wu^T).
  static GemmOp geglu(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, const Tensor& y,
                      const Tensor& scratch);
  // Output columns over all parts.
  int64_t n_total() const;
};

// Throws bx::Error naming `who` and the first mismatch unless op's shapes and fields agree
// (each backend calls it first).
void check_gemm_op(const GemmOp& op, const std::string& who);

// RoPE at the batch positions of q [T, n_heads * Dh] and, where k.data is set, k [T, n_kv_heads *
// Dh], in place; first each head of q (k) as a row through rmsnorm with q_norm (k_norm) [1, Dh]
// where that weight is set (Qwen3). Bits: exactly rmsnorm of every head row, then rope of q and
// of k (kernels/rope.h). local_table: the angles of the second table
// (Backend::set_local_rope_table, Gemma 3's sliding-window layers) instead of the first.
struct RopeOp {
  Tensor q;
  int n_heads = 0;
  Tensor k;  // or empty
  int n_kv_heads = 0;
  Tensor q_norm, k_norm;  // [1, Dh] f32, or empty: no norm
  float eps = 0.0f;
  bool local_table = false;
};

// Optional capabilities, each a small interface of its own (Backend::capabilities says which a
// backend has).

// Recording the ops of a forward pass for replay (CUDA graphs). A recording is only valid for a
// batch of the same shape whose device-side inputs (ids, positions, block tables) sit where they
// sat when it was made; begin_batch keeps them there, and replay() reports false when they have
// moved.
class GraphCapture {
 public:
  virtual ~GraphCapture() = default;
  // Launches the ops recorded under `key` (after begin_batch); false if there is no valid one.
  virtual bool replay(uint64_t key) = 0;
  // Ops issued from here to end_recording are recorded under `key`, not run.
  virtual void begin_recording(uint64_t key) = 0;
  // Ends the recording; launches it if `launch`. False if recording failed: the ops have not
  // run, and the caller must issue them again directly.
  virtual bool end_recording(uint64_t key, bool launch) = 0;
};

// Choosing tokens on the device, moving (id, logprob) per row instead of two rows of V floats.
// Same bits as the host paths (bx::greedy_rows and bx::sample_rows below give them for any
// backend).
class DeviceSampling {
 public:
  virtual ~DeviceSampling() = default;
  // ids[r] = argmax(logits[r]) (ties to the lowest id, NaNs skipped, 0 if all NaN: bx::argmax,
  // kernels/rows.h) and chosen[r] = logprobs[r, ids[r]], for r < logits.rows (host arrays).
  // logprobs is log_softmax(logits).
  virtual void greedy_rows(const Tensor& logits, const Tensor& logprobs, int32_t* ids,
                           float* chosen) = 0;
  // ids[r] and chosen[r] are what Sampler::sample(logits[r], logprobs[r], params[r],
  // token_indices[r]) returns, bit for bit (sampling/sampler.h; temperature 0 is the greedy
  // choice), for r < logits.rows; params and token_indices have logits.rows entries. Throws
  // bx::Error for invalid params (bx::validate).
  virtual void sample_rows(const Tensor& logits, const Tensor& logprobs,
                           std::span<const SamplingParams> params,
                           std::span<const uint64_t> token_indices, int32_t* ids,
                           float* chosen) = 0;
};

// A Mixture-of-Experts MLP over T tokens: y += moe(x), the bits kernels/moe.h defines (router
// GEMM, softmax and top-k with ties to the lowest expert id, each expert's SwiGLU on the rows
// routed to it with the GEMM's row independence, the combine in each token's rank order).
struct MoeOp {
  Tensor x;                // [T, D] f32: the normed residual
  Tensor y;                // [T, D] f32: the residual stream
  Tensor router;           // [E, D]
  Tensor gate, up;         // [E*F, D]: expert e is rows [e*F, (e+1)*F)
  Tensor down;             // [E*D, F]: expert e is rows [e*D, (e+1)*D)
  int top_k = 0;           // k experts per token
  bool normalize = false;  // the top-k weights are divided by their sum (norm_topk_prob)
  Tensor scratch;          // from alloc, at least MoeLayers::scratch_bytes(T, ...) bytes
};

// Running MoeOp (a backend without it cannot load a Mixture-of-Experts model).
class MoeLayers {
 public:
  virtual ~MoeLayers() = default;
  // Bytes of MoeOp::scratch for up to T tokens of D wide, E experts of F, k per token.
  virtual int64_t moe_scratch_bytes(int64_t T, int64_t D, int64_t F, int E, int k) const = 0;
  // Throws bx::Error naming the first mismatch of the op's shapes.
  virtual void moe(const MoeOp& op) = 0;
};

struct BackendCapabilities {
  GraphCapture* graph_capture = nullptr;      // null: ops always run directly
  DeviceSampling* device_sampling = nullptr;  // null: rows are copied to the host
  MoeLayers* moe = nullptr;                   // null: no Mixture-of-Experts models
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
  // The optional interfaces this backend implements (none by default).
  virtual BackendCapabilities capabilities() { return {}; }
  // Empty when attention() takes heads of head_dim dims; else the head dims it takes, for the
  // error that refuses such a model before its weights load ("multiples of 8 up to 256").
  virtual std::string unsupported_head_dim(int head_dim) const {
    (void)head_dim;
    return {};
  }
  // The dtype gemm reads its input rows in (an f32 x is rounded to it first): f32 on the CPU,
  // bf16 on CUDA. A swiglu output of this dtype is exactly the next GEMM's input.
  virtual DType gemm_input_dtype() const { return DType::f32; }

  // --- set-up (never called inside forward) ---
  virtual Tensor alloc(DType dtype, int64_t rows, int64_t cols) = 0;
  // A weight matrix [rows, cols] from host f32 data, stored as `dtype` (f32 or bf16).
  virtual Tensor upload_matrix(const float* host, int64_t rows, int64_t cols, DType dtype) = 0;
  // Block-quantized weights kept as they are (optional; the loader asks first):
  // can_hold_blocks(dtype) says whether this backend's embed and gemm read `dtype` (a block format
  // of kernels/quant.h) directly, giving the bits of the dequantized f32 copy.
  // upload_blocks copies rows * cols / block-size raw GGUF blocks (row-major, cols a multiple of
  // the block size).
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
  // A second table (same head_dim, max_positions and layout) for RopeOp::local_table: the RoPE of
  // a model whose sliding-window layers turn at another base (Gemma 3). The default refuses.
  virtual void set_local_rope_table(const RopeTable& table) {
    (void)table;
    throw Error("backend " + name() + " has no second RoPE table (sliding-window layers with " +
                "their own RoPE base)");
  }
  virtual void set_reduction_order(ReductionOrder order) = 0;  // canonical unless a test says so
  // Stores the weight matrices *parts (one dtype, cols and stride) back to back in one allocation,
  // in order, and points each Tensor at its rows there; values unchanged, the old memory freed
  // (so no other copy of these Tensors may be used after). Lets a GemmOp of parts run as one
  // GEMM. Returns false, changing nothing, where the backend does not pack (the default).
  virtual bool pack_rows(std::span<Tensor* const> parts) {
    (void)parts;
    return false;
  }
  // From now on `w` (a weight made by upload_blocks) is read by gemm and embed only, never by
  // moe, write_rows or copy_to_host: the backend may move its bytes into a layout its GEMM reads
  // faster, in place (the Tensor and every copy of it stay valid; values and bits unchanged).
  // Returns whether it did. The default keeps every layout.
  virtual bool prefer_gemm_layout(const Tensor& w) {
    (void)w;
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

  // Allocates every buffer a forward pass of up to `limits` needs (batch arrays, staging, GEMM
  // inputs, sampling scratch), so that no forward within them allocates; a call within what is
  // held changes nothing. Set-up only (LoadedModel::reserve_kv_blocks calls it).
  virtual void reserve_step_state(const StepLimits& limits) { (void)limits; }
  // Device or host buffers this backend has allocated so far (alloc, uploads, the KV cache, step
  // state): a forward pass after reserve_step_state leaves it unchanged.
  virtual int64_t allocation_count() const = 0;

  // --- ops (f32 tensors unless stated) ---
  // Copies the batch's token ids, positions and block tables where the ops below can read them.
  virtual void begin_batch(const ForwardBatch& batch) = 0;
  virtual void embed(const Tensor& table, Tensor out) = 0;  // out[t] = table[tokens[t]] (as f32)
  // out[m] = (x[m] * r) * w, r = 1 / sqrt(mean(x[m]^2) + eps) (kernels/rows.h); out may alias x.
  virtual void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) = 0;
  virtual void gemm(const GemmOp& op) = 0;
  virtual void rope(const RopeOp& op) = 0;
  virtual void kv_write(int layer, const Tensor& k, const Tensor& v) = 0;
  // window > 0: a token at position p attends to positions (p - window, p] only; 0: to 0..p
  // (kernels/attention.h: the window removes positions, the chunks stay the same).
  virtual void attention(int layer, const Tensor& q, int n_heads, float scale, int window,
                         Tensor out) = 0;
  // x[m,i] = x[m,i] * factor (Gemma's embedding scale).
  virtual void scale(Tensor x, float factor) = 0;
  // y[m,i] = y[m,i] + x[m,i] (a residual add of a post-normed sublayer output).
  virtual void add(const Tensor& x, Tensor y) = 0;
  virtual void gather_logit_rows(const Tensor& x, Tensor out) = 0;  // out[r] = x[logit_rows[r]]
  virtual void log_softmax(const Tensor& x, Tensor out) = 0;
  virtual void copy_to_host(const Tensor& x, float* host) = 0;  // [rows, cols] densely
  // x (f32, from alloc) = host [rows, cols] densely: activations set from outside a forward pass
  // (tests, tools); weights go through upload_matrix, which may store them in another dtype.
  virtual void copy_from_host(const float* host, Tensor x) = 0;
};

// The greedy choice per row (DeviceSampling::greedy_rows' contract): on the device where the
// backend can, else each row copied to the host and bx::argmax.
void greedy_rows(Backend& backend, const Tensor& logits, const Tensor& logprobs, int32_t* ids,
                 float* chosen);
// Seeded sampling per row (DeviceSampling::sample_rows' contract): on the device where the
// backend can, else each row copied to the host and the Sampler run there.
void sample_rows(Backend& backend, const Tensor& logits, const Tensor& logprobs,
                 std::span<const SamplingParams> params, std::span<const uint64_t> token_indices,
                 int32_t* ids, float* chosen);

}  // namespace bx
