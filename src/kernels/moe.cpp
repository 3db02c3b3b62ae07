#include "kernels/moe.h"

#include <algorithm>
#include <cstddef>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/math.h"
#include "kernels/quant.h"
#include "kernels/rows.h"

namespace bx {
namespace {

constexpr size_t kAlign = 64;

size_t aligned(size_t bytes) {
  return (bytes + kAlign - 1) / kAlign * kAlign;
}

// The workspace, carved into typed regions (sizes as in moe_workspace_bytes).
struct Workspace {
  float* logits;     // [T, E]
  int32_t* ids;      // [T * k]
  float* weights;    // [T * k]
  int64_t* offsets;  // [E + 1]
  int64_t* slots;    // [T * k]: slots grouped by expert (kernels/moe_routing.h)
  int64_t* row_of;   // [T * k]: slot -> its row in the grouped buffers below
  int32_t* run_pos;  // [E]: the position at which expert e runs (arrival order)
  float* xg;         // [T * k, D]: x rows gathered by expert
  float* gate;       // [T * k, F]: gate, then silu(gate) * up
  float* up;         // [T * k, F]
  float* out;        // [T * k, D]: each expert's output rows

  // n elements at base + offset (nullptr without a base: sizing only); offset moves past them.
  template <typename T>
  static T* take(std::byte* base, size_t& offset, int64_t n) {
    T* t = base != nullptr ? reinterpret_cast<T*>(base + offset) : nullptr;
    offset += aligned(static_cast<size_t>(n) * sizeof(T));
    return t;
  }
};

size_t workspace_layout(int64_t T, int64_t D, int64_t F, const MoeRouting& r, std::byte* base,
                        Workspace* ws) {
  const int64_t E = r.n_experts, S = T * r.top_k;
  size_t p = 0;
  Workspace w{};
  w.logits = Workspace::take<float>(base, p, T * E);
  w.ids = Workspace::take<int32_t>(base, p, S);
  w.weights = Workspace::take<float>(base, p, S);
  w.offsets = Workspace::take<int64_t>(base, p, E + 1);
  w.slots = Workspace::take<int64_t>(base, p, S);
  w.row_of = Workspace::take<int64_t>(base, p, S);
  w.run_pos = Workspace::take<int32_t>(base, p, E);
  w.xg = Workspace::take<float>(base, p, S * D);
  w.gate = Workspace::take<float>(base, p, S * F);
  w.up = Workspace::take<float>(base, p, S * F);
  w.out = Workspace::take<float>(base, p, S * D);
  if (ws != nullptr) *ws = w;
  return p;
}

// Rows [first, first + count) of m as a MatmulArgs weight.
const void* row_pointer(const MoeMatrix& m, int64_t first) {
  const auto* base = static_cast<const std::byte*>(m.data);
  switch (m.dtype) {
    case DType::f32:
      return base + first * m.stride * 4;
    case DType::bf16:
    case DType::f16:
      return base + first * m.stride * 2;
    default:
      return base + quant::bytes_for(m.dtype, first * m.stride);
  }
}

void check_args(const MoeArgs& a) {
  const MoeRouting& r = a.routing;
  BX_CHECK(r.n_experts >= 1 && r.n_experts <= kMaxExperts && r.top_k >= 1 && r.top_k <= r.n_experts,
           "moe: top-" + std::to_string(r.top_k) + " of " + std::to_string(r.n_experts) +
               " experts: expected 1 <= k <= experts <= " + std::to_string(kMaxExperts));
  BX_CHECK(a.T >= 0 && a.D > 0 && a.F > 0,
           "moe: sizes T=" + std::to_string(a.T) + " D=" + std::to_string(a.D) +
               " F=" + std::to_string(a.F) + ": expected T >= 0 and D, F > 0");
  const int64_t E = r.n_experts;
  BX_CHECK(a.router.rows == E && a.gate.rows == E * a.F && a.up.rows == E * a.F &&
               a.down.rows == E * a.D,
           "moe: weights of " + std::to_string(a.router.rows) + " router rows, " +
               std::to_string(a.gate.rows) + " gate, " + std::to_string(a.up.rows) + " up and " +
               std::to_string(a.down.rows) + " down rows: expected " + std::to_string(E) + ", " +
               std::to_string(E * a.F) + ", " + std::to_string(E * a.F) + " and " +
               std::to_string(E * a.D));
  BX_CHECK(a.T == 0 || (a.x != nullptr && a.y != nullptr && a.workspace != nullptr),
           "moe: null x, y or workspace");
}

// Runs one GEMM the way the caller chose (fast path or reference).
template <typename Gemm>
void layer(const MoeArgs& a, Gemm&& gemm, ThreadPool* pool) {
  check_args(a);
  if (a.T == 0) return;
  const int64_t T = a.T, D = a.D, F = a.F, E = a.routing.n_experts;
  const int k = a.routing.top_k;
  Workspace w;
  workspace_layout(T, D, F, a.routing, static_cast<std::byte*>(a.workspace), &w);

  // logits = x W_router^T, then the routes.
  gemm(a.x, a.x_stride, a.router, 0, E, D, w.logits, E, T);
  route_tokens(w.logits, E, T, a.routing, w.ids, w.weights);
  group_by_expert(w.ids, T, k, static_cast<int>(E), w.offsets, w.slots);

  // The order experts run in: by id; arrival_order: by decreasing load, ties to the lower id.
  int32_t order[kMaxExperts];
  for (int32_t e = 0; e < E; ++e) order[e] = e;
  if (a.combine == MoeCombine::arrival_order) {
    std::stable_sort(order, order + E, [&](int32_t p, int32_t q) {
      return w.offsets[p + 1] - w.offsets[p] > w.offsets[q + 1] - w.offsets[q];
    });
  }
  for (int32_t i = 0; i < E; ++i) w.run_pos[order[i]] = i;

  for (int64_t i = 0; i < E; ++i) {
    const int32_t e = order[i];
    const int64_t first = w.offsets[e], n = w.offsets[e + 1] - first;
    if (n == 0) continue;
    float* xg = w.xg + first * D;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t slot = w.slots[first + j];
      w.row_of[slot] = first + j;
      std::copy_n(a.x + (slot / k) * a.x_stride, D, xg + j * D);
    }
    float* g = w.gate + first * F;
    float* u = w.up + first * F;
    gemm(xg, D, a.gate, e * F, F, D, g, F, n);  // X_e Wg_e^T   [n, F]
    gemm(xg, D, a.up, e * F, F, D, u, F, n);    // X_e Wu_e^T   [n, F]
    if (pool != nullptr) {
      silu_mul(g, F, u, F, g, F, n, F, *pool);
    } else {
      for (int64_t m = 0; m < n * F; ++m) g[m] = (g[m] / (1.0f + exp_f32(-g[m]))) * u[m];
    }
    gemm(g, F, a.down, e * D, D, F, w.out + first * D, D, n);  // act Wd_e^T   [n, D]
  }

