// The GPU Mixture-of-Experts layer (moe.h): its workspace and its launches, in order.
#include "kernels/cuda/moe.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemm_grouped.h"
#include "kernels/cuda/moe_steps.h"
#include "kernels/cuda/rows.h"

namespace bx::cuda {
namespace {

constexpr size_t kAlign = 256;

int64_t round_up8(int64_t n) {
  return (n + 7) / 8 * 8;
}

// The workspace carved into its buffers (sizes for T tokens; base null: sizing only).
struct Workspace {
  uint16_t* xb = nullptr;    // [T, Dp] x rounded to bf16
  float* logits = nullptr;   // [T, E]
  int32_t* ids = nullptr;    // [S]
  float* weights = nullptr;  // [S]
  moe::Grouping grouping;    // offsets [E + 1], row_of [S], row_token [S], tiles, chunk counts
  uint16_t* xg = nullptr;    // [S, Dp] xb's rows in expert order (the wgmma path)
  uint16_t* act = nullptr;   // [S, Fp] silu(gate) * up, bf16
  float* out = nullptr;      // [S, D] each expert's output rows
  size_t bytes = 0;

  template <typename T>
  T* take(std::byte* base, int64_t n) {
    T* p = base != nullptr ? reinterpret_cast<T*>(base + bytes) : nullptr;
    bytes += (static_cast<size_t>(n) * sizeof(T) + kAlign - 1) / kAlign * kAlign;
    return p;
  }

