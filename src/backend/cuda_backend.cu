#include "backend/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_map>

#include <xxhash.h>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemm_quant.h"
#include "kernels/cuda/generate.h"
#include "kernels/cuda/greedy.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/rows.h"
#include "kernels/cuda/sample.h"
#include "kernels/quant.h"

namespace bx {

using cuda::check_cuda;
using cuda::DeviceBuffer;

std::string CudaBackend::kernel_version() const {
  const std::string k = cuda::attention_k3_enabled() ? "cuda-k3" : "cuda-k2";
  return holds_blocks_ ? k + "-q1" : k;
}

namespace {

int64_t round_up8(int64_t n) {
  return (n + 7) / 8 * 8;
}

// The attention split size: fixed in invariant mode; in fast mode (R8) one that follows the batch.
int attention_split(CudaBackend::Mode mode, const cuda::AttentionPlan& plan, int n_kv_heads) {
  if (mode == CudaBackend::Mode::fast) return cuda::conventional_split(plan, n_kv_heads);
  return cuda::attention_k3_enabled() ? cuda::kAttentionSplitK3 : cuda::kAttentionSplit;
}

float* f32(const Tensor& t) {
  return static_cast<float*>(t.data);
}

void check_f32(const Tensor& t, const char* what) {
  BX_CHECK(t.dtype == DType::f32, std::string("cuda backend: ") + what + " must be F32");
}

// Page-locked host memory of a fixed size: the staging area of begin_batch's uploads, so they
// are stream-ordered asynchronous copies.
struct PinnedInts {
  int32_t* ptr = nullptr;
  size_t size = 0;
  PinnedInts() = default;
  PinnedInts(const PinnedInts&) = delete;
  PinnedInts& operator=(const PinnedInts&) = delete;
  ~PinnedInts() {
    if (ptr != nullptr) cudaFreeHost(ptr);
  }
  void allocate(size_t n) {
    if (ptr != nullptr) cudaFreeHost(ptr);
    ptr = nullptr;
    size = n;
    check_cuda(cudaHostAlloc(reinterpret_cast<void**>(&ptr),
                             std::max<size_t>(n, 1) * sizeof(int32_t), cudaHostAllocDefault),
               "cudaHostAlloc");
  }
};

}  // namespace

struct CudaBackend::State {
  cudaStream_t stream = nullptr;
  std::vector<DeviceBuffer> allocations;
  DeviceBuffer kv;  // [L][2 (k, v)][n_blocks][block_size][Hkv * Dh] bf16
  KvCacheShape kv_shape;
  DeviceBuffer rope_cos, rope_sin;
  cuda::RopeDeviceTable rope;
  DeviceBuffer rope_local_cos, rope_local_sin;  // RopeOp::local_table (Gemma 3)
  cuda::RopeDeviceTable rope_local;
  // Step state (reserve_step_state), sized for `limits`: the batch on the device ([T] tokens,
  // positions, table offsets; [max_table_blocks] block ids; [R] logit rows) and its host side.
  StepLimits limits;
  DeviceBuffer tokens, positions, table_offsets, tables, logit_rows;
  PinnedInts staging;  // [3 T + max_table_blocks + R]
  // A batch made by hand (no ForwardBatch::table_blocks): its tables flattened here, [T] each.
  std::vector<int32_t> derived_offsets, derived_blocks;
  std::vector<const int32_t*> derived_tables;
  cuda::DeviceBatch batch;
  // Attention's tiling of the batch and its split partials (attention.h), sized once.
  static constexpr size_t kAttentionWorkspaceBytes = size_t{64} << 20;
  cuda::AttentionPlanner attention_plan;
  DeviceBuffer attention_workspace;
  int64_t logit_row_count = 0;
  // GEMM input rows rounded to bf16: [max(T, R), the widest weight's K padded (max_k_padded)].
  DeviceBuffer x_bf16;
  int64_t max_k_padded = 8;
  size_t x_bf16_capacity = 0;  // elements
  // greedy_rows' and sample_rows' results on the device: [R] ids and chosen logprobs.
  DeviceBuffer greedy_ids, greedy_chosen;
  // sample_rows' parameters: [R] on the device and their host staging; its scratch [R * V].
  DeviceBuffer sample_params, sample_scratch;
  std::vector<cuda::SampleRowParams> sample_params_host;
  // Recorded forward passes (CUDA graphs) by key. Every buffer they read or write stays where
  // it is until init_kv_cache or reserve_step_state moves it, and those drop them all. A
  // recording also holds the launch shapes that it baked in and that follow the batch rather
  // than the bucket: attention's plan (its tile and single counts, split and split slots).
  // Replay needs them to match.
  struct Recording {
    cudaGraphExec_t exec = nullptr;
    uint64_t launch_shape = 0;
  };
  uint64_t launch_shape = 0;  // of the current batch, set in begin_batch
  std::unordered_map<uint64_t, Recording> recordings;
  int64_t allocation_count = 0;  // buffers made by make_buffer and the pinned staging

  DeviceBuffer make_buffer(size_t bytes) {
    ++allocation_count;
    return DeviceBuffer(bytes);
  }
  void drop_recordings() {
    for (auto& [key, r] : recordings) cudaGraphExecDestroy(r.exec);
    recordings.clear();
  }

