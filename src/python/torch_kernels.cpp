// The engine's kernels at the pointer level, for bitexact.torch (python/bitexact/torch.py): each
// entry point runs one of bitexact's own kernels on memory a PyTorch tensor owns, so a trainer-side
// op computes exactly what the engine computes (INVARIANCE.md promise 7, R9). Python passes
// data_ptr()s, element strides and shapes; it allocates every output, cache and scratch buffer
// (torch's allocator), so nothing here owns tensor memory.
//
// CPU (kernels/*.h): f32 activations; matmul weights f32 or bf16 (widened exactly, the bits of
// the f32 copy); the canonical lane order of lanes.h. CUDA (kernels/cuda/*.h, when built with
// nvcc): activations rounded to bf16 (round to nearest even) before the invariant GEMM, bf16
// weights, f32 accumulation; a bf16 KV cache. Entry points take the stream as an integer
// (torch.cuda.current_stream().cuda_stream) and are asynchronous on it.
//
// Errors: every bad argument is a bx::Error (Python ValueError) naming it; the kernels' own
// checks throw the same way.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "core/dtype.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/rope.h"
#include "kernels/rows.h"

#if defined(BITEXACT_HAVE_CUDA)
#include "kernels/cuda/attention.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/rows.h"
#endif

namespace nb = nanobind;
using namespace nb::literals;

