// The Mixture-of-Experts MLP on the GPU: y += moe(x) for T tokens (Qwen3-MoE, Mixtral), the
// contract of kernels/moe.h with the CUDA backend's numerics (bf16 GEMM inputs, f32 chains).
//
//   xb      = bf16(x) padded to Dp = round_up(D, 8)                     [T, Dp]
//   logits  = xb W_router^T                                             [T, E]  gemm_bf16 (gemm.h)
//   ids, w  = route(logits)                                             [T, k]
//   grouped = the (token, rank) slots sorted by expert, a stable counting sort: expert e's
//             rows are rows [offsets[e], offsets[e+1]) of the grouped buffers, in increasing
//             token order; xg[row] = xb[token of row]
//   act     = bf16(silu(xg Wg_e^T) * (xg Wu_e^T)) on expert e's rows    [S, Fp] (S = T k)
//   out     = act Wd_e^T on expert e's rows                             [S, D] f32
//   y[t]    = y[t] + (((w[t,0] o[t,0] + w[t,1] o[t,1]) + ...) + w[t,k-1] o[t,k-1])
//             in the token's rank order, f32, each product and sum rounded (no FMA)
//
// Orders (INVARIANCE.md R10):
// - route: exactly kernels/moe_routing.h's route_tokens on the same logits (bit for bit: the
//   max, exp_steps, the 16-lane canonical sum and its tree, the division, top-k with ties to the
//   lowest expert id, the rank-order normalization; moe_route.cuh): the softmax by one warp per
//   token, the top-k as each expert's rank (the experts above it under a strict total order),
//   counted by any thread, so a token's route depends on its own logits only.
//   tests/cuda/moe_cuda_test compares it with the CPU function.
// - launches: to_bf16, router GEMM, then for T <= 16 (moe_steps.h small_grouping) one block that
//   routes, groups and gathers, else route, count, scatter (+ gather); the two expert GEMMs; the
//   combine (moe_layer_launch_names).
// - expert GEMMs: one grouped launch per projection over a device-side tile list (tiles of BM
//   rows of one expert); every element is the chain of gemm.h: 16-wide K slices in increasing k
//   from +0, K padded with zeros to a multiple of 64, the bits of gemm_bf16. Two kernels give
//   it (MoeExpertGemm): gemm.h's wgmma kernel reading the tile list (gemm_grouped.h, the
//   default) and moe_gemm.cu's mma.sync m16n8k16 kernel (the tensor core's m16n8k16 and wgmma
//   give the same bits: gemm.h; tests/cuda/moe_cuda_test checks the two against each other). The
//   tile height BM follows T (only speed); the K order never does. So expert e's result for a
//   token does not depend on how many tokens e received, which ones, or where they sit in a tile.
// - SwiGLU: (g / (1.0f + expf(-g))) * u on the two chains, rounded to bf16 (rows.h silu_mul,
//   then to_bf16_padded: the bits of the dense CudaBackend swiglu).
// - combine: as above, in rank order; never in expert, arrival or completion order.
// No step synchronises with the host, so the layer can be captured in a CUDA graph.
//
// Controls and the fast mode (only to show that the invariance tests can fail, and R8):
// - MoeExpertOrder::split_k_by_count: each expert GEMM splits K into 1 + n_e % 3 parts (n_e the
//   expert's token count, read on the device), each its own chain from +0, summed in order: a
//   split that follows the count, as a grouped GEMM picking a split-K config per expert does.
// - MoeCombineOrder::by_load: each token sums its k products in the order a scheduler running
//   the busiest expert first would finish them (decreasing load, ties to the lower id), then
//   adds the sum to y: a deterministic order that follows the other tokens' routes.
// - MoeCombineOrder::atomic: y[t] += w o by atomicAdd per (slot, column), in whatever order
//   the hardware lands them (the fast mode: what the usual fused-MoE combine does).
//
// Weights (device, bf16 bits, rows padded with zeros to the stride): router [E, Dp], gate and up
// [E*F, Dp] (expert e: rows [eF, (e+1)F)), down [E*D, Fp] (expert e: rows [eD, (e+1)D)); strides
// multiples of 8 and at least Dp (Fp for down). x, y f32 [T, D] on the device.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bx::cuda {

enum class MoeExpertOrder { canonical, split_k_by_count };
enum class MoeCombineOrder { rank, by_load, atomic };

// The router GEMM: the invariant kernel, or cuBLAS (fast mode).
enum class MoeRouterGemm { invariant, cublas };

// The kernel of the expert GEMMs; both give gemm.h's chain, so the same bits. mma_sync:
// moe_gemm.cu's grouped mma.sync kernel (tiles of 16, 64 or 128 rows by T). wgmma (canonical
// order only; the split control runs mma_sync): the tokens' rows gathered into expert order, then
// gemm_bf16_grouped (gemm_grouped.h: the wgmma kernel of gemm.h reading the device tile list)
// with tiles of 64 or 128 rows.
enum class MoeExpertGemm { mma_sync, wgmma };

