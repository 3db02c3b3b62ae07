// Token sampling: the steps are numbered as in sampler.h, which states the contract.
#include "sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "core/error.h"
#include "kernels/lanes.h"
#include "kernels/math.h"
#include "kernels/rows.h"
#include "sampling/philox.h"

namespace bx {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// First sorted prefix to select when a walk runs past the sorted part, and its growth factor:
// a few O(V) selection rounds at most, and usually one small one.
constexpr size_t kFirstPrefix = 64;
constexpr size_t kPrefixGrowth = 8;
// Selections of at most this many ids out of kHeapSelectRatio times as many use a heap.
constexpr size_t kHeapSelectMax = 4096;
constexpr size_t kHeapSelectRatio = 16;

// Sort key of an id: z descending, then id ascending, as one unsigned integer compared with <.
// High word: the float's bits mapped so that a larger z gives a smaller word (z has no NaN, and
// -0 was folded into +0 so the two tie). Low word: the id.
uint64_t sort_key(float z, size_t id) {
  const uint32_t bits = std::bit_cast<uint32_t>(z);
  const uint32_t ascending = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
  return (static_cast<uint64_t>(~ascending) << 32) | static_cast<uint64_t>(id);
}

int32_t id_of(uint64_t key) {
  return static_cast<int32_t>(key & 0xFFFFFFFFu);
}

std::string show(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

// Step 4: w = exp_f32(z - z_max); when z_max = +inf, the +inf ids weigh 1 and the rest 0.
float weight(float z, float z_max) {
  if (z_max == kInf) return z == kInf ? 1.0f : 0.0f;
  return exp_f32(z - z_max);
}

int32_t greedy(std::span<const float> logits) {
  return static_cast<int32_t>(argmax(logits.data(), static_cast<int64_t>(logits.size())));
}

}  // namespace

void validate(const SamplingParams& params) {
  // Plain ifs, not bx::check: the message is built only on failure, so a valid call allocates
  // nothing.
  if (!(std::isfinite(params.temperature) && params.temperature >= 0.0f)) {
    throw Error("sampling: temperature = " + show(params.temperature) +
                " is out of range; expected a finite value >= 0 (0 = greedy)");
  }
  if (params.top_k < 0) {
    throw Error("sampling: top_k = " + std::to_string(params.top_k) +
                " is out of range; expected an integer >= 0 (0 = off)");
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    throw Error("sampling: top_p = " + show(params.top_p) +
                " is out of range; expected a value in (0, 1] (1 = off)");
  }
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) {
    throw Error("sampling: min_p = " + show(params.min_p) +
                " is out of range; expected a value in [0, 1] (0 = off)");
  }
}

void Sampler::sort_prefix(size_t n) {
  n = std::min(n, order_.size());
  if (n <= sorted_) return;
  // The keys are distinct and totally ordered, so "the m smallest of the rest" is one set and
  // any selection method finds the same one.
  const auto first = order_.begin() + static_cast<std::ptrdiff_t>(sorted_);
  const auto mid = order_.begin() + static_cast<std::ptrdiff_t>(n);
  const auto last = order_.end();
  const size_t m = n - sorted_;
  const size_t rest = order_.size() - sorted_;
  if (m <= kHeapSelectMax && rest >= kHeapSelectRatio * m) {
    // Few out of many (top-k, the first prefix of a walk): a max-heap of the m best so far;
    // most keys cost one compare against its top. Swaps only, so order_ stays a permutation.
    std::make_heap(first, mid);
    for (auto it = mid; it != last; ++it) {
      if (*it < *first) {
        std::pop_heap(first, mid);
        std::iter_swap(mid - 1, it);
        std::push_heap(first, mid);
      }
    }
    std::sort_heap(first, mid);
  } else {
    if (mid != last) std::nth_element(first, mid, last);
    std::sort(first, mid);
  }
  sorted_ = n;
}