  // y[t] += sum over ranks of w[t,r] * o[t,r], in rank order (or, the control, in run order).
  const auto combine = [&](int64_t t0, int64_t t1) {
    int rank_order[kMaxExperts];
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t* id = w.ids + t * k;
      for (int r = 0; r < k; ++r) rank_order[r] = r;
      if (a.combine == MoeCombine::arrival_order) {
        std::sort(rank_order, rank_order + k,
                  [&](int p, int q) { return w.run_pos[id[p]] < w.run_pos[id[q]]; });
      }
      const float* o0 = w.out + w.row_of[t * k + rank_order[0]] * D;
      const float w0 = w.weights[t * k + rank_order[0]];
      float* yr = a.y + t * a.y_stride;
      for (int64_t i = 0; i < D; ++i) {
        float acc = w0 * o0[i];
        for (int j = 1; j < k; ++j) {
          const int r = rank_order[j];
          acc = acc + w.weights[t * k + r] * w.out[w.row_of[t * k + r] * D + i];
        }
        yr[i] = yr[i] + acc;
      }
    }
  };
  if (pool != nullptr) {
    pool->parallel_for(T, 1, combine);
  } else {
    combine(0, T);
  }
}

MatmulArgs matmul_args(const float* x, int64_t x_stride, const MoeMatrix& w, int64_t first,
                       int64_t N, int64_t K, float* y, int64_t y_stride, int64_t M,
                       ReductionOrder order) {
  MatmulArgs m;
  m.x = x;
  m.x_stride = x_stride;
  m.w = row_pointer(w, first);
  m.w_dtype = w.dtype;
  m.w_stride = w.stride;
  m.y = y;
  m.y_stride = y_stride;
  m.M = M;
  m.N = N;
  m.K = K;
  m.order = order;
  return m;
}

}  // namespace

size_t moe_workspace_bytes(int64_t T, int64_t D, int64_t F, const MoeRouting& routing) {
  return workspace_layout(T, D, F, routing, nullptr, nullptr);
}

void moe(const MoeArgs& args, ThreadPool& pool) {
  layer(
      args,
      [&](const float* x, int64_t xs, const MoeMatrix& w, int64_t first, int64_t N, int64_t K,
          float* y, int64_t ys,
          int64_t M) { matmul(matmul_args(x, xs, w, first, N, K, y, ys, M, args.order), pool); },
      &pool);
}

void moe_reference(const MoeArgs& args) {
  layer(
      args,
      [&](const float* x, int64_t xs, const MoeMatrix& w, int64_t first, int64_t N, int64_t K,
          float* y, int64_t ys, int64_t M) {
        matmul_reference(matmul_args(x, xs, w, first, N, K, y, ys, M, args.order));
      },
      nullptr);
}

}  // namespace bx
