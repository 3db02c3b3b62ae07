// The Mixture-of-Experts MLP on the CPU (Qwen3-MoE, Mixtral): y += moe(x) for T tokens.
//
//   logits = x W_router^T                         [T, E]   invariant matmul (kernels/matmul.h)
//   ids, w = route_tokens(logits)                 [T, k]   softmax, top-k, normalize
//                                                          (kernels/moe_routing.h)
//   for each expert e, on the rows X_e = x[tokens that chose e] (in token order):
//     o_e = (silu(X_e Wg_e^T) * (X_e Wu_e^T)) Wd_e^T   [n_e, D]   Wg_e, Wu_e [F, D], Wd_e [D, F]
//   for each token t, in its rank order r = 0 .. k-1 (f32, no FMA):
//     a = w[t,0] * o[t,0];  a = a + w[t,r] * o[t,r];  y[t] = y[t] + a
//   where o[t,r] is the row expert ids[t,r] computed for token t.
//
// Orders (INVARIANCE.md R10): the router and every expert GEMM are the canonical matmul, whose
// element (m, n) is the canonical dot over K of row m of its input and row n of the weight: it
// does not depend on how many rows the expert received (n_e) or which. The silu and the products
// are elementwise. The combine sums in the token's rank order, never in the order experts were
// run or finished. So a token's output row depends on that token's x row and the weights only:
// never on T, on the other tokens, on expert loads, on the thread count or on the ISA path.
//
// Two orders exist only to show that the invariance tests can fail (negative controls, and the
// CPU fast mode of INVARIANCE.md R8):
//   MoeArgs::order = split_k_by_m: every GEMM splits K by its own M, so an expert's GEMM follows
//     its token count n_e (kernels/matmul.h);
//   MoeCombine::arrival_order: experts run in order of decreasing load (ties: lower id first), as
//     a scheduler that starts the busiest expert first would, and each token sums its k products
//     in the order its experts ran: a token's order then follows the other tokens' routes.
//
// Weights: the E experts of a layer are stacked: gate and up [E*F, D] (expert e is rows
// [e*F, (e+1)*F)), down [E*D, F] (expert e is rows [e*D, (e+1)*D)), in any matmul dtype
// (F32, BF16, Q8_0, Q4_0, Q4_1). The router is [E, D].
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/matmul.h"
#include "kernels/moe_routing.h"

namespace bx {

class ThreadPool;

enum class MoeCombine { rank_order, arrival_order };

// A weight matrix as matmul reads it: rows of K elements, row stride in elements.
struct MoeMatrix {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int64_t rows = 0;
  int64_t stride = 0;
};

struct MoeArgs {
  const float* x = nullptr;  // [T, D], row stride x_stride: the normed residual
  int64_t x_stride = 0;
  float* y = nullptr;  // [T, D], row stride y_stride: the residual, y += moe(x); must not overlap x
  int64_t y_stride = 0;
  int64_t T = 0, D = 0;
  int64_t F = 0;  // one expert's hidden width
  MoeRouting routing;
  MoeMatrix router;           // [E, D]
  MoeMatrix gate, up;         // [E*F, D]
  MoeMatrix down;             // [E*D, F]
  void* workspace = nullptr;  // moe_workspace_bytes(T, D, F, routing) bytes, 64-byte aligned
  ReductionOrder order = ReductionOrder::canonical;
  MoeCombine combine = MoeCombine::rank_order;
};

// Bytes of workspace a call with these sizes needs (all of it is overwritten).
size_t moe_workspace_bytes(int64_t T, int64_t D, int64_t F, const MoeRouting& routing);

// The layer on the active ISA, GEMMs threaded over their output columns.
void moe(const MoeArgs& args, ThreadPool& pool);
// Scalar reference: the same steps through matmul_reference and plain loops (the same bits).
void moe_reference(const MoeArgs& args);

}  // namespace bx