Sampler::Choice Sampler::sample(std::span<const float> logits, std::span<const float> logprobs,
                                const SamplingParams& params, uint64_t token_index) {
  validate(params);
  const size_t vocab = logits.size();
  if (vocab == 0 || vocab > static_cast<size_t>(std::numeric_limits<int32_t>::max()) ||
      logprobs.size() != vocab) {
    throw Error("sampling: logits has " + std::to_string(vocab) + " entries and logprobs " +
                std::to_string(logprobs.size()) + "; expected the same length, in [1, 2^31)");
  }
  const auto choose = [&](int32_t id) { return Choice{id, logprobs[static_cast<size_t>(id)]}; };
  if (params.temperature == 0.0f) return choose(greedy(logits));

  // Grow the scratch once; later calls of the same or a smaller vocabulary allocate nothing.
  if (z_.size() < vocab) {
    z_.resize(vocab);
    weights_.resize(vocab);
    order_.reserve(vocab);
  }

  // 1. z = logits / temperature, NaN -> -inf.
  float z_max = -kInf;
  for (size_t i = 0; i < vocab; ++i) {
    // + 0.0f folds -0 into +0, so that the two tie in the sorted order as they do under ==.
    const float z = std::isnan(logits[i]) ? -kInf : logits[i] / params.temperature + 0.0f;
    z_[i] = z;
    z_max = std::max(z_max, z);
  }
  if (z_max == -kInf) return choose(greedy(logits));

  // 2. Candidates: the ids with z > -inf, or with z = +inf when there are any. Pushed in id
  // order; in the +inf case they all tie, so that is already the sorted order.
  order_.clear();
  sorted_ = 0;
  for (size_t i = 0; i < vocab; ++i) {
    const bool candidate = z_max == kInf ? z_[i] == kInf : z_[i] > -kInf;
    if (candidate) order_.push_back(sort_key(z_[i], i));
  }
  if (z_max == kInf) sorted_ = order_.size();

  // 3. top-k: select the first top_k of the sorted order; drop the rest.
  const size_t top_k = static_cast<size_t>(params.top_k);
  if (top_k > 0 && top_k < order_.size()) {
    sort_prefix(top_k);
    order_.resize(top_k);
  }

  // 4. Weights for the candidates, +0 elsewhere. Ids whose weight underflows to 0 can never be
  // chosen and change no sum, so they leave the candidate list (the sorted prefix stays sorted).
  std::fill(weights_.begin(), weights_.begin() + static_cast<std::ptrdiff_t>(vocab), 0.0f);
  for (const uint64_t key : order_) {
    const size_t i = static_cast<size_t>(id_of(key));
    weights_[i] = weight(z_[i], z_max);
  }
  const auto drop_zero_weights = [this] {
    size_t kept = 0;
    size_t kept_sorted = 0;
    for (size_t j = 0; j < order_.size(); ++j) {
      if (weights_[static_cast<size_t>(id_of(order_[j]))] > 0.0f) {
        if (j < sorted_) ++kept_sorted;
        order_[kept++] = order_[j];
      }
    }
    order_.resize(kept);
    sorted_ = kept_sorted;
  };
  drop_zero_weights();
  if (order_.empty()) return choose(greedy(logits));  // only if exp_f32(0) were 0

  // The j-th id of the sorted order, selecting more of it when a walk gets there.
  const auto sorted_at = [this](size_t j) {
    if (j >= sorted_) {
      const size_t next = std::max(kFirstPrefix, sorted_ * kPrefixGrowth);
      sort_prefix(next >= order_.size() / 2 ? order_.size() : next);
    }
    return id_of(order_[j]);
  };

  // 5. Total over the candidates: canonical sum in id order.
  const auto total_weight = [&] {
    return lanes::sum_reference(weights_.data(), static_cast<int64_t>(vocab));
  };
  float total = total_weight();
  bool shrunk = false;

  // 6. top-p: the shortest sorted prefix whose running sum reaches top_p * total.
  if (params.top_p < 1.0f) {
    const float target = params.top_p * total;
    float running = 0.0f;
    size_t cut = order_.size();
    for (size_t j = 0; j < order_.size(); ++j) {
      running = running + weights_[static_cast<size_t>(sorted_at(j))];
      if (running >= target) {
        cut = j + 1;
        break;
      }
    }
    for (size_t j = cut; j < order_.size(); ++j) {
      weights_[static_cast<size_t>(id_of(order_[j]))] = 0.0f;
    }
    shrunk = cut < order_.size();
    order_.resize(cut);
    sorted_ = std::min(sorted_, cut);
  }

  // 7. min-p: keep w >= min_p * (weight of the first sorted id, the largest).
  if (params.min_p > 0.0f) {
    const float floor_w = params.min_p * weights_[static_cast<size_t>(sorted_at(0))];
    for (const uint64_t key : order_) {
      float& w = weights_[static_cast<size_t>(id_of(key))];
      if (w < floor_w) {
        w = 0.0f;
        shrunk = true;
      }
    }
    drop_zero_weights();
  }
  if (shrunk) total = total_weight();

  // 8. One draw keyed by (seed, token_index); the first sorted id whose running sum exceeds
  // u * total. Rounding can leave the running sum short of it: then the last id walked.
  const float threshold = philox_uniform(params.seed, token_index) * total;
  float running = 0.0f;
  int32_t chosen = id_of(order_.front());
  for (size_t j = 0; j < order_.size(); ++j) {
    chosen = sorted_at(j);
    running = running + weights_[static_cast<size_t>(chosen)];
    if (running > threshold) break;
  }
  return choose(chosen);
}

}  // namespace bx