  Workspace(int64_t T, int64_t D, int64_t F, int E, int k, void* base_ptr) {
    auto* base = static_cast<std::byte*>(base_ptr);
    const int64_t S = T * k;
    const int64_t tiles = moe::max_tiles(S, E, 16);  // the smallest tile height: the most tiles
    xb = take<uint16_t>(base, T * round_up8(D));
    logits = take<float>(base, T * E);
    ids = take<int32_t>(base, S);
    weights = take<float>(base, S);
    grouping.offsets = take<int32_t>(base, E + 1);
    grouping.row_of = take<int32_t>(base, S);
    grouping.row_token = take<int32_t>(base, S);
    grouping.tile_expert = take<int32_t>(base, tiles);
    grouping.tile_row0 = take<int32_t>(base, tiles);
    grouping.n_tiles = take<int32_t>(base, 1);
    grouping.chunk_base = take<int32_t>(base, moe::group_chunks(S) * E);
    grouping.ticket = take<int32_t>(base, 1);
    xg = take<uint16_t>(base, S * round_up8(D));
    act = take<uint16_t>(base, S * round_up8(F));
    out = take<float>(base, S * D);
  }
};

// A few tokens: routing, grouping and gathering in one block.
bool small_group(const MoeLayerArgs& a) {
  return a.speed_kernels && a.small_batch_kernels && moe::small_grouping(a.T, a.top_k, a.n_experts);
}

// A few tokens through the invariant router: xb and the logits in one launch (router_small).
bool fused_router(const MoeLayerArgs& a) {
  return a.speed_kernels && a.small_batch_kernels && a.router_gemm == MoeRouterGemm::invariant &&
         moe::small_router(a.T, a.D);
}

// A few tokens on the wgmma path in rank order: the down projection and the combine in one launch.
bool fused_down_combine(const MoeLayerArgs& a) {
  return a.expert_gemm == MoeExpertGemm::wgmma && a.expert_order == MoeExpertOrder::canonical &&
         a.combine == MoeCombineOrder::rank && small_group(a);
}

}  // namespace

bool moe_speed_kernels_from_env() {
  const char* v = std::getenv("BITEXACT_MOE_SPEED");
  return v != nullptr && std::string(v) == "1";
}

size_t moe_layer_workspace_bytes(int64_t T, int64_t D, int64_t F, int n_experts, int top_k) {
  return Workspace(T, D, F, n_experts, top_k, nullptr).bytes;
}

void check_moe_layer_args(const MoeLayerArgs& a, const char* who) {
  const std::string w = who;
  BX_CHECK(a.n_experts >= 1 && a.n_experts <= kMoeMaxExperts && a.top_k >= 1 &&
               a.top_k <= a.n_experts && a.top_k <= kMoeMaxTopK,
           w + ": top-" + std::to_string(a.top_k) + " of " + std::to_string(a.n_experts) +
               " experts: expected 1 <= k <= experts <= " + std::to_string(kMoeMaxExperts) +
               " and k <= " + std::to_string(kMoeMaxTopK));
  BX_CHECK(a.T >= 0 && a.D > 0 && a.F > 0,
           w + ": sizes T=" + std::to_string(a.T) + " D=" + std::to_string(a.D) +
               " F=" + std::to_string(a.F) + ": expected T >= 0 and D, F > 0");
  const int64_t Dp = round_up8(a.D), Fp = round_up8(a.F);
  BX_CHECK(a.router_stride >= Dp && a.router_stride % 8 == 0 && a.gate_up_stride >= Dp &&
               a.gate_up_stride % 8 == 0 && a.down_stride >= Fp && a.down_stride % 8 == 0,
           w + ": weight row strides " + std::to_string(a.router_stride) + ", " +
               std::to_string(a.gate_up_stride) + " and " + std::to_string(a.down_stride) +
               ": expected multiples of 8 of at least " + std::to_string(Dp) + ", " +
               std::to_string(Dp) + " and " + std::to_string(Fp));
  BX_CHECK(a.T == 0 ||
               (a.x != nullptr && a.y != nullptr && a.workspace != nullptr && a.router != nullptr &&
                a.gate != nullptr && a.up != nullptr && a.down != nullptr),
           w + ": null x, y, workspace or weights");
  BX_CHECK(a.x_stride >= a.D && a.y_stride >= a.D,
           w + ": x and y row strides must be at least D = " + std::to_string(a.D));
}

// The speed path's combine: 16-byte loads in rank order where they fit, else moe_combine.cu.
static void combine_any(const Workspace& ws, const MoeLayerArgs& a, int64_t T, int k, int64_t D,
                        cudaStream_t stream, bool early) {
  if (a.combine == MoeCombineOrder::rank && moe::combine_wide_fits(ws.out, D, a.y, a.y_stride)) {
    moe::combine_wide(ws.out, ws.weights, ws.grouping, T, k, D, a.y, a.y_stride, stream, early);
  } else {
    moe::combine(ws.out, ws.ids, ws.weights, ws.grouping, T, k, D, a.y, a.y_stride, a.combine,
                 stream, early);
  }
}

// The speed kernels (MoeLayerArgs::speed_kernels).
static void speed_layer(const MoeLayerArgs& a, cudaStream_t stream) {
  if (a.T == 0) return;
  const int64_t T = a.T, D = a.D, Dp = round_up8(a.D), Fp = round_up8(a.F);
  const int E = a.n_experts, k = a.top_k;
  const int64_t S = T * k;
  Workspace ws(T, D, a.F, E, k, a.workspace);

  // a.launches > 0: stop after that many launches (benchmarks time the steps as differences).
  int budget = a.launches > 0 ? a.launches : 1 << 30;
  const auto next = [&budget] { return --budget >= 0; };

  const bool early = a.early_start && T <= kMoeEarlyStartTokens;
  if (fused_router(a)) {
    if (!next()) return;
    moe::router_small(a.x, a.x_stride, T, D, a.router, a.router_stride, E, ws.xb, ws.logits, stream,
                      early);
  } else {
    if (!next()) return;
    to_bf16_padded(a.x, a.x_stride, ws.xb, Dp, T, D, Dp, stream);
    GemmArgs router;
    router.x = ws.xb;
    router.x_stride = Dp;
    router.w = a.router;
    router.w_stride = a.router_stride;
    router.y = ws.logits;
    router.y_stride = E;
    router.M = T;
    router.N = E;
    router.K = Dp;
    if (!next()) return;
    if (a.router_gemm == MoeRouterGemm::cublas) {
      gemm_bf16_cublas(router, stream);
    } else {
      gemm_bf16(router, stream);
    }
  }
  const bool wgmma =
      a.expert_gemm == MoeExpertGemm::wgmma && a.expert_order == MoeExpertOrder::canonical;
  const int bm = wgmma ? std::max(64, moe::tile_rows(T, k, E)) : moe::tile_rows(T, k, E);
  // The wgmma path reads the tokens' rows gathered into expert order (xg); mma.sync reads xb
  // through row_token.
  const bool gather_in_gemm = wgmma && bm == 128 && a.gather_in_gemm;
  uint16_t* xg = wgmma && !gather_in_gemm ? ws.xg : nullptr;
  if (small_group(a)) {
    if (!next()) return;
    moe::route_and_group_small(ws.logits, E, T, E, k, a.normalize, bm, ws.ids, ws.weights,
                               ws.grouping, ws.xb, Dp, xg, stream, early);
  } else {
    if (!next()) return;
    moe::route_tokens(ws.logits, E, T, E, k, a.normalize, ws.ids, ws.weights, ws.grouping.ticket,
                      stream, early);
    if (!next()) return;
    moe::count_by_expert(ws.ids, S, E, bm, ws.grouping, stream, early);
    if (!next()) return;
    moe::scatter_by_expert(ws.ids, S, k, E, ws.grouping, ws.xb, Dp, xg, stream, early);
  }

  if (wgmma) {
    // act = silu(xg Wg^T) * (xg Wu^T); out = act Wd^T.
    GemmGroups groups;
    groups.count = E;
    groups.tile_group = ws.grouping.tile_expert;
    groups.tile_row0 = ws.grouping.tile_row0;
    groups.n_tiles = ws.grouping.n_tiles;
    groups.offsets = ws.grouping.offsets;
    groups.max_tiles = moe::max_tiles_tight(S, E, bm);
    groups.tile_rows = bm;
    groups.early_start = early;
    groups.skip_idle_consumers = true;
    if (gather_in_gemm) {
      groups.x_rows = ws.grouping.row_token;
      groups.x_count = T;
    }
    GemmArgs g;
    g.x = gather_in_gemm ? ws.xb : ws.xg;
    g.x_stride = Dp;
    g.w = a.gate;
    g.w_up = a.up;
    g.w_stride = a.gate_up_stride;
    g.y_bf16 = ws.act;
    g.y_stride = Fp;
    g.M = S;
    g.N = a.F;
    g.K = Dp;
    if (!next()) return;
    gemm_bf16_grouped(g, groups, stream);
    if (fused_down_combine(a)) {
      if (!next()) return;
      moe::down_combine_small(ws.act, Fp, a.down, a.down_stride, D, E, k, T, ws.grouping,
                              ws.weights, a.y, a.y_stride, stream, early);
      return;
    }
    GemmArgs d;
    d.x = ws.act;
    d.x_stride = Fp;
    d.w = a.down;
    d.w_stride = a.down_stride;
    d.y = ws.out;
    d.y_stride = D;
    d.M = S;
    d.N = D;
    d.K = Fp;
    if (!next()) return;
    gemm_bf16_grouped(d, groups, stream);
    if (!next()) return;
    combine_any(ws, a, T, k, D, stream, early);
    return;
  }

  moe::GroupedGemm gated;  // act = silu(xg Wg^T) * (xg Wu^T), rows gathered from xb
  gated.a = ws.xb;
  gated.a_stride = Dp;
  gated.a_rows = ws.grouping.row_token;
  gated.w = a.gate;
  gated.w_up = a.up;
  gated.w_stride = a.gate_up_stride;
  gated.act = ws.act;
  gated.y_stride = Fp;
  gated.N = a.F;
  gated.K = Dp;
  gated.slots = S;
  gated.n_experts = E;
  gated.order = a.expert_order;
  if (!next()) return;
  moe::grouped_gemm(gated, ws.grouping, bm, stream, early);

  moe::GroupedGemm down;  // out = act Wd^T
  down.a = ws.act;
  down.a_stride = Fp;
  down.w = a.down;
  down.w_stride = a.down_stride;
  down.y = ws.out;
  down.y_stride = D;
  down.N = D;
  down.K = Fp;
  down.slots = S;
  down.n_experts = E;
  down.order = a.expert_order;
  if (!next()) return;
  moe::grouped_gemm(down, ws.grouping, bm, stream, early);
  if (!next()) return;

  combine_any(ws, a, T, k, D, stream, early);
}

// The verified launches (the default).
static void verified_layer(const MoeLayerArgs& a, cudaStream_t stream) {
  if (a.T == 0) return;
  const int64_t T = a.T, D = a.D, Dp = round_up8(a.D), Fp = round_up8(a.F);
  const int E = a.n_experts, k = a.top_k;
  const int64_t S = T * k;
  Workspace ws(T, D, a.F, E, k, a.workspace);

  // a.launches > 0: stop after that many launches (benchmarks time the steps as differences).
  int budget = a.launches > 0 ? a.launches : 1 << 30;
  const auto next = [&budget] { return --budget >= 0; };

  if (!next()) return;
  to_bf16_padded(a.x, a.x_stride, ws.xb, Dp, T, D, Dp, stream);
  GemmArgs router;
  router.x = ws.xb;
  router.x_stride = Dp;
  router.w = a.router;
  router.w_stride = a.router_stride;
  router.y = ws.logits;
  router.y_stride = E;
  router.M = T;
  router.N = E;
  router.K = Dp;
  if (!next()) return;
  if (a.router_gemm == MoeRouterGemm::cublas) {
    gemm_bf16_cublas(router, stream);
  } else {
    gemm_bf16(router, stream);
  }
  const bool early = a.early_start && T <= kMoeEarlyStartTokens;
  if (!next()) return;
  moe_route(ws.logits, E, T, E, k, a.normalize, ws.ids, ws.weights, stream, early);
  const bool wgmma =
      a.expert_gemm == MoeExpertGemm::wgmma && a.expert_order == MoeExpertOrder::canonical;
  const int bm = wgmma ? std::max(64, moe::tile_rows(T, k, E)) : moe::tile_rows(T, k, E);
  if (!next()) return;
  moe::group_by_expert(ws.ids, T, k, E, bm, ws.grouping, stream, early);

  if (wgmma) {
    // xg = xb's rows in expert order; act = silu(xg Wg^T) * (xg Wu^T); out = act Wd^T.
    if (!next()) return;
    moe::gather_rows(ws.xb, Dp, ws.grouping.row_token, S, ws.xg, stream, early);
    GemmGroups groups;
    groups.count = E;
    groups.tile_group = ws.grouping.tile_expert;
    groups.tile_row0 = ws.grouping.tile_row0;
    groups.n_tiles = ws.grouping.n_tiles;
    groups.offsets = ws.grouping.offsets;
    groups.max_tiles = moe::max_tiles(S, E, bm);
    groups.tile_rows = bm;
    groups.early_start = early;
    GemmArgs g;
    g.x = ws.xg;
    g.x_stride = Dp;
    g.w = a.gate;
    g.w_up = a.up;
    g.w_stride = a.gate_up_stride;
    g.y_bf16 = ws.act;
    g.y_stride = Fp;
    g.M = S;
    g.N = a.F;
    g.K = Dp;
    if (!next()) return;
    gemm_bf16_grouped(g, groups, stream);
    GemmArgs d;
    d.x = ws.act;
    d.x_stride = Fp;
    d.w = a.down;
    d.w_stride = a.down_stride;
    d.y = ws.out;
    d.y_stride = D;
    d.M = S;
    d.N = D;
    d.K = Fp;
    if (!next()) return;
    gemm_bf16_grouped(d, groups, stream);
    if (!next()) return;
    moe::combine(ws.out, ws.ids, ws.weights, ws.grouping, T, k, D, a.y, a.y_stride, a.combine,
                 stream, early);
    return;
  }

  moe::GroupedGemm gated;  // act = silu(xg Wg^T) * (xg Wu^T), rows gathered from xb
  gated.a = ws.xb;
  gated.a_stride = Dp;
  gated.a_rows = ws.grouping.row_token;
  gated.w = a.gate;
  gated.w_up = a.up;
  gated.w_stride = a.gate_up_stride;
  gated.act = ws.act;
  gated.y_stride = Fp;
  gated.N = a.F;
  gated.K = Dp;
  gated.slots = S;
  gated.n_experts = E;
  gated.order = a.expert_order;
  if (!next()) return;
  moe::grouped_gemm(gated, ws.grouping, bm, stream, early);

  moe::GroupedGemm down;  // out = act Wd^T
  down.a = ws.act;
  down.a_stride = Fp;
  down.w = a.down;
  down.w_stride = a.down_stride;
  down.y = ws.out;
  down.y_stride = D;
  down.N = D;
  down.K = Fp;
  down.slots = S;
  down.n_experts = E;
  down.order = a.expert_order;
  if (!next()) return;
  moe::grouped_gemm(down, ws.grouping, bm, stream, early);
  if (!next()) return;

  moe::combine(ws.out, ws.ids, ws.weights, ws.grouping, T, k, D, a.y, a.y_stride, a.combine, stream,
               early);
}

void moe_layer(const MoeLayerArgs& a, cudaStream_t stream) {
  check_moe_layer_args(a, "moe_layer");
  if (a.speed_kernels) {
    speed_layer(a, stream);
  } else {
    verified_layer(a, stream);
  }
}

std::vector<std::string> moe_layer_launch_names(const MoeLayerArgs& a) {
  if (!a.speed_kernels) {
    if (a.expert_gemm == MoeExpertGemm::wgmma && a.expert_order == MoeExpertOrder::canonical) {
      return {"to_bf16", "router", "route", "group", "gather", "gated", "down", "combine"};
    }
    return {"to_bf16", "router", "route", "group", "gated", "down", "combine"};
  }
  std::vector<std::string> names;
  if (fused_router(a)) {
    names.push_back("to_bf16+router");
  } else {
    names.insert(names.end(), {"to_bf16", "router"});
  }
  if (small_group(a)) {
    names.push_back(a.expert_gemm == MoeExpertGemm::wgmma ? "route+group+gather" : "route+group");
  } else {
    const int bm = std::max(64, moe::tile_rows(a.T, a.top_k, a.n_experts));
    const bool gather = a.expert_gemm == MoeExpertGemm::wgmma && !(bm == 128 && a.gather_in_gemm);
    names.insert(names.end(), {"route", "count", gather ? "scatter+gather" : "scatter"});
  }
  if (fused_down_combine(a)) {
    names.insert(names.end(), {"gated", "down+combine"});
  } else {
    names.insert(names.end(), {"gated", "down", "combine"});
  }
  return names;
}

}  // namespace bx::cuda