// BITEXACT_MOE_SPEED=1 in the environment: MoeLayerArgs::speed_kernels defaults to on.
bool moe_speed_kernels_from_env();

struct MoeLayerArgs {
  const float* x = nullptr;  // [T, D] f32, row stride x_stride
  int64_t x_stride = 0;
  float* y = nullptr;  // [T, D] f32, row stride y_stride; y += moe(x); must not overlap x
  int64_t y_stride = 0;
  int64_t T = 0, D = 0, F = 0;
  int n_experts = 0, top_k = 0;
  bool normalize = false;
  const uint16_t* router = nullptr;  // [E, *] row stride router_stride
  int64_t router_stride = 0;
  const uint16_t* gate = nullptr;  // [E*F, *] row stride gate_up_stride
  const uint16_t* up = nullptr;
  int64_t gate_up_stride = 0;
  const uint16_t* down = nullptr;  // [E*D, *] row stride down_stride
  int64_t down_stride = 0;
  void* workspace = nullptr;  // moe_layer_workspace_bytes(T, D, F, E, k) bytes, 256-aligned
  MoeExpertOrder expert_order = MoeExpertOrder::canonical;
  MoeCombineOrder combine = MoeCombineOrder::rank;
  MoeRouterGemm router_gemm = MoeRouterGemm::invariant;
  // wgmma by default: the same bits as mma_sync (tests/cuda/moe_cuda_test), 1.1x faster at decode
  // and 2.5x at prefill on the H100 (bench/cuda/MOE_NOTES.md, run 2).
  MoeExpertGemm expert_gemm = MoeExpertGemm::wgmma;
  // At T <= kMoeEarlyStartTokens the steps after the router launch with programmatic dependent
  // launch (each may be scheduled while the previous one drains; only speed). Off by default:
  // slower at T = 1 and 2 on the H100 (bench/cuda/MOE_NOTES.md, run 1).
  bool early_start = false;
  // Tiles of 128 rows on the wgmma path (prefill): the gated GEMM's producer threads read the
  // tokens' xb rows through the grouping (gemm_grouped.h GemmGroups::x_rows) instead of a
  // gathered copy xg (one pass over S x D bf16 less). The same bits either way. Off until a
  // device run has shown it (moe_bench and moe_cuda_test run it explicitly).
  bool gather_in_gemm = false;
  // The speed kernels (bench/cuda/MOE_NOTES.md, issue 18 item 5; NOT yet run on a device, so
  // opt-in): the rank-counting route, the chunked grouping with the gather in its scatter, the
  // 16-byte combine, the tighter tile bound and idle-consumer skip of the grouped GEMM, and for
  // T <= 16 the fused launches below. Off: the verified launches of run 2. The same bits either
  // way by construction; gather_in_gemm and small_batch_kernels act only with this on.
  bool speed_kernels = moe_speed_kernels_from_env();
  // T <= 16 (decode): the fused launches (router_small, route_and_group_small,
  // down_combine_small: 4 launches in all at T = 1); false: the general launches, the same bits.
  bool small_batch_kernels = true;
  // Benchmarks only: issue the first `launches` launches of the layer and stop (0: all), to time
  // its steps as differences of prefixes.
  int launches = 0;
};
inline constexpr int64_t kMoeEarlyStartTokens = 64;

// The most experts and the largest k the layer takes.
inline constexpr int kMoeMaxExperts = 512;
inline constexpr int kMoeMaxTopK = 32;

// Bytes of workspace for up to T tokens (the buffers of moe_layer, all overwritten).
size_t moe_layer_workspace_bytes(int64_t T, int64_t D, int64_t F, int n_experts, int top_k);

// Throws bx::Error naming the first problem unless args is a layer moe_layer can run.
void check_moe_layer_args(const MoeLayerArgs& args, const char* who);

// The layer; asynchronous on `stream`, no host synchronisation.
void moe_layer(const MoeLayerArgs& args, cudaStream_t stream);

// The names of moe_layer's launches for these arguments, in order (MoeLayerArgs::launches).
std::vector<std::string> moe_layer_launch_names(const MoeLayerArgs& args);

// Reference of the same contract, by other means: the router through gemm_bf16_reference, the
// routing and the grouping on the host with kernels/moe_routing.h, one gemm_bf16_reference per
// expert and projection (unfused: gate, up, silu_mul, to_bf16_padded, down), the combine on the
// host. Rank order only (the controls are moe_layer's). Synchronises; slow; for tests.
void moe_layer_reference(const MoeLayerArgs& args, cudaStream_t stream);

// The routing alone (what moe_layer computes first), for tests: ids [T*k] and weights [T*k] on
// the device from logits [T, E] (row stride logits_stride) on the device.
// early_start: launched with programmatic dependent launch (moe_launch.cuh).
void moe_route(const float* logits, int64_t logits_stride, int64_t T, int n_experts, int top_k,
               bool normalize, int32_t* ids, float* weights, cudaStream_t stream,
               bool early_start = false);

}  // namespace bx::cuda