  cuda::PagedKv kv_layer(int layer) const {
    BX_CHECK(kv.get() != nullptr, "cuda backend: the KV cache is not initialised");
    BX_CHECK(layer >= 0 && layer < kv_shape.n_layers,
             "cuda backend: layer " + std::to_string(layer) + " outside the KV cache");
    const size_t per_layer = static_cast<size_t>(kv_shape.n_blocks) * kv_shape.block_size *
                             kv_shape.n_kv_heads * kv_shape.head_dim;
    uint16_t* base = kv.get<uint16_t>() + per_layer * 2 * static_cast<size_t>(layer);
    return cuda::PagedKv{base,
                         base + per_layer,
                         kv_shape.n_blocks,
                         kv_shape.block_size,
                         kv_shape.n_kv_heads,
                         kv_shape.head_dim};
  }
};

CudaBackend::CudaBackend(Mode mode) : mode_(mode), state_(std::make_unique<State>()) {
  check(cuda::hopper_available(),
        "cuda backend: no Hopper (compute capability 9.0) GPU found; the kernels are built for "
        "sm_90a only");
  check_cuda(cudaSetDevice(0), "cudaSetDevice");
  check_cuda(cudaStreamCreateWithFlags(&state_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
}

CudaBackend::~CudaBackend() {
  if (state_ && state_->stream != nullptr) {
    cudaStreamSynchronize(state_->stream);
    state_->drop_recordings();
    cudaStreamDestroy(state_->stream);
  }
}

std::string CudaBackend::name() const {
  return mode_ == Mode::invariant ? "cuda-sm90" : "cuda-sm90-fast-cublas";
}

void* CudaBackend::device_bytes(size_t bytes) {
  DeviceBuffer buf = state_->make_buffer(std::max<size_t>(bytes, 16));
  check_cuda(cudaMemset(buf.get(), 0, buf.bytes()), "cudaMemset");
  void* p = buf.get();
  state_->allocations.push_back(std::move(buf));
  return p;
}

Tensor CudaBackend::alloc(DType dtype, int64_t rows, int64_t cols) {
  BX_CHECK(dtype == DType::f32 || dtype == DType::bf16,
           "cuda backend: alloc supports F32 and BF16");
  BX_CHECK(rows >= 0 && cols >= 0, "cuda backend: negative tensor shape");
  const int64_t stride = dtype == DType::bf16 ? round_up8(cols) : cols;
  const size_t element = dtype == DType::f32 ? 4 : 2;
  return Tensor{device_bytes(static_cast<size_t>(rows * stride) * element), dtype, rows, cols,
                stride};
}

Tensor CudaBackend::upload_matrix(const float* host, int64_t rows, int64_t cols, DType dtype) {
  BX_CHECK(dtype == DType::f32 || dtype == DType::bf16,
           "cuda backend: upload_matrix supports F32 and BF16");
  if (rows == 1) {  // norm weights: kept in f32
    Tensor t = alloc(DType::f32, rows, cols);
    check_cuda(
        cudaMemcpy(t.data, host, static_cast<size_t>(cols) * sizeof(float), cudaMemcpyHostToDevice),
        "cudaMemcpy (upload_matrix)");
    return t;
  }
  Tensor t = alloc(DType::bf16, rows, cols);  // stride padded to 8 with zeros
  state_->max_k_padded = std::max(state_->max_k_padded, t.stride);
  std::vector<uint16_t> staged(static_cast<size_t>(rows * t.stride), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) staged[r * t.stride + c] = f32_to_bf16(host[r * cols + c]);
  }
  check_cuda(
      cudaMemcpy(t.data, staged.data(), staged.size() * sizeof(uint16_t), cudaMemcpyHostToDevice),
      "cudaMemcpy (upload_matrix)");
  return t;
}

bool CudaBackend::can_hold_blocks(DType dtype) const {
  const quant::BlockFormat* format = quant::find_block_format(dtype);
  return mode_ == Mode::invariant && format != nullptr && cuda::gemm_quant_supports(format->id);
}

Tensor CudaBackend::upload_blocks(const void* blocks, int64_t rows, int64_t cols, DType dtype) {
  BX_CHECK(can_hold_blocks(dtype),
           "cuda backend: upload_blocks takes Q8_0, Q4_0, Q4_1, Q4_K, "
           "Q5_K or Q6_K blocks in invariant mode, not " +
               std::string(dtype_name(dtype)));
  BX_CHECK(rows >= 0 && cols >= 0, "cuda backend: negative weight shape");
  const size_t bytes =
      static_cast<size_t>(quant::bytes_for(dtype, cols)) * static_cast<size_t>(rows);
  void* p = device_bytes(bytes + 16);  // + 16: the GEMM reads whole 16-byte chunks
  if (bytes > 0) {
    check_cuda(cudaMemcpy(p, blocks, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (upload_blocks)");
  }
  state_->max_k_padded = std::max(state_->max_k_padded, cols);
  holds_blocks_ = true;
  return Tensor{p, dtype, rows, cols, cols};
}

Tensor CudaBackend::generate_matrix(int64_t rows, int64_t cols, DType dtype, uint64_t stream,
                                    float offset, float scale) {
  BX_CHECK(dtype == DType::f32 || dtype == DType::bf16,
           "cuda backend: generate_matrix supports F32 and BF16");
  BX_CHECK(rows > 0 && cols > 0, "cuda backend: generate_matrix needs a positive shape");
  if (rows == 1) {  // norm weights: kept in f32, as upload_matrix keeps them
    Tensor t = alloc(DType::f32, rows, cols);
    cuda::generate_weights_f32(f32(t), rows, cols, t.stride, stream, offset, scale, state_->stream);
    return t;
  }
  Tensor t = alloc(DType::bf16, rows, cols);  // stride padded to 8 with zeros
  state_->max_k_padded = std::max(state_->max_k_padded, t.stride);
  cuda::generate_weights_bf16(static_cast<uint16_t*>(t.data), rows, cols, t.stride, stream, offset,
                              scale, state_->stream);
  check_cuda(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize (generate_matrix)");
  return t;
}

std::string CudaBackend::unsupported_head_dim(int head_dim) const {
  const int max_head_dim = cuda::kAttentionWideMaxHeadDim;
  if (head_dim > 0 && head_dim <= max_head_dim && head_dim % 8 == 0) return {};
  return "multiples of 8 up to " + std::to_string(max_head_dim);
}

int64_t CudaBackend::kv_memory_available() const {
  size_t free_bytes = 0, total_bytes = 0;
  check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return static_cast<int64_t>(free_bytes + state_->kv.bytes());
}

void CudaBackend::init_kv_cache(const KvCacheShape& shape) {
  BX_CHECK(shape.n_layers > 0 && shape.n_blocks > 0 && shape.block_size > 0 &&
               shape.n_kv_heads > 0 && shape.head_dim > 0,
           "cuda backend: KV cache shape must be positive in every dimension");
  BX_CHECK(shape.head_dim <= cuda::kAttentionWideMaxHeadDim && shape.head_dim % 8 == 0,
           "cuda backend: head_dim " + std::to_string(shape.head_dim) +
               " must be a multiple of 8 up to " + std::to_string(cuda::kAttentionWideMaxHeadDim));
  const size_t per_layer =
      static_cast<size_t>(shape.n_blocks) * shape.block_size * shape.n_kv_heads * shape.head_dim;
  check_cuda(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize");
  state_->drop_recordings();    // they hold the old cache's address
  state_->kv = DeviceBuffer();  // free the old cache first: the new one may take its memory
  state_->kv = state_->make_buffer(per_layer * 2 * static_cast<size_t>(shape.n_layers) * 2);
  check_cuda(cudaMemset(state_->kv.get(), 0, state_->kv.bytes()), "cudaMemset (KV cache)");
  state_->kv_shape = shape;
  if (state_->attention_workspace.get() == nullptr) {
    state_->attention_workspace = state_->make_buffer(State::kAttentionWorkspaceBytes);
  }
}

void CudaBackend::reserve_step_state(const StepLimits& limits) {
  BX_CHECK(limits.max_tokens >= 0 && limits.max_logit_rows >= 0 && limits.max_table_blocks >= 0 &&
               limits.vocab >= 0,
           "cuda backend: step limits must not be negative");
  State& s = *state_;
  const StepLimits& held = s.limits;
  StepLimits l;
  l.max_tokens = std::max<int64_t>({limits.max_tokens, held.max_tokens, 1});
  l.max_logit_rows = std::max<int64_t>({limits.max_logit_rows, held.max_logit_rows, 1});
  l.max_table_blocks = std::max<int64_t>({limits.max_table_blocks, held.max_table_blocks, 1});
  l.vocab = std::max<int64_t>({limits.vocab, held.vocab, 1});
  const auto T = static_cast<size_t>(l.max_tokens), R = static_cast<size_t>(l.max_logit_rows);
  const size_t x_bf16_elements = std::max(T, R) * static_cast<size_t>(s.max_k_padded);
  if (l.max_tokens == held.max_tokens && l.max_logit_rows == held.max_logit_rows &&
      l.max_table_blocks == held.max_table_blocks && l.vocab == held.vocab &&
      x_bf16_elements <= s.x_bf16_capacity) {
    return;  // held already
  }
  check_cuda(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize (reserve_step_state)");
  s.drop_recordings();  // they hold the old buffers' addresses
  const auto blocks = static_cast<size_t>(l.max_table_blocks);
  const auto ints = [&](size_t n) { return s.make_buffer(n * sizeof(int32_t)); };
  s.tokens = ints(T), s.positions = ints(T), s.table_offsets = ints(T);
  s.tables = ints(blocks), s.logit_rows = ints(R);
  s.staging.allocate(3 * T + blocks + R);
  ++s.allocation_count;
  s.derived_offsets.reserve(T), s.derived_blocks.reserve(T + blocks), s.derived_tables.reserve(T);
  s.attention_plan.reserve(l.max_tokens, s.stream);
  s.x_bf16_capacity = x_bf16_elements;
  s.x_bf16 = s.make_buffer(s.x_bf16_capacity * sizeof(uint16_t));
  s.greedy_ids = s.make_buffer(R * sizeof(int32_t));
  s.greedy_chosen = s.make_buffer(R * sizeof(float));
  s.sample_params = s.make_buffer(R * sizeof(cuda::SampleRowParams));
  s.sample_scratch = s.make_buffer(R * static_cast<size_t>(l.vocab) * sizeof(uint32_t));
  s.sample_params_host.reserve(R);
  s.limits = l;
}

int64_t CudaBackend::allocation_count() const {
  return state_->allocation_count + state_->attention_plan.allocation_count();
}

void CudaBackend::set_rope_table(const RopeTable& table) {
  const size_t n = table.cos.size();
  check(
      n == table.sin.size() && n == static_cast<size_t>(table.max_positions) * (table.head_dim / 2),
      "cuda backend: the RoPE table's cos/sin sizes do not match its shape");
  state_->rope_cos = state_->make_buffer(std::max<size_t>(n, 1) * sizeof(float));
  state_->rope_sin = state_->make_buffer(std::max<size_t>(n, 1) * sizeof(float));
  state_->rope_cos.upload(table.cos.data(), n * sizeof(float));
  state_->rope_sin.upload(table.sin.data(), n * sizeof(float));
  state_->rope = cuda::RopeDeviceTable{state_->rope_cos.get<float>(), state_->rope_sin.get<float>(),
                                       table.head_dim, table.max_positions, table.layout};
}

void CudaBackend::set_local_rope_table(const RopeTable& table) {
  const size_t n = table.cos.size();
  check(table.head_dim == state_->rope.head_dim &&
            table.max_positions == state_->rope.max_positions &&
            table.layout == state_->rope.layout && n == table.sin.size() &&
            n == static_cast<size_t>(table.max_positions) * (table.head_dim / 2),
        "cuda backend: the local RoPE table must have the first table's shape and layout");
  state_->rope_local_cos = state_->make_buffer(std::max<size_t>(n, 1) * sizeof(float));
  state_->rope_local_sin = state_->make_buffer(std::max<size_t>(n, 1) * sizeof(float));
  state_->rope_local_cos.upload(table.cos.data(), n * sizeof(float));
  state_->rope_local_sin.upload(table.sin.data(), n * sizeof(float));
  state_->rope_local = cuda::RopeDeviceTable{state_->rope_local_cos.get<float>(),
                                             state_->rope_local_sin.get<float>(), table.head_dim,
                                             table.max_positions, table.layout};
}

bool CudaBackend::replay(uint64_t key) {
  State& s = *state_;
  const auto it = s.recordings.find(key);
  if (it == s.recordings.end() || it->second.launch_shape != s.launch_shape) {
    return false;
  }
  check_cuda(cudaGraphLaunch(it->second.exec, s.stream), "cudaGraphLaunch");
  return true;
}

void CudaBackend::begin_recording(uint64_t /*key*/) {
  check_cuda(cudaStreamBeginCapture(state_->stream, cudaStreamCaptureModeRelaxed),
             "cudaStreamBeginCapture");
}

bool CudaBackend::end_recording(uint64_t key, bool launch) {
  State& s = *state_;
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(s.stream, &graph) != cudaSuccess || graph == nullptr) {
    cudaGetLastError();  // clear the error: the caller runs the ops directly
    return false;
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  State::Recording& r = s.recordings[key];
  if (r.exec != nullptr) cudaGraphExecDestroy(r.exec);
  r = State::Recording{exec, s.launch_shape};
  if (launch) check_cuda(cudaGraphLaunch(exec, s.stream), "cudaGraphLaunch");
  return true;
}

// Blocks of a table that position p needs: those up to p's (none before the KV cache exists).
int32_t CudaBackend::block_count(int32_t position) const {
  const int block_size = state_->kv_shape.block_size;
  return block_size > 0 ? position / block_size + 1 : 0;
}

// The block tables of a batch made by hand, once per sequence (ForwardBatch::table_blocks):
// tokens with one table pointer share one copy, as long as the longest position among them
// needs, in order of first appearance.
void CudaBackend::derive_tables(const ForwardBatch& batch) {
  State& s = *state_;
  const size_t T = batch.tokens.size();
  s.derived_offsets.assign(T, -1);
  s.derived_blocks.clear();
  s.derived_tables.clear();  // distinct tables, in order; derived_offsets[t]: the index first
  for (size_t t = 0; t < T; ++t) {
    const int32_t* table = batch.block_tables[t];
    const auto found = std::find(s.derived_tables.begin(), s.derived_tables.end(), table);
    s.derived_offsets[t] = static_cast<int32_t>(found - s.derived_tables.begin());
    if (found == s.derived_tables.end()) s.derived_tables.push_back(table);
  }
  const size_t n_tables = s.derived_tables.size();
  std::vector<int32_t>& first = s.derived_blocks;  // [tables]: blocks needed, then offsets
  first.assign(n_tables, 0);
  for (size_t t = 0; t < T; ++t) {
    int32_t& n = first[static_cast<size_t>(s.derived_offsets[t])];
    n = std::max(n, block_count(batch.positions[t]));
  }
  int32_t offset = static_cast<int32_t>(n_tables);  // the blocks follow the counts
  for (size_t i = 0; i < n_tables; ++i) {
    const int32_t n = first[i];
    first[i] = offset;
    offset += n;
  }
  first.resize(static_cast<size_t>(offset));
  for (size_t i = 0; i < n_tables; ++i) {
    const int32_t begin = first[i];
    const int32_t end = i + 1 < n_tables ? first[i + 1] : offset;
    std::copy(s.derived_tables[i], s.derived_tables[i] + (end - begin), first.begin() + begin);
  }
  for (size_t t = 0; t < T; ++t) {
    s.derived_offsets[t] =
        first[static_cast<size_t>(s.derived_offsets[t])] - static_cast<int32_t>(n_tables);
  }
  first.erase(first.begin(), first.begin() + static_cast<ptrdiff_t>(n_tables));
}

void CudaBackend::begin_batch(const ForwardBatch& batch) {
  State& s = *state_;
  const size_t T = batch.tokens.size();
  const size_t R = batch.logit_rows.size();
  BX_CHECK(batch.positions.size() == T && batch.block_tables.size() == T,
           "cuda backend: tokens, positions and block tables must have one entry per token");
  for (size_t t = 0; t < T; ++t) {
    BX_CHECK(batch.positions[t] >= 0, "cuda backend: negative position");
    BX_CHECK(
        s.rope.cos == nullptr || batch.positions[t] < s.rope.max_positions,
        "cuda backend: position " + std::to_string(batch.positions[t]) + " beyond the RoPE table");
  }
  std::span<const int32_t> offsets = batch.table_offsets;
  std::span<const int32_t> blocks = batch.table_blocks;
  const bool derived = offsets.empty();
  if (derived) {
    derive_tables(batch);
    offsets = s.derived_offsets;
    blocks = s.derived_blocks;
  }
  BX_CHECK(offsets.size() == T, "cuda backend: the table offsets must be one per token");
  // Within the reserved step state nothing is allocated; a larger batch (a bare backend in a
  // test) reserves more first.
  StepLimits need = s.limits;
  need.max_tokens = static_cast<int64_t>(T);
  need.max_logit_rows = static_cast<int64_t>(R);
  need.max_table_blocks = static_cast<int64_t>(blocks.size());
  reserve_step_state(need);
  if (derived) {  // reserving grows the derived vectors' capacity: their data may have moved
    offsets = s.derived_offsets;
    blocks = s.derived_blocks;
  }
  for (int32_t b : blocks) {
    BX_CHECK(b >= 0 && b < s.kv_shape.n_blocks, "cuda backend: block id " + std::to_string(b) +
                                                    " outside the KV pool [0, " +
                                                    std::to_string(s.kv_shape.n_blocks) + ")");
  }
  for (size_t t = 0; t < T; ++t) {
    const int64_t needed = block_count(batch.positions[t]);
    BX_CHECK(offsets[t] >= 0 && offsets[t] + needed <= static_cast<int64_t>(blocks.size()),
             "cuda backend: token " + std::to_string(t) + "'s table offset " +
                 std::to_string(offsets[t]) + " leaves no block for position " +
                 std::to_string(batch.positions[t]));
  }
  check_cuda(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");  // buffers are reused
  // Staged in pinned memory, copied in stream order before the ops that read them.
  int32_t* staged = s.staging.ptr;
  const auto stage = [&](DeviceBuffer& device, const int32_t* host, size_t n) {
    int32_t* dst = device.get<int32_t>();
    std::copy(host, host + n, staged);
    if (n > 0) {
      check_cuda(
          cudaMemcpyAsync(dst, staged, n * sizeof(int32_t), cudaMemcpyHostToDevice, s.stream),
          "cudaMemcpyAsync (begin_batch)");
    }
    staged += n;
    return dst;
  };
  stage(s.tokens, batch.tokens.data(), T);
  s.batch.positions = stage(s.positions, batch.positions.data(), T);
  s.batch.table_offsets = stage(s.table_offsets, offsets.data(), T);
  s.batch.tables = stage(s.tables, blocks.data(), blocks.size());
  s.batch.T = static_cast<int64_t>(T);
  const cuda::AttentionPlan& plan = s.attention_plan.build(batch.positions.data(), offsets.data(),
                                                           static_cast<int64_t>(T), s.stream);
  const int split = attention_split(mode_, plan, s.kv_shape.n_kv_heads);
  const uint64_t shape[] = {reinterpret_cast<uintptr_t>(plan.tiles),
                            reinterpret_cast<uintptr_t>(plan.singles),
                            static_cast<uint64_t>(plan.n_tiles),
                            static_cast<uint64_t>(plan.n_singles),
                            static_cast<uint64_t>(split),
                            static_cast<uint64_t>(plan.max_position / split)};
  s.launch_shape = XXH3_64bits(shape, sizeof shape);
  stage(s.logit_rows, batch.logit_rows.data(), R);
  s.logit_row_count = static_cast<int64_t>(R);
}

void CudaBackend::embed(const Tensor& table, Tensor out) {
  check_f32(out, "embedding output");
  BX_CHECK(table.dtype == DType::bf16 || table.dtype == DType::f32 ||
               quant::is_block_format(table.dtype),
           "cuda backend: the embedding table must be BF16, F32 or held blocks");
  BX_CHECK(out.rows == state_->batch.T && out.cols == table.cols,
           "cuda backend: embed output must be [T, D]");
  if (quant::is_block_format(table.dtype)) {  // the bf16 rows a dequantized table would give
    cuda::embed_quant_rows(
        static_cast<const uint8_t*>(table.data), quant::block_format(table.dtype).id,
        quant::bytes_for(table.dtype, table.stride), state_->tokens.get<int32_t>(), f32(out),
        out.stride, out.rows, out.cols, state_->stream);
    return;
  }
  cuda::embed_rows(table.data, table.dtype == DType::bf16, table.stride,
                   state_->tokens.get<int32_t>(), f32(out), out.stride, out.rows, out.cols,
                   state_->stream);
}

void CudaBackend::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor out) {
  check_f32(x, "rmsnorm input");
  check_f32(w, "rmsnorm weight");
  check_f32(out, "rmsnorm output");
  cuda::rmsnorm(f32(x), x.stride, f32(w), eps, f32(out), out.stride, x.rows, x.cols,
                state_->stream);
}

void CudaBackend::matmul(const GemmInput& in, const Tensor& w, Tensor y, bool accumulate) {
  check_f32(y, "gemm output");
  if (quant::is_block_format(w.dtype)) {
    matmul_blocks(in, w, y, accumulate);
    return;
  }
  BX_CHECK(w.dtype == DType::bf16, "cuda backend: gemm weights must be BF16 (upload_matrix)");
  State& s = *state_;
  const int64_t M = y.rows, Kp = w.stride;
  cuda::GemmArgs args;
  args.x = in.x;
  args.x_stride = in.stride;
  args.w = static_cast<const uint16_t*>(w.data);
  args.w_stride = w.stride;
  args.y = f32(y);
  args.y_stride = y.stride;
  args.M = M;
  args.N = w.rows;
  args.K = Kp;
  args.accumulate = accumulate;
  if (mode_ == Mode::fast) {
    BX_CHECK(!accumulate, "cuda backend: fast mode has no accumulating GEMM");
    cuda::gemm_bf16_cublas(args, s.stream);
  } else if (order_ == ReductionOrder::split_k_by_m) {
    BX_CHECK(!accumulate, "cuda backend: the split-K control has no accumulating GEMM");
    // Negative control (matmul.h): K in 1 + M % 3 parts of 16-aligned length, added in order.
    const int64_t parts = 1 + M % 3;
    const int64_t part = std::max<int64_t>(16, (Kp / parts + 15) / 16 * 16);
    for (int64_t k0 = 0; k0 < Kp; k0 += part) {
      cuda::GemmArgs piece = args;
      piece.x = in.x + k0;
      piece.w = static_cast<const uint16_t*>(w.data) + k0;
      piece.K = std::min(part, Kp - k0);
      piece.accumulate = k0 > 0;
      cuda::gemm_bf16(piece, s.stream);
    }
  } else {
    cuda::gemm_bf16(args, s.stream);
  }
}

cuda::QuantGemmArgs CudaBackend::quant_gemm_args(const GemmInput& in, const Tensor& w,
                                                 const Tensor& y) {
  cuda::QuantGemmArgs args;
  args.x = in.x;
  args.x_stride = in.stride;
  args.w = static_cast<const uint8_t*>(w.data);
  args.w_row_bytes = quant::bytes_for(w.dtype, w.stride);
  args.format = quant::block_format(w.dtype).id;
  if (y.dtype == DType::f32) args.y = f32(y);
  args.y_stride = y.stride;
  args.M = y.rows;
  args.N = w.rows;
  args.K = w.cols;
  return args;
}

void CudaBackend::matmul_blocks(const GemmInput& in, const Tensor& w, Tensor y, bool accumulate) {
  const quant::BlockFormat& format = quant::block_format(w.dtype);
  cuda::QuantGemmArgs args = quant_gemm_args(in, w, y);
  args.accumulate = accumulate;
  if (order_ == ReductionOrder::split_k_by_m) {
    BX_CHECK(!accumulate, "cuda backend: the split-K control has no accumulating GEMM");
    // Negative control (matmul.h): K in 1 + M % 3 parts of whole blocks, added in order.
    const int64_t E = format.block_elements, parts = 1 + args.M % 3;
    const int64_t part = std::max<int64_t>(E, (args.K / parts + E - 1) / E * E);
    for (int64_t k0 = 0; k0 < args.K; k0 += part) {
      cuda::QuantGemmArgs piece = args;
      piece.x = in.x + k0;
      piece.w = args.w + k0 / E * format.block_bytes;
      piece.K = std::min(part, args.K - k0);
      piece.accumulate = k0 > 0;
      cuda::gemm_quant(piece, state_->stream);
    }
    return;
  }
  cuda::gemm_quant(args, state_->stream);
}

CudaBackend::GemmInput CudaBackend::gemm_input(const Tensor& x, int64_t Kp) {
  if (x.dtype == DType::bf16) {  // rounded already (a swiglu output), zeros in [cols, stride)
    BX_CHECK(x.stride >= Kp && x.stride % 8 == 0,
             "cuda backend: a BF16 gemm input needs a row stride of at least " +
                 std::to_string(Kp) + " elements, a multiple of 8 (alloc gives one)");
    return {static_cast<const uint16_t*>(x.data), x.stride};
  }
  check_f32(x, "gemm input");
  State& s = *state_;
  BX_CHECK(static_cast<size_t>(x.rows * Kp) <= s.x_bf16_capacity,
           "cuda backend: gemm of " + std::to_string(x.rows) + " rows exceeds the batch");
  uint16_t* xb = s.x_bf16.get<uint16_t>();
  cuda::to_bf16_padded(f32(x), x.stride, xb, Kp, x.rows, x.cols, Kp, s.stream);
  return {xb, Kp};
}

void CudaBackend::add_bias(Tensor y, const Tensor& bias) {
  check_f32(y, "bias output");
  check_f32(bias, "bias");
  // Row stride 0: the one bias row is added to every row of y (y = y + b, one f32 add).
  cuda::add_inplace(f32(y), y.stride, f32(bias), 0, y.rows, y.cols, state_->stream);
}

bool CudaBackend::fusing() const {
  return fused_ && mode_ == Mode::invariant && order_ == ReductionOrder::canonical;
}

void CudaBackend::set_fused(bool fused) {
  if (fused == fused_) return;
  fused_ = fused;
  State& s = *state_;
  check_cuda(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize (set_fused)");
  s.drop_recordings();
}

bool CudaBackend::pack_rows(std::span<Tensor* const> parts) {
  if (parts.empty()) return false;
  const Tensor& first = *parts[0];
  const bool blocks = quant::is_block_format(first.dtype);
  int64_t rows = 0;
  for (const Tensor* t : parts) {
    if ((t->dtype != DType::bf16 && !blocks) || t->dtype != first.dtype || t->cols != first.cols ||
        t->stride != first.stride || t->data == nullptr) {
      return false;
    }
    rows += t->rows;
  }
  State& s = *state_;
  check_cuda(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize (pack_rows)");
  // bf16 rows of `stride` elements, or the rows of blocks (upload_blocks: 16 bytes of padding).
  const int64_t row_bytes = blocks ? quant::bytes_for(first.dtype, first.stride) : 2 * first.stride;
  uint8_t* packed = nullptr;
  if (blocks) {
    packed = static_cast<uint8_t*>(device_bytes(static_cast<size_t>(rows * row_bytes) + 16));
  } else {
    const Tensor t = alloc(DType::bf16, rows, first.cols);
    BX_CHECK(t.stride == first.stride, "cuda backend: pack_rows: unexpected row stride");
    packed = static_cast<uint8_t*>(t.data);
  }
  int64_t row = 0;
  for (Tensor* t : parts) {
    uint8_t* dst = packed + row * row_bytes;
    check_cuda(cudaMemcpy(dst, t->data, static_cast<size_t>(t->rows * row_bytes),
                          cudaMemcpyDeviceToDevice),
               "cudaMemcpy (pack_rows)");
    const auto old = std::find_if(s.allocations.begin(), s.allocations.end(),
                                  [&](const DeviceBuffer& b) { return b.get() == t->data; });
    if (old != s.allocations.end()) s.allocations.erase(old);
    t->data = dst;
    row += t->rows;
  }
  return true;
}

void CudaBackend::gemm(const GemmOp& op) {
  check_gemm_op(op, "cuda backend");
  BX_CHECK(op.x.dtype == DType::f32 || op.x.dtype == DType::bf16,
           "cuda backend: gemm input must be F32 or BF16");
  for (int i = 0; i < op.n_parts; ++i) {
    BX_CHECK((op.w[i].dtype == DType::bf16 || quant::is_block_format(op.w[i].dtype)) &&
                 op.w[i].stride == op.w[0].stride,
             "cuda backend: gemm weights must be BF16 (upload_matrix) or held blocks "
             "(upload_blocks) of one row stride");
  }
  switch (op.epilogue) {
    case GemmEpilogue::store:
      gemm_store(op);
      return;
    case GemmEpilogue::accumulate:
      gemm_accumulate(op);
      return;
    case GemmEpilogue::swiglu:
    case GemmEpilogue::geglu:
      gemm_swiglu(op);
      return;
  }
}

// y_i = x W_i^T (+ b_i). One GEMM over all parts when their rows lie back to back (pack_rows) and
// each later part starts at a multiple of 8 rows (gemm.h's parts: each element is still its own
// chain, so the bits of one GEMM per part); then the biases, each one f32 add after the chain.
void CudaBackend::gemm_store(const GemmOp& op) {
  const int64_t Kp = op.w[0].stride;
  const bool blocks = quant::is_block_format(op.w[0].dtype);
  const int64_t row_bytes = blocks ? quant::bytes_for(op.w[0].dtype, Kp) : 2 * Kp;
  bool one_gemm = fusing() && (op.w[0].dtype == DType::bf16 || blocks) && op.n_parts > 1 &&
                  op.n_parts <= 1 + cuda::GemmArgs::kMaxParts;
  int64_t n_total = 0;
  for (int i = 0; one_gemm && i < op.n_parts; ++i) {
    const auto* expected = static_cast<const uint8_t*>(op.w[0].data) + n_total * row_bytes;
    one_gemm = op.w[i].data == expected && op.w[i].dtype == op.w[0].dtype &&
               op.y[i].dtype == DType::f32 && (i == 0 || n_total % 8 == 0);
    n_total += op.w[i].rows;
  }
  if (one_gemm && blocks) {  // the same over the packed blocks (kernels/cuda/gemm_quant.h)
    cuda::QuantGemmArgs args = quant_gemm_args(gemm_input(op.x, Kp), op.w[0], op.y[0]);
    args.N = n_total;
    int64_t first_col = op.w[0].rows;
    for (int i = 1; i < op.n_parts; ++i) {
      args.parts[args.n_parts++] = cuda::GemmOutputPart{first_col, f32(op.y[i]), op.y[i].stride};
      first_col += op.w[i].rows;
    }
    cuda::gemm_quant(args, state_->stream);
    ++fused_gemms_;
  } else if (one_gemm) {
    const GemmInput in = gemm_input(op.x, Kp);
    cuda::GemmArgs args;
    args.x = in.x;
    args.x_stride = in.stride;
    args.w = static_cast<const uint16_t*>(op.w[0].data);
    args.w_stride = Kp;
    args.y = f32(op.y[0]);
    args.y_stride = op.y[0].stride;
    args.M = op.x.rows;
    args.N = n_total;
    args.K = Kp;
    int64_t first_col = op.w[0].rows;
    for (int i = 1; i < op.n_parts; ++i) {
      args.parts[args.n_parts++] = cuda::GemmOutputPart{first_col, f32(op.y[i]), op.y[i].stride};
      first_col += op.w[i].rows;
    }
    cuda::gemm_bf16(args, state_->stream);
    ++fused_gemms_;
  } else {
    for (int i = 0; i < op.n_parts; ++i) matmul(gemm_input(op.x, Kp), op.w[i], op.y[i]);
  }
  for (int i = 0; i < op.n_parts; ++i) {
    if (op.bias[i].data != nullptr) add_bias(op.y[i], op.bias[i]);
  }
}

// y = y + (x W^T (+ b)). Without a bias, one GEMM whose epilogue adds its chains to y (gemm.h
// "accumulate": y + chain, add_inplace's one f32 add); with one, the chain and the bias in the
// scratch rows first, so the sum is y + (chain + b) as GemmOp defines it.
void CudaBackend::gemm_accumulate(const GemmOp& op) {
  const Tensor& w = op.w[0];
  const Tensor& y = op.y[0];
  check_f32(y, "gemm output");
  const GemmInput in = gemm_input(op.x, w.stride);
  if (fusing() && op.bias[0].data == nullptr) {
    matmul(in, w, y, /*accumulate=*/true);
    ++fused_gemms_;
    return;
  }
  Tensor t = op.scratch.rows_view(0, op.x.rows);
  t.cols = w.rows;
  matmul(in, w, t);
  if (op.bias[0].data != nullptr) add_bias(t, op.bias[0]);
  cuda::add_inplace(f32(y), y.stride, f32(t), t.stride, y.rows, y.cols, state_->stream);
}

// y = silu(x Wg^T) * (x Wu^T): one gated GEMM (gemm.h) whose epilogue evaluates silu_mul's f32
// expression on the two chains; into a BF16 y it stores the rounding to_bf16_padded would give,
// with +0 up to the padded row (the next GEMM's input, bit for bit). Unfused: the two matmuls,
// silu_mul, and (BF16 y) to_bf16_padded.
void CudaBackend::gemm_swiglu(const GemmOp& op) {
  const Tensor& wg = op.w[0];
  const Tensor& y = op.y[0];
  const int64_t M = op.x.rows, N = wg.rows, Np = round_up8(N);
  const bool to_bf16 = y.dtype == DType::bf16;
  BX_CHECK(y.dtype == DType::f32 || (to_bf16 && y.stride % 8 == 0 && y.stride >= Np),
           "cuda backend: a swiglu output must be F32, or BF16 rows padded to a multiple of 8");
  const GemmInput in = gemm_input(op.x, wg.stride);
  const bool geglu = op.epilogue == GemmEpilogue::geglu;  // unfused: gelu_tanh_mul
  if (!geglu && fusing() && quant::is_block_format(wg.dtype) && op.w_up.dtype == wg.dtype &&
      op.w_up.stride == wg.stride) {  // the gated epilogue over blocks (gemm_quant.h)
    cuda::QuantGemmArgs args = quant_gemm_args(in, wg, y);
    args.w_up = static_cast<const uint8_t*>(op.w_up.data);
    if (to_bf16) {
      args.y = nullptr;
      args.y_bf16 = static_cast<uint16_t*>(y.data);
    }
    cuda::gemm_quant(args, state_->stream);
    ++fused_gemms_;
    return;
  }
  if (!geglu && fusing() && wg.dtype == DType::bf16 && op.w_up.stride == wg.stride) {
    cuda::GemmArgs args;
    args.x = in.x;
    args.x_stride = in.stride;
    args.w = static_cast<const uint16_t*>(wg.data);
    args.w_up = static_cast<const uint16_t*>(op.w_up.data);
    args.w_stride = wg.stride;
    if (to_bf16) {
      args.y_bf16 = static_cast<uint16_t*>(y.data);
    } else {
      args.y = f32(y);
    }
    args.y_stride = y.stride;
    args.M = M;
    args.N = N;
    args.K = wg.stride;
    cuda::gemm_bf16(args, state_->stream);
    ++fused_gemms_;
    return;
  }
  Tensor up = op.scratch.rows_view(0, M);
  up.cols = N;
  Tensor gate = y;
  if (to_bf16) {  // the gate in the scratch's second half
    gate = up;
    gate.data = f32(up) + N;
  }
  matmul(in, wg, gate);
  matmul(gemm_input(op.x, op.w_up.stride), op.w_up, up);
  const auto gate_op = geglu ? cuda::gelu_tanh_mul : cuda::silu_mul;
  gate_op(f32(gate), gate.stride, f32(up), up.stride, f32(gate), gate.stride, M, N, state_->stream);
  if (to_bf16) {
    cuda::to_bf16_padded(f32(gate), gate.stride, static_cast<uint16_t*>(y.data), y.stride, M, N, Np,
                         state_->stream);
  }
}

void CudaBackend::rope(const RopeOp& op) {
  check_f32(op.q, "rope q");
  const bool has_k = op.k.data != nullptr;
  if (has_k) check_f32(op.k, "rope k");
  BX_CHECK(!op.local_table || state_->rope_local.cos != nullptr,
           "cuda backend: rope asks for the local table, which was never set");
  const cuda::RopeDeviceTable& table = op.local_table ? state_->rope_local : state_->rope;
  const int head_dim = table.head_dim;
  const auto norm_fits = [&](const Tensor& w) {
    if (w.data == nullptr) return true;
    check_f32(w, "q/k norm weight");
    return w.cols == head_dim;
  };
  const int32_t* positions = state_->batch.positions;
  if (has_k && cuda::qk_norm_rope_fusable(table) && norm_fits(op.q_norm) && norm_fits(op.k_norm) &&
      op.q.cols == int64_t{op.n_heads} * head_dim &&
      op.k.cols == int64_t{op.n_kv_heads} * head_dim && op.k.rows == op.q.rows) {
    cuda::QkNormRopeArgs args;
    args.q = f32(op.q);
    args.q_stride = op.q.stride;
    args.n_heads = op.n_heads;
    args.k = f32(op.k);
    args.k_stride = op.k.stride;
    args.n_kv_heads = op.n_kv_heads;
    args.q_norm = op.q_norm.data != nullptr ? f32(op.q_norm) : nullptr;
    args.k_norm = op.k_norm.data != nullptr ? f32(op.k_norm) : nullptr;
    args.eps = op.eps;
    cuda::qk_norm_rope_inplace(args, positions, op.q.rows, table, state_->stream);
    return;
  }
  // Unfused: rmsnorm of every head as a row, then rope of q and of k (the same bits).
  const auto norm_heads = [&](const Tensor& x, int n_heads, const Tensor& w) {
    BX_CHECK(w.rows == 1 && x.cols == int64_t{n_heads} * w.cols,
             "cuda backend: rope: " + std::to_string(x.cols) + " columns are not " +
                 std::to_string(n_heads) + " heads of the norm's " + std::to_string(w.cols));
    for (int h = 0; h < n_heads; ++h) {
      float* head = f32(x) + int64_t{h} * w.cols;
      cuda::rmsnorm(head, x.stride, f32(w), op.eps, head, x.stride, x.rows, w.cols, state_->stream);
    }
  };
  if (op.q_norm.data != nullptr) norm_heads(op.q, op.n_heads, op.q_norm);
  if (has_k && op.k_norm.data != nullptr) norm_heads(op.k, op.n_kv_heads, op.k_norm);
  cuda::rope_inplace(f32(op.q), op.q.stride, positions, op.q.rows, op.n_heads, table,
                     state_->stream);
  if (has_k) {
    cuda::rope_inplace(f32(op.k), op.k.stride, positions, op.k.rows, op.n_kv_heads, table,
                       state_->stream);
  }
}

void CudaBackend::kv_write(int layer, const Tensor& k, const Tensor& v) {
  check_f32(k, "kv_write k");
  check_f32(v, "kv_write v");
  const cuda::PagedKv kv = state_->kv_layer(layer);
  BX_CHECK(k.cols == kv.n_kv_heads * kv.head_dim && v.cols == k.cols && k.rows == state_->batch.T,
           "cuda backend: kv_write rows must be [T, n_kv_heads * head_dim]");
  cuda::kv_cache_write(kv, f32(k), k.stride, f32(v), v.stride, state_->batch, state_->stream);
}

void CudaBackend::attention(int layer, const Tensor& q, int n_heads, float scale, int window,
                            Tensor out) {
  check_f32(q, "attention q");
  check_f32(out, "attention output");
  const cuda::PagedKv kv = state_->kv_layer(layer);
  BX_CHECK(q.cols == static_cast<int64_t>(n_heads) * kv.head_dim && q.rows == state_->batch.T,
           "cuda backend: attention q must be [T, n_heads * head_dim]");
  cuda::AttentionArgs args;
  args.q = f32(q);
  args.q_stride = q.stride;
  args.out = f32(out);
  args.out_stride = out.stride;
  args.n_heads = n_heads;
  args.scale = scale;
  args.window = window;
  args.kv = kv;
  args.batch = state_->batch;
  args.plan = state_->attention_plan.plan();
  args.workspace = state_->attention_workspace.get<float>();
  args.workspace_floats = static_cast<int64_t>(state_->attention_workspace.bytes() / sizeof(float));
  args.split = attention_split(mode_, args.plan, kv.n_kv_heads);
  cuda::attention(args, state_->stream);
}

void CudaBackend::scale(Tensor x, float factor) {
  check_f32(x, "scale");
  cuda::scale_inplace(f32(x), x.stride, factor, x.rows, x.cols, state_->stream);
}

void CudaBackend::add(const Tensor& x, Tensor y) {
  check_f32(x, "add input");
  check_f32(y, "add output");
  BX_CHECK(x.rows == y.rows && x.cols == y.cols, "cuda backend: add of mismatched shapes");
  cuda::add_inplace(f32(y), y.stride, f32(x), x.stride, y.rows, y.cols, state_->stream);
}

void CudaBackend::gather_logit_rows(const Tensor& x, Tensor out) {
  BX_CHECK(out.rows == state_->logit_row_count,
           "cuda backend: gather_logit_rows output must have one row per logit row");
  cuda::gather_rows(f32(x), x.stride, state_->logit_rows.get<int32_t>(), f32(out), out.stride,
                    out.rows, x.cols, state_->stream);
}

void CudaBackend::log_softmax(const Tensor& x, Tensor out) {
  cuda::log_softmax(f32(x), x.stride, f32(out), out.stride, x.rows, x.cols, state_->stream);
}

void CudaBackend::copy_to_host(const Tensor& x, float* host) {
  check_f32(x, "copy_to_host source");
  check_cuda(cudaMemcpy2DAsync(host, static_cast<size_t>(x.cols) * sizeof(float), x.data,
                               static_cast<size_t>(x.stride) * sizeof(float),
                               static_cast<size_t>(x.cols) * sizeof(float),
                               static_cast<size_t>(x.rows), cudaMemcpyDeviceToHost, state_->stream),
             "cudaMemcpy2DAsync (copy_to_host)");
  check_cuda(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize (forward)");
}

void CudaBackend::copy_from_host(const float* host, Tensor x) {
  check_f32(x, "copy_from_host destination");
  check_cuda(cudaMemcpy2DAsync(x.data, static_cast<size_t>(x.stride) * sizeof(float), host,
                               static_cast<size_t>(x.cols) * sizeof(float),
                               static_cast<size_t>(x.cols) * sizeof(float),
                               static_cast<size_t>(x.rows), cudaMemcpyHostToDevice, state_->stream),
             "cudaMemcpy2DAsync (copy_from_host)");
  check_cuda(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize (copy_from_host)");
}

void CudaBackend::reserve_rows(int64_t rows, int64_t vocab) {
  StepLimits need = state_->limits;
  need.max_logit_rows = rows;
  need.vocab = vocab;
  reserve_step_state(need);  // nothing within the reserved step state
}

void CudaBackend::greedy_rows(const Tensor& logits, const Tensor& logprobs, int32_t* ids,
                              float* chosen) {
  check_f32(logits, "greedy_rows logits");
  check_f32(logprobs, "greedy_rows logprobs");
  BX_CHECK(logits.rows == logprobs.rows && logits.cols == logprobs.cols,
           "cuda backend: greedy_rows logits and logprobs must have the same shape");
  State& s = *state_;
  const auto rows = static_cast<size_t>(logits.rows);
  reserve_rows(logits.rows, 0);
  int32_t* d_ids = s.greedy_ids.get<int32_t>();
  float* d_chosen = s.greedy_chosen.get<float>();
  cuda::greedy_rows(f32(logits), logits.stride, f32(logprobs), logprobs.stride, logits.rows,
                    logits.cols, d_ids, d_chosen, s.stream);
  check_cuda(cudaMemcpyAsync(ids, d_ids, rows * sizeof(int32_t), cudaMemcpyDeviceToHost, s.stream),
             "cudaMemcpyAsync (greedy ids)");
  check_cuda(
      cudaMemcpyAsync(chosen, d_chosen, rows * sizeof(float), cudaMemcpyDeviceToHost, s.stream),
      "cudaMemcpyAsync (greedy logprobs)");
  check_cuda(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize (forward)");
}

void CudaBackend::sample_rows(const Tensor& logits, const Tensor& logprobs,
                              std::span<const SamplingParams> params,
                              std::span<const uint64_t> token_indices, int32_t* ids,
                              float* chosen) {
  check_f32(logits, "sample_rows logits");
  check_f32(logprobs, "sample_rows logprobs");
  BX_CHECK(logits.rows == logprobs.rows && logits.cols == logprobs.cols,
           "cuda backend: sample_rows logits and logprobs must have the same shape");
  BX_CHECK(params.size() == static_cast<size_t>(logits.rows) &&
               token_indices.size() == static_cast<size_t>(logits.rows),
           "cuda backend: sample_rows expects one SamplingParams and one token index per row");
  BX_CHECK(logits.cols > 0 && logits.cols <= std::numeric_limits<int32_t>::max(),
           "cuda backend: sample_rows needs a vocabulary in [1, 2^31)");
  State& s = *state_;
  const auto rows = static_cast<size_t>(logits.rows);
  reserve_rows(logits.rows, logits.cols);
  s.sample_params_host.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    const SamplingParams& p = params[r];
    validate(p);
    s.sample_params_host[r] = {p.temperature, p.top_k, p.top_p, p.min_p, p.seed, token_indices[r]};
  }
  auto* d_params = s.sample_params.get<cuda::SampleRowParams>();
  int32_t* d_ids = s.greedy_ids.get<int32_t>();
  float* d_chosen = s.greedy_chosen.get<float>();
  check_cuda(
      cudaMemcpyAsync(d_params, s.sample_params_host.data(), rows * sizeof(cuda::SampleRowParams),
                      cudaMemcpyHostToDevice, s.stream),
      "cudaMemcpyAsync (sampling parameters)");
  cuda::sample_rows(f32(logits), logits.stride, f32(logprobs), logprobs.stride, logits.rows,
                    logits.cols, d_params, s.sample_scratch.get<uint32_t>(), d_ids, d_chosen,
                    s.stream);
  check_cuda(cudaMemcpyAsync(ids, d_ids, rows * sizeof(int32_t), cudaMemcpyDeviceToHost, s.stream),
             "cudaMemcpyAsync (sampled ids)");
  check_cuda(
      cudaMemcpyAsync(chosen, d_chosen, rows * sizeof(float), cudaMemcpyDeviceToHost, s.stream),
      "cudaMemcpyAsync (sampled logprobs)");
  check_cuda(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize (sample_rows)");
}

int64_t CudaBackend::moe_scratch_bytes(int64_t T, int64_t D, int64_t F, int E, int k) const {
  return static_cast<int64_t>(cuda::moe_layer_workspace_bytes(T, D, F, E, k));
}

void CudaBackend::moe(const MoeOp& op) {
  check_f32(op.x, "moe input");
  check_f32(op.y, "moe output");
  const int64_t T = op.x.rows, D = op.x.cols, E = op.router.rows;
  BX_CHECK(op.y.rows == T && op.y.cols == D, "cuda backend: moe shapes x [" + std::to_string(T) +
                                                 ", " + std::to_string(D) + "], y [" +
                                                 std::to_string(op.y.rows) + ", " +
                                                 std::to_string(op.y.cols) + "]: expected equal");
  BX_CHECK(op.router.dtype == DType::bf16 && op.gate.dtype == DType::bf16 &&
               op.up.dtype == DType::bf16 && op.down.dtype == DType::bf16,
           "cuda backend: moe weights must be BF16 (upload_matrix)");
  BX_CHECK(E > 0 && op.gate.rows % E == 0,
           "cuda backend: moe gate rows " + std::to_string(op.gate.rows) +
               ": expected a multiple of the " + std::to_string(E) + " router rows");
  const int64_t F = op.gate.rows / E;
  BX_CHECK(op.router.cols == D && op.gate.cols == D && op.up.cols == D && op.up.rows == E * F &&
               op.up.stride == op.gate.stride && op.down.rows == E * D && op.down.cols == F,
           "cuda backend: moe weights router [" + std::to_string(op.router.rows) + ", " +
               std::to_string(op.router.cols) + "], gate [" + std::to_string(op.gate.rows) + ", " +
               std::to_string(op.gate.cols) + "], up [" + std::to_string(op.up.rows) + ", " +
               std::to_string(op.up.cols) + "], down [" + std::to_string(op.down.rows) + ", " +
               std::to_string(op.down.cols) + "]: expected [E, D], [E*F, D] twice, [E*D, F]");
  const int64_t need = moe_scratch_bytes(T, D, F, static_cast<int>(E), op.top_k);
  const int64_t have =
      op.scratch.rows * op.scratch.stride * (op.scratch.dtype == DType::bf16 ? 2 : 4);
  BX_CHECK(have >= need, "cuda backend: moe scratch of " + std::to_string(have) +
                             " bytes, expected at least " + std::to_string(need));
  cuda::MoeLayerArgs a;
  a.x = f32(op.x);
  a.x_stride = op.x.stride;
  a.y = f32(op.y);
  a.y_stride = op.y.stride;
  a.T = T;
  a.D = D;
  a.F = F;
  a.n_experts = static_cast<int>(E);
  a.top_k = op.top_k;
  a.normalize = op.normalize;
  a.router = static_cast<const uint16_t*>(op.router.data);
  a.router_stride = op.router.stride;
  a.gate = static_cast<const uint16_t*>(op.gate.data);
  a.up = static_cast<const uint16_t*>(op.up.data);
  a.gate_up_stride = op.gate.stride;
  a.down = static_cast<const uint16_t*>(op.down.data);
  a.down_stride = op.down.stride;
  a.workspace = op.scratch.data;
  if (mode_ == Mode::fast) {
    a.router_gemm = cuda::MoeRouterGemm::cublas;
    a.combine = cuda::MoeCombineOrder::atomic;
  } else if (order_ == ReductionOrder::split_k_by_m) {
    a.expert_order = cuda::MoeExpertOrder::split_k_by_count;
    a.combine = cuda::MoeCombineOrder::by_load;
  }
  cuda::moe_layer(a, state_->stream);
}

void* CudaBackend::stream_handle() const {
  return state_->stream;
}

}  // namespace bx
