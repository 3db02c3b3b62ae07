// Mixture-of-Experts routing: which experts a token goes to, with what weights, and the tokens
// each expert receives (INVARIANCE.md R10).
//
// Router (one token, logits l[E] = x W_router^T from the invariant matmul):
//   mx   = row_max(l)                                    (kernels/rows.h)
//   e[i] = exp_f32(l[i] - mx)                            (kernels/math.h)
//   s    = canonical sum of e over E                     (kernels/lanes.h: sum_reference)
//   p[i] = e[i] / s                                      the softmax in f32
//   top-k: rank r = 0 .. k-1 takes the largest p[i] not yet taken, ties to the lowest expert id
//          (a NaN p ranks below every number, so a token still gets k distinct experts)
//   normalize (norm_topk_prob, Mixtral): n = ((p[r0] + p[r1]) + p[r2]) + ... in rank order,
//          w[r] = p[r] / n;   else w[r] = p[r]
// Each token's result depends on its own logits and E, k, normalize only: never on the batch.
//
// Grouping: the (token, rank) slots that chose expert e, in increasing token order (a token
// chooses an expert at most once). Which rows an expert receives follows the batch; what it
// computes for one row must not (the GEMM's row independence, R3).
#pragma once

#include <cstdint>

namespace bx {

// The most experts a router may have (the routing keeps a row of E floats on the stack).
inline constexpr int kMaxExperts = 512;

struct MoeRouting {
  int n_experts = 0;       // E
  int top_k = 0;           // k, 1 <= k <= E
  bool normalize = false;  // divide the top-k weights by their sum
};

// For each of T tokens: ids[t*k + r] (the expert of rank r) and weights[t*k + r], from the
// router logits [T, E] (row stride logits_stride). Throws bx::Error unless
// 1 <= k <= E <= kMaxExperts.
void route_tokens(const float* logits, int64_t logits_stride, int64_t T, const MoeRouting& routing,
                  int32_t* ids, float* weights);

// The slots of each expert, by a counting sort over ids [T * k]:
//   offsets[e] .. offsets[e + 1] - 1 index into slots, offsets [E + 1], offsets[E] = T * k;
//   slots[offsets[e] + j] = t * k + r for the j-th token t (in increasing t) that chose e at rank
//   r.
void group_by_expert(const int32_t* ids, int64_t T, int top_k, int n_experts, int64_t* offsets,
                     int64_t* slots);

}  // namespace bx
