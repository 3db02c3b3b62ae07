// Choosing the next token from one row of logits (INVARIANCE.md R6).
//
// The choice is a pure function of (logits, params, token_index): it never depends on the batch
// slot, the step number, other rows, or earlier calls. Every step below is defined so that any
// correct implementation gives the same bits.
//
// Greedy (temperature == 0): argmax of the logits, ties to the lowest id, NaNs skipped
// (bx::argmax, kernels/rows.h); id 0 if every logit is NaN.
//
// Otherwise, over a vocabulary of V ids:
//  1. z[i] = logits[i] / temperature; a NaN logit counts as z = -inf.
//     If every z is -inf (or NaN) there is nothing to draw from: the greedy answer is returned.
//  2. Sorted order: ids by z descending, ties by id ascending. This is a total order, so any
//     correct sort or partial selection gives the same list (-0 and +0 tie, as under ==).
//     Ids with z = -inf are dropped.
//  3. top-k (top_k > 0): keep the first top_k ids of the sorted order (all of them if fewer).
//  4. Weights w[i] = exp_f32(z[i] - z_max) (kernels/math.h), z_max = the largest z, so the
//     first id weighs exactly exp_f32(0). If z_max = +inf (a logit of +inf, or an overflow of
//     logits / temperature), the ids with z = +inf weigh 1 and every other id 0.
//     Weights that underflow to 0 are never chosen and change no sum.
//  5. Totals: S(set) = the canonical sum (kernels/lanes.h, 16 lanes, fixed tree) over all V ids
//     in id order of w[i] for ids in the set and +0 for the rest. Being in id order, a total
//     needs no sort; it depends only on the set.
//  6. top-p (top_p < 1): walk the kept ids in sorted order with a running sum c (left to right,
//     one float add per id); keep the shortest prefix with c >= top_p * S(kept). If the walk
//     never gets there (rounding), keep all.
//  7. min-p (min_p > 0): keep the ids with w[i] >= min_p * w[first kept id], the largest weight.
//     min_p = 1 keeps the maximum and the ids tied with it.
//  8. Draw: u = philox_uniform(seed, token_index) in [0, 1), threshold t = u * S(kept). Walk the
//     kept ids in sorted order with a running sum c as in 6 and choose the first id with c > t.
//     If rounding leaves c <= t at the end, choose the last kept id of positive weight.
//
// The reported logprob is logprobs[id], the log_softmax of the unmodified logits at the chosen
// id (as vLLM does by default), not the log of the truncated, tempered distribution the id was
// drawn from. Teacher-forced scoring of the same sequence sees only the logits, never the
// sampling parameters, so only this definition lets decoding and scoring report the same number
// (INVARIANCE.md promise 3); and a greedy or sampled choice of the same id reports the same value.
//
// Cost: O(V) passes for z, the weights and the totals (the V calls of exp_f32 dominate when no
// top-k is set), plus selection of only as much of the sorted order as a walk reaches: a heap
// for top-k and for the first prefix of a walk, then growing prefixes (nth_element + sort). A
// full O(V log V) sort happens only when a walk covers most of the vocabulary (a flat
// distribution with top_p near 1). No allocation once the scratch has grown to the vocabulary.
// A Sampler holds scratch only, no state that affects results; use one per thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampling/philox.h"  // philox_uniform

namespace bx {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy; finite, >= 0
  int32_t top_k = 0;         // 0 = off; >= 0
  float top_p = 1.0f;        // (0, 1]; 1 = off
  float min_p = 0.0f;        // [0, 1]; 0 = off
  uint64_t seed = 0;
};

// Throws bx::Error naming the field, its value and the allowed range.
void validate(const SamplingParams& params);

class Sampler {
 public:
  struct Choice {
    int32_t id;
    float logprob;  // logprobs[id]
  };

  // logits and logprobs are one row of length V (1 <= V < 2^31); logprobs = log_softmax(logits).
  // token_index is the index of the token being chosen within its sequence (prompt included),
  // the same index whatever the batch or step. Validates params; throws bx::Error on bad input.
  Choice sample(std::span<const float> logits, std::span<const float> logprobs,
                const SamplingParams& params, uint64_t token_index);

 private:
  // Puts order_[0, n) into sorted order; order_[n, size) keeps the rest, unsorted. Only grows
  // the sorted prefix.
  void sort_prefix(size_t n);

  // Scratch, sized to V on first use and reused: no allocation per call afterwards.
  std::vector<float> z_;         // [V] logits / temperature, NaN -> -inf
  std::vector<float> weights_;   // [V] w[i] for kept ids, +0 for the rest
  std::vector<uint64_t> order_;  // candidates as sort keys (z descending, id ascending, one
                                 // integer compare; id in the low word): sorted prefix, rest
  size_t sorted_ = 0;            // order_[0, sorted_) is in final sorted order
};

}  // namespace bx