namespace bx::torch_kernels {
namespace {

template <typename T>
T* ptr(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

// One pool for every CPU kernel call (the thread count never changes a bit: thread_pool.h).
ThreadPool& pool() {
  static ThreadPool instance(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return instance;
}

void check_positive(int64_t value, const char* what) {
  BX_CHECK(value > 0, std::string("bitexact.torch: ") + what + " must be positive, got " +
                          std::to_string(value));
}

RopeLayout layout_of(bool adjacent) {
  return adjacent ? RopeLayout::adjacent_pairs : RopeLayout::half_split;
}

// --- tables ---------------------------------------------------------------------------------

// The engine's cos/sin table (kernels/rope.h make_rope_table, computed in double and rounded to
// float) as two byte strings of [max_positions, head_dim / 2] floats each.
std::tuple<nb::bytes, nb::bytes> rope_table(int head_dim, double theta, int max_positions,
                                            bool llama3, double factor, double low_freq_factor,
                                            double high_freq_factor, int original_max_positions) {
  RopeScaling scaling;
  if (llama3) {
    scaling.kind = RopeScaling::Kind::llama3;
    scaling.factor = factor;
    scaling.low_freq_factor = low_freq_factor;
    scaling.high_freq_factor = high_freq_factor;
    scaling.original_max_positions = original_max_positions;
  }
  const RopeTable t =
      make_rope_table(head_dim, theta, max_positions, RopeLayout::half_split, scaling);
  return {nb::bytes(t.cos.data(), t.cos.size() * sizeof(float)),
          nb::bytes(t.sin.data(), t.sin.size() * sizeof(float))};
}

// --- CPU ------------------------------------------------------------------------------------

// y[M,N] = x[M,K] @ W[N,K]^T (kernels/matmul.h); W f32 or bf16 bits. split_k_by_m: the fast
// mode's order (the negative control of the invariance tests).
void cpu_matmul(uintptr_t x, int64_t x_stride, uintptr_t w, bool w_bf16, int64_t w_stride,
                uintptr_t y, int64_t y_stride, int64_t M, int64_t N, int64_t K, bool split_k_by_m) {
  MatmulArgs args;
  args.x = ptr<const float>(x);
  args.x_stride = x_stride;
  args.w = ptr<const void>(w);
  args.w_dtype = w_bf16 ? DType::bf16 : DType::f32;
  args.w_stride = w_stride;
  args.y = ptr<float>(y);
  args.y_stride = y_stride;
  args.M = M;
  args.N = N;
  args.K = K;
  args.order = split_k_by_m ? ReductionOrder::split_k_by_m : ReductionOrder::canonical;
  matmul(args, pool());
}

// out[m] = rmsnorm(x[m]) * w (kernels/rows.h).
void cpu_rmsnorm(uintptr_t x, int64_t x_stride, uintptr_t w, float eps, uintptr_t out,
                 int64_t out_stride, int64_t M, int64_t D) {
  rmsnorm(ptr<const float>(x), x_stride, ptr<const float>(w), eps, ptr<float>(out), out_stride, M,
          D, pool());
}

void cpu_log_softmax(uintptr_t x, int64_t x_stride, uintptr_t out, int64_t out_stride, int64_t M,
                     int64_t N) {
  log_softmax(ptr<const float>(x), x_stride, ptr<float>(out), out_stride, M, N, pool());
}

void cpu_silu_mul(uintptr_t gate, int64_t gate_stride, uintptr_t up, int64_t up_stride,
                  uintptr_t out, int64_t out_stride, int64_t M, int64_t F) {
  silu_mul(ptr<const float>(gate), gate_stride, ptr<const float>(up), up_stride, ptr<float>(out),
           out_stride, M, F, pool());
}

// out[t] = table[ids[t]] (the CPU backend's embed: an f32 row copy).
void cpu_embed(uintptr_t table, int64_t table_stride, int64_t vocab, uintptr_t ids, uintptr_t out,
               int64_t out_stride, int64_t T, int64_t D) {
  const auto* id = ptr<const int64_t>(ids);
  for (int64_t t = 0; t < T; ++t) {
    BX_CHECK(id[t] >= 0 && id[t] < vocab, "bitexact.torch: token id " + std::to_string(id[t]) +
                                              " is outside the vocabulary [0, " +
                                              std::to_string(vocab) + ")");
    std::memcpy(ptr<float>(out) + t * out_stride, ptr<const float>(table) + id[t] * table_stride,
                static_cast<size_t>(D) * sizeof(float));
  }
}

// RoPE in place at `positions` (int32 [T]) with the engine's table (cos, sin: [table_rows, Dh/2]).
void cpu_rope(uintptr_t x, int64_t x_stride, uintptr_t positions, int64_t T, int n_heads,
              int head_dim, uintptr_t cos, uintptr_t sin, int table_rows, bool adjacent) {
  const auto* pos = ptr<const int32_t>(positions);
  int32_t max_position = -1;
  for (int64_t t = 0; t < T; ++t) {
    BX_CHECK(pos[t] >= 0 && pos[t] < table_rows,
             "bitexact.torch: position " + std::to_string(pos[t]) +
                 " is outside the rope table [0, " + std::to_string(table_rows) + ")");
    max_position = std::max(max_position, pos[t]);
  }
  // The rows the batch reads, as the kernel's table (values copied, not recomputed).
  RopeTable table;
  table.head_dim = head_dim;
  table.max_positions = max_position + 1;
  table.layout = layout_of(adjacent);
  const size_t n = static_cast<size_t>(max_position + 1) * static_cast<size_t>(head_dim / 2);
  table.cos.assign(ptr<const float>(cos), ptr<const float>(cos) + n);
  table.sin.assign(ptr<const float>(sin), ptr<const float>(sin) + n);
  rope_inplace(ptr<float>(x), x_stride, pos, T, n_heads, table, pool());
}

// Causal GQA attention of a packed batch (kernels/attention.h): token t of sequence seq_ids[t] at
// position positions[t]. Sequence s owns one cache block of `capacity` positions (block s of
// k_cache, v_cache: [n_seqs, capacity, n_kv_heads, head_dim] f32); its K and V are written there
// first and read back from there (R4). The cache layout never changes a bit.
void cpu_attention(uintptr_t q, int64_t q_stride, uintptr_t k, int64_t k_stride, uintptr_t v,
                   int64_t v_stride, uintptr_t out, int64_t out_stride, uintptr_t positions,
                   uintptr_t seq_ids, int64_t T, int64_t n_seqs, int capacity, int n_heads,
                   int n_kv_heads, int head_dim, float scale, uintptr_t k_cache,
                   uintptr_t v_cache) {
  check_positive(n_seqs, "the number of sequences");
  check_positive(capacity, "the cache capacity");
  const auto* pos = ptr<const int32_t>(positions);
  const auto* seq = ptr<const int32_t>(seq_ids);
  std::vector<int32_t> block_ids(static_cast<size_t>(n_seqs));
  for (int64_t s = 0; s < n_seqs; ++s) block_ids[static_cast<size_t>(s)] = static_cast<int32_t>(s);
  std::vector<const int32_t*> tables(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    BX_CHECK(seq[t] >= 0 && seq[t] < n_seqs, "bitexact.torch: sequence id " +
                                                 std::to_string(seq[t]) + " is outside [0, " +
                                                 std::to_string(n_seqs) + ")");
    BX_CHECK(pos[t] >= 0 && pos[t] < capacity, "bitexact.torch: position " +
                                                   std::to_string(pos[t]) + " is outside [0, " +
                                                   std::to_string(capacity) + ")");
    tables[static_cast<size_t>(t)] = block_ids.data() + seq[t];
  }
  const KvLayerView kv{
      ptr<float>(k_cache), ptr<float>(v_cache), n_seqs, capacity, n_kv_heads, head_dim};
  kv_cache_write(kv, ptr<const float>(k), k_stride, ptr<const float>(v), v_stride, pos,
                 tables.data(), T);
  AttentionArgs args;
  args.q = ptr<const float>(q);
  args.q_stride = q_stride;
  args.out = ptr<float>(out);
  args.out_stride = out_stride;
  args.positions = pos;
  args.block_tables = tables.data();
  args.T = T;
  args.n_heads = n_heads;
  args.scale = scale;
  args.kv = kv;
  attention(args, pool());
}

#if defined(BITEXACT_HAVE_CUDA)
// --- CUDA -----------------------------------------------------------------------------------

cudaStream_t stream_of(uintptr_t stream) {
  return reinterpret_cast<cudaStream_t>(stream);
}

// y[M,N] = bf16(x)[M,Kp] @ W[N,Kp]^T (kernels/cuda/gemm.h): x f32 [M,K] is rounded into
// x_bf16 [M,Kp] (+0 in columns [K, Kp)), as the CUDA backend's bf16_rows; W bf16 [N,Kp] with the
// engine's zero padding; fast: cuBLAS (the R8 baseline, not invariant).
void cuda_matmul(uintptr_t x, int64_t x_stride, uintptr_t x_bf16, uintptr_t w, int64_t w_stride,
                 uintptr_t y, int64_t y_stride, int64_t M, int64_t N, int64_t K, int64_t Kp,
                 bool fast, uintptr_t stream) {
  BX_CHECK(Kp % 8 == 0 && Kp >= K, "bitexact.torch: padded K " + std::to_string(Kp) +
                                       " must be a multiple of 8 and at least K " +
                                       std::to_string(K));
  cuda::to_bf16_padded(ptr<const float>(x), x_stride, ptr<uint16_t>(x_bf16), Kp, M, K, Kp,
                       stream_of(stream));
  cuda::GemmArgs args;
  args.x = ptr<const uint16_t>(x_bf16);
  args.x_stride = Kp;
  args.w = ptr<const uint16_t>(w);
  args.w_stride = w_stride;
  args.y = ptr<float>(y);
  args.y_stride = y_stride;
  args.M = M;
  args.N = N;
  args.K = Kp;
  if (fast) {
    cuda::gemm_bf16_cublas(args, stream_of(stream));
  } else {
    cuda::gemm_bf16(args, stream_of(stream));
  }
}

void cuda_rmsnorm(uintptr_t x, int64_t x_stride, uintptr_t w, float eps, uintptr_t out,
                  int64_t out_stride, int64_t M, int64_t D, uintptr_t stream) {
  cuda::rmsnorm(ptr<const float>(x), x_stride, ptr<const float>(w), eps, ptr<float>(out),
                out_stride, M, D, stream_of(stream));
}

void cuda_log_softmax(uintptr_t x, int64_t x_stride, uintptr_t out, int64_t out_stride, int64_t M,
                      int64_t N, uintptr_t stream) {
  cuda::log_softmax(ptr<const float>(x), x_stride, ptr<float>(out), out_stride, M, N,
                    stream_of(stream));
}

void cuda_silu_mul(uintptr_t gate, int64_t gate_stride, uintptr_t up, int64_t up_stride,
                   uintptr_t out, int64_t out_stride, int64_t M, int64_t F, uintptr_t stream) {
  cuda::silu_mul(ptr<const float>(gate), gate_stride, ptr<const float>(up), up_stride,
                 ptr<float>(out), out_stride, M, F, stream_of(stream));
}

// out[t] = widen(table[ids[t]]) with the table in bf16 (the CUDA backend's embedding); ids int32
// on the device, checked by the caller.
void cuda_embed(uintptr_t table, int64_t table_stride, uintptr_t ids, uintptr_t out,
                int64_t out_stride, int64_t T, int64_t D, uintptr_t stream) {
  cuda::embed_rows(ptr<const void>(table), true, table_stride, ptr<const int32_t>(ids),
                   ptr<float>(out), out_stride, T, D, stream_of(stream));
}

void cuda_rope(uintptr_t x, int64_t x_stride, uintptr_t positions, int64_t T, int n_heads,
               int head_dim, uintptr_t cos, uintptr_t sin, int table_rows, bool adjacent,
               uintptr_t stream) {
  cuda::RopeDeviceTable table;
  table.cos = ptr<const float>(cos);
  table.sin = ptr<const float>(sin);
  table.head_dim = head_dim;
  table.max_positions = table_rows;
  table.layout = layout_of(adjacent);
  cuda::rope_inplace(ptr<float>(x), x_stride, ptr<const int32_t>(positions), T, n_heads, table,
                     stream_of(stream));
}

// The tiling plan of a packed batch (kernels/cuda/attention.h), built on the host from host
// copies of positions and seq_ids [T] int32 and kept on the device for the next cuda_attention
// on this thread; returns the floats of workspace that attention needs with it.
thread_local cuda::AttentionPlanner attention_planner;

int64_t cuda_attention_plan(uintptr_t positions_host, uintptr_t seq_ids_host, int64_t T,
                            int n_heads, int head_dim, int split, uintptr_t stream) {
  const cuda::AttentionPlan& plan = attention_planner.build(
      ptr<const int32_t>(positions_host), ptr<const int32_t>(seq_ids_host), T, stream_of(stream));
  return cuda::attention_workspace_floats(plan, n_heads, head_dim, split);
}

// The CPU entry's contract on the GPU (kernels/cuda/attention.h), the cache in bf16
// ([n_seqs, capacity, n_kv_heads, head_dim] each), with the plan of cuda_attention_plan (built for
// these T tokens). positions and seq_ids are int32 [T] on the device; block_ids [n_seqs] holds
// 0, 1, ..: token t reads block seq_ids[t], its sequence's one block. workspace: the plan's floats.
void cuda_attention(uintptr_t q, int64_t q_stride, uintptr_t k, int64_t k_stride, uintptr_t v,
                    int64_t v_stride, uintptr_t out, int64_t out_stride, uintptr_t positions,
                    uintptr_t seq_ids, uintptr_t block_ids, int64_t T, int64_t n_seqs, int capacity,
                    int n_heads, int n_kv_heads, int head_dim, float scale, uintptr_t k_cache,
                    uintptr_t v_cache, uintptr_t workspace, int64_t workspace_floats, int split,
                    uintptr_t stream) {
  check_positive(n_seqs, "the number of sequences");
  check_positive(capacity, "the cache capacity");
  const cuda::AttentionPlan& plan = attention_planner.plan();
  BX_CHECK(plan.T == T, "bitexact.torch: the attention plan is for " + std::to_string(plan.T) +
                            " tokens, not " + std::to_string(T) + " (cuda_attention_plan first)");
  BX_CHECK(plan.max_position < capacity,
           "bitexact.torch: position " + std::to_string(plan.max_position) +
               " is outside the cache capacity " + std::to_string(capacity));
  cuda::PagedKv kv{
      ptr<uint16_t>(k_cache), ptr<uint16_t>(v_cache), n_seqs, capacity, n_kv_heads, head_dim};
  cuda::DeviceBatch batch{ptr<const int32_t>(positions), ptr<const int32_t>(seq_ids),
                          ptr<const int32_t>(block_ids), T};
  cuda::kv_cache_write(kv, ptr<const float>(k), k_stride, ptr<const float>(v), v_stride, batch,
                       stream_of(stream));
  cuda::AttentionArgs args;
  args.q = ptr<const float>(q);
  args.q_stride = q_stride;
  args.out = ptr<float>(out);
  args.out_stride = out_stride;
  args.n_heads = n_heads;
  args.scale = scale;
  args.kv = kv;
  args.batch = batch;
  args.plan = plan;
  args.workspace = ptr<float>(workspace);
  args.workspace_floats = workspace_floats;
  args.split = split;
  cuda::attention(args, stream_of(stream));
}
#endif

}  // namespace
}  // namespace bx::torch_kernels

// Registers the entry points in `m` (the extension's torch_kernels submodule).
void bind_torch_kernels(nb::module_& m) {
  using namespace bx::torch_kernels;
  const auto release = nb::call_guard<nb::gil_scoped_release>();
  m.def("rope_table", &rope_table, "head_dim"_a, "theta"_a, "max_positions"_a, "llama3"_a,
        "factor"_a, "low_freq_factor"_a, "high_freq_factor"_a, "original_max_positions"_a);
  m.def("cpu_matmul", &cpu_matmul, release);
  m.def("cpu_rmsnorm", &cpu_rmsnorm, release);
  m.def("cpu_log_softmax", &cpu_log_softmax, release);
  m.def("cpu_silu_mul", &cpu_silu_mul, release);
  m.def("cpu_embed", &cpu_embed, release);
  m.def("cpu_rope", &cpu_rope, release);
  m.def("cpu_attention", &cpu_attention, release);
  m.attr("attention_chunk") = bx::kAttentionChunk;
#if defined(BITEXACT_HAVE_CUDA)
  m.attr("has_cuda") = true;
  // The split the engine runs with (the opt-in cuda-k3 attention, BITEXACT_ATTENTION_K3=1, splits
  // by 128 positions), so the torch op gives the engine's bits.
  m.attr("cuda_attention_split") =
      bx::cuda::attention_k3_enabled() ? bx::cuda::kAttentionSplitK3 : bx::cuda::kAttentionSplit;
  m.def("cuda_matmul", &cuda_matmul, release);
  m.def("cuda_rmsnorm", &cuda_rmsnorm, release);
  m.def("cuda_log_softmax", &cuda_log_softmax, release);
  m.def("cuda_silu_mul", &cuda_silu_mul, release);
  m.def("cuda_embed", &cuda_embed, release);
  m.def("cuda_rope", &cuda_rope, release);
  m.def("cuda_attention", &cuda_attention, release);
  m.def("cuda_attention_plan", &cuda_attention_plan, release);
#else
  m.attr("has_cuda") = false;
#endif
}
