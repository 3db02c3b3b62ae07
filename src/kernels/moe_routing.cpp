#include "kernels/moe_routing.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "kernels/lanes.h"
#include "kernels/math.h"
#include "kernels/rows.h"

namespace bx {
namespace {

// a ranks above b: larger, or equal with the lower id; a NaN ranks below every number.
bool ranks_above(float a, int32_t a_id, float b, int32_t b_id) {
  if (std::isnan(b)) return !std::isnan(a) || a_id < b_id;
  if (std::isnan(a)) return false;
  return a > b || (a == b && a_id < b_id);
}

}  // namespace

void route_tokens(const float* logits, int64_t logits_stride, int64_t T, const MoeRouting& routing,
                  int32_t* ids, float* weights) {
  const int E = routing.n_experts, k = routing.top_k;
  BX_CHECK(E >= 1 && E <= kMaxExperts && k >= 1 && k <= E,
           "moe routing: top-" + std::to_string(k) + " of " + std::to_string(E) +
               " experts: expected 1 <= k <= experts <= " + std::to_string(kMaxExperts));
  float p[kMaxExperts];
  bool taken[kMaxExperts];
  for (int64_t t = 0; t < T; ++t) {
    const float* l = logits + t * logits_stride;
    const float mx = row_max(l, E);
    for (int i = 0; i < E; ++i) p[i] = exp_f32(l[i] - mx);
    const float s = lanes::sum_reference(p, E);
    for (int i = 0; i < E; ++i) {
      p[i] = p[i] / s;
      taken[i] = false;
    }
    int32_t* id = ids + t * k;
    float* w = weights + t * k;
    // k scans of E: the scan order decides nothing (ranks_above is a strict total order).
    for (int r = 0; r < k; ++r) {
      int32_t best = -1;
      for (int32_t i = 0; i < E; ++i) {
        if (!taken[i] && (best < 0 || ranks_above(p[i], i, p[best], best))) best = i;
      }
      taken[best] = true;
      id[r] = best;
      w[r] = p[best];
    }
    if (routing.normalize) {
      float n = w[0];
      for (int r = 1; r < k; ++r) n = n + w[r];
      for (int r = 0; r < k; ++r) w[r] = w[r] / n;
    }
  }
}

void group_by_expert(const int32_t* ids, int64_t T, int top_k, int n_experts, int64_t* offsets,
                     int64_t* slots) {
  const int64_t n = T * top_k;
  for (int e = 0; e <= n_experts; ++e) offsets[e] = 0;
  for (int64_t s = 0; s < n; ++s) {
    BX_CHECK(ids[s] >= 0 && ids[s] < n_experts, "moe grouping: expert id " +
                                                    std::to_string(ids[s]) + " outside [0, " +
                                                    std::to_string(n_experts) + ")");
    ++offsets[ids[s] + 1];
  }
  for (int e = 0; e < n_experts; ++e) offsets[e + 1] += offsets[e];
  // offsets[e] serves as expert e's cursor (so it ends at e's end), then is shifted back.
  // Slots are visited in increasing s = t * k + r, so each expert's list is in increasing t.
  for (int64_t s = 0; s < n; ++s) slots[offsets[ids[s]]++] = s;
  for (int e = n_experts; e > 0; --e) offsets[e] = offsets[e - 1];
  offsets[0] = 0;
}

}  // namespace bx
