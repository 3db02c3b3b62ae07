// Tests for token sampling (src/sampling/sampler.h, INVARIANCE.md R6):
//  - Philox4x32-10 against Random123's known-answer vectors; philox_uniform's layout and range;
//  - the fast sampler against a naive reference that fully sorts (bitwise, vocab up to 152k);
//  - R6 invariance: a request's tokens do not depend on other requests, call order, or the
//    Sampler object (memcmp), with a slot-keyed negative control that does differ;
//  - greedy, top-k, top-p, min-p, temperature, NaN and inf semantics;
//  - sampled frequencies against softmax probabilities (chi-square, fixed seeds);
//  - validate() messages, and no allocation per call after warm-up.
#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/lanes.h"
#include "kernels/math.h"
#include "sampling/philox.h"

// ---- Allocation counter: every operator new in this test binary goes through here. ----
// Not inlined, so the compiler does not pair the malloc in one with the free in another.
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

[[gnu::noinline]] void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](size_t size) {
  return ::operator new(size);
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, size_t) noexcept {
  std::free(p);
}

namespace {

using bx::PhiloxCounter;
using bx::PhiloxKey;
using bx::Sampler;
using bx::SamplingParams;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- Deterministic test data ----

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) from a hash of (a, b).
double hash_unit(uint64_t a, uint64_t b) {
  return static_cast<double>(splitmix64(a * 0x100000001B3ull ^ splitmix64(b)) >> 11) * 0x1p-53;
}

// A row of logits that depends only on (stream, token_index): roughly normal, scale `spread`,
// with a few peaks so the distribution has a head and a long tail like a language model's.
std::vector<float> make_logits(uint64_t stream, uint64_t token_index, size_t vocab, double spread) {
  std::vector<float> row(vocab);
  for (size_t i = 0; i < vocab; ++i) {
    const uint64_t key = stream * 1000003ull + token_index;
    const double g =
        (hash_unit(key, 4 * i) + hash_unit(key, 4 * i + 1) + hash_unit(key, 4 * i + 2) - 1.5) * 2.0;
    double v = spread * g;
    if (hash_unit(key, 4 * i + 3) < 0.002) v += 4.0 * spread;
    row[i] = static_cast<float>(v);
  }
  return row;
}

// Any row works as logprobs for these tests; distinct values show which id was read.
std::vector<float> make_logprobs(size_t vocab) {
  std::vector<float> lp(vocab);
  for (size_t i = 0; i < vocab; ++i) lp[i] = -0.001f * static_cast<float>(i + 1);
  return lp;
}

// Probabilities of softmax(logits / temperature) in double.
std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  double mx = -INFINITY;
  for (float l : logits) mx = std::max(mx, static_cast<double>(l) / temperature);
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = std::exp(static_cast<double>(logits[i]) / temperature - mx);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  return p;
}

// ---- A naive reference sampler: the steps of sampler.h, with a full sort. ----

int32_t reference_greedy(const std::vector<float>& logits) {
  int32_t best = 0;
  bool found = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (!found || logits[i] > logits[static_cast<size_t>(best)]) {
      best = static_cast<int32_t>(i);
      found = true;
    }
  }
  return best;
}

int32_t reference_sample(const std::vector<float>& logits, const SamplingParams& params,
                         uint64_t token_index) {
  if (params.temperature == 0.0f) return reference_greedy(logits);
  const size_t vocab = logits.size();
  std::vector<float> z(vocab);
  float z_max = -kInf;
  for (size_t i = 0; i < vocab; ++i) {
    z[i] = std::isnan(logits[i]) ? -kInf : logits[i] / params.temperature;
    z_max = std::max(z_max, z[i]);
  }
  if (z_max == -kInf) return reference_greedy(logits);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < vocab; ++i) {
    if (z_max == kInf ? z[i] == kInf : z[i] > -kInf) ids.push_back(static_cast<int32_t>(i));
  }
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    const float za = z[static_cast<size_t>(a)];
    const float zb = z[static_cast<size_t>(b)];
    return za > zb || (za == zb && a < b);
  });
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < ids.size()) {
    ids.resize(static_cast<size_t>(params.top_k));
  }
  // Zero weights stay in the list here: the contract says they change nothing.
  std::vector<float> w(vocab, 0.0f);
  for (int32_t id : ids) {
    const float zi = z[static_cast<size_t>(id)];
    w[static_cast<size_t>(id)] =
        z_max == kInf ? (zi == kInf ? 1.0f : 0.0f) : bx::exp_f32(zi - z_max);
  }
  const auto total = [&] {
    return bx::lanes::sum_reference(w.data(), static_cast<int64_t>(vocab));
  };
  if (params.top_p < 1.0f) {
    const float target = params.top_p * total();
    float running = 0.0f;
    size_t cut = ids.size();
    for (size_t j = 0; j < ids.size(); ++j) {
      running = running + w[static_cast<size_t>(ids[j])];
      if (running >= target) {
        cut = j + 1;
        break;
      }
    }
    for (size_t j = cut; j < ids.size(); ++j) w[static_cast<size_t>(ids[j])] = 0.0f;
    ids.resize(cut);
  }
  if (params.min_p > 0.0f) {
    const float floor_w = params.min_p * w[static_cast<size_t>(ids[0])];
    for (int32_t id : ids) {
      if (w[static_cast<size_t>(id)] < floor_w) w[static_cast<size_t>(id)] = 0.0f;
    }
  }
  const float threshold = bx::philox_uniform(params.seed, token_index) * total();
  float running = 0.0f;
  int32_t last_positive = ids[0];
  for (int32_t id : ids) {
    const float wi = w[static_cast<size_t>(id)];
    running = running + wi;
    if (wi > 0.0f) last_positive = id;
    if (running > threshold) return id;
  }
  return last_positive;
}

// Chi-square statistic of observed counts against expected probabilities.
double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& p) {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  double chi2 = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double e = p[i] * static_cast<double>(n);
    if (e == 0.0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " has probability 0 but was drawn";
      continue;
    }
    const double d = static_cast<double>(counts[i]) - e;
    chi2 += d * d / e;
  }
  return chi2;
}

// Counts of each id over token indices [0, draws).
std::vector<int64_t> histogram(const std::vector<float>& logits, const SamplingParams& params,
                               int64_t draws) {
  Sampler sampler;
  const std::vector<float> lp = make_logprobs(logits.size());
  std::vector<int64_t> counts(logits.size(), 0);
  for (int64_t t = 0; t < draws; ++t) {
    ++counts[static_cast<size_t>(sampler.sample(logits, lp, params, static_cast<uint64_t>(t)).id)];
  }
  return counts;
}

SamplingParams with(float temperature, int32_t top_k, float top_p, float min_p, uint64_t seed) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.seed = seed;
  return p;
}

// ---- Philox ----

TEST(Philox, RandomKnownAnswerVectors) {
  // Random123 tests/kat_vectors, "philox4x32 10" lines: counter[4] key[2] -> output[4].
  struct Kat {
    PhiloxCounter counter;
    PhiloxKey key;
    PhiloxCounter expected;
  };
  const Kat kats[] = {
      {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u},
       {0x00000000u, 0x00000000u},
       {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& kat : kats) {
    EXPECT_EQ(bx::philox4x32_10(kat.counter, kat.key), kat.expected);
  }
}

TEST(Philox, UniformUsesTokenIndexAsCounterAndSeedAsKey) {
  const uint64_t seeds[] = {0, 1, 0xDEADBEEFull, 0x123456789ABCDEF0ull, ~0ull};
  const uint64_t indices[] = {0, 1, 7, 0xFFFFFFFFull, 0x100000000ull, 0xFEDCBA9876543210ull};
  for (uint64_t seed : seeds) {
    for (uint64_t t : indices) {
      const PhiloxCounter out =
          bx::philox4x32_10({static_cast<uint32_t>(t), static_cast<uint32_t>(t >> 32), 0u, 0u},
                            {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
      const float expected = static_cast<float>(out[0] >> 8) / 16777216.0f;
      EXPECT_EQ(bx::philox_uniform(seed, t), expected) << seed << " " << t;
    }
  }
  // The high words matter: token index 2^32 is not token index 0, seed 2^32 is not seed 0.
  EXPECT_NE(bx::philox_uniform(0, 0x100000000ull), bx::philox_uniform(0, 0));
  EXPECT_NE(bx::philox_uniform(0x100000000ull, 0), bx::philox_uniform(0, 0));
}

TEST(Philox, UniformInRangeAndRoughlyUniform) {
  constexpr int kBins = 20;
  constexpr int kDraws = 10000;
  // Along token indices for one seed, and along seeds for one token index.
  for (int axis = 0; axis < 2; ++axis) {
    std::vector<int64_t> counts(kBins, 0);
    for (int i = 0; i < kDraws; ++i) {
      const uint64_t k = static_cast<uint64_t>(i);
      const float u = axis == 0 ? bx::philox_uniform(42, k) : bx::philox_uniform(k, 42);
      ASSERT_GE(u, 0.0f);
      ASSERT_LT(u, 1.0f);
      ++counts[static_cast<size_t>(u * kBins)];
    }
    // 19 degrees of freedom: P(chi2 > 50) is about 1e-4. Deterministic seeds, so not flaky.
    const double chi2 = chi_square(counts, std::vector<double>(kBins, 1.0 / kBins));
    EXPECT_LT(chi2, 50.0) << "axis " << axis;
  }
}

TEST(Philox, DifferentIndexOrSeedChangesTheDraw) {
  int same_index = 0;
  int same_seed = 0;
  for (uint64_t t = 0; t < 1000; ++t) {
    same_index += bx::philox_uniform(5, t) == bx::philox_uniform(5, t + 1);
    same_seed += bx::philox_uniform(5, t) == bx::philox_uniform(6, t);
  }
  // 24-bit draws: a collision has probability 2^-24 per pair.
  EXPECT_LE(same_index, 1);
  EXPECT_LE(same_seed, 1);
}

// ---- The fast sampler against the reference ----

TEST(Sampler, MatchesNaiveReferenceBitwise) {
  Sampler sampler;
  const SamplingParams param_sets[] = {
      with(1.0f, 0, 1.0f, 0.0f, 1),      with(0.7f, 0, 0.9f, 0.0f, 2),
      with(1.0f, 50, 1.0f, 0.0f, 3),     with(0.8f, 40, 0.95f, 0.05f, 4),
      with(1.3f, 0, 0.5f, 0.0f, 5),      with(1.0f, 0, 1.0f, 0.1f, 6),
      with(2.0f, 0, 0.999f, 0.0f, 7),    with(0.5f, 1000, 0.99f, 0.01f, 8),
      with(1.0f, 100000, 1.0f, 0.0f, 9), with(0.0f, 0, 1.0f, 0.0f, 10),
  };
  const size_t vocabs[] = {1, 2, 17, 1000, 152064};
  for (size_t vocab : vocabs) {
    const std::vector<float> lp = make_logprobs(vocab);
    const int rows = vocab > 10000 ? 2 : 8;
    for (int r = 0; r < rows; ++r) {
      // A peaked row and a flat one (the flat one makes the walks reach far into the order).
      const double spread = r % 2 == 0 ? 3.0 : 0.05;
      const std::vector<float> logits = make_logits(static_cast<uint64_t>(r), 0, vocab, spread);
      for (const SamplingParams& params : param_sets) {
        for (uint64_t t = 0; t < (vocab > 10000 ? 1u : 3u); ++t) {
          const uint64_t token_index = 100 * static_cast<uint64_t>(r) + t;
          const Sampler::Choice c = sampler.sample(logits, lp, params, token_index);
          ASSERT_EQ(c.id, reference_sample(logits, params, token_index))
              << "vocab " << vocab << " row " << r << " T " << params.temperature << " k "
              << params.top_k << " p " << params.top_p << " min_p " << params.min_p;
          ASSERT_EQ(std::memcmp(&c.logprob, &lp[static_cast<size_t>(c.id)], sizeof(float)), 0);
        }
      }
    }
  }
}

TEST(Sampler, MatchesReferenceOnRowsWithManyTies) {
  // Small-integer logits: many exact ties, resolved by id in both.
  Sampler sampler;
  for (uint64_t r = 0; r < 50; ++r) {
    std::vector<float> logits(300);
    for (size_t i = 0; i < logits.size(); ++i) {
      logits[i] = static_cast<float>(static_cast<int>(hash_unit(r, i) * 6.0)) - 3.0f;
    }
    const std::vector<float> lp = make_logprobs(logits.size());
    for (const SamplingParams& params :
         {with(1.0f, 0, 1.0f, 0.0f, r), with(1.0f, 7, 1.0f, 0.0f, r), with(1.0f, 0, 0.3f, 0.0f, r),
          with(0.25f, 0, 1.0f, 0.5f, r)}) {
      EXPECT_EQ(sampler.sample(logits, lp, params, r).id, reference_sample(logits, params, r));
    }
  }
}

// ---- R6 invariance ----

struct Request {
  uint64_t stream;  // which logits rows it sees
  size_t vocab;
  SamplingParams params;
};

std::vector<Request> requests() {
  return {
      {11, 1000, with(1.0f, 0, 1.0f, 0.0f, 1234)},
      {12, 5000, with(0.7f, 40, 0.9f, 0.0f, 1234)},  // same seed as the first: still its own rows
      {13, 64, with(1.5f, 0, 0.95f, 0.05f, 99)},
      {14, 152064, with(0.9f, 0, 0.9f, 0.0f, 7)},
      {15, 3000, with(0.0f, 0, 1.0f, 0.0f, 5)},
  };
}

constexpr uint64_t kTokens = 24;
constexpr uint64_t kPromptLength = 10;  // token indices start after the prompt

// The request's tokens, generated alone with a fresh Sampler.
std::vector<Sampler::Choice> run_alone(const Request& req) {
  Sampler sampler;
  const std::vector<float> lp = make_logprobs(req.vocab);
  std::vector<Sampler::Choice> out;
  for (uint64_t t = kPromptLength; t < kPromptLength + kTokens; ++t) {
    out.push_back(sampler.sample(make_logits(req.stream, t, req.vocab, 2.0), lp, req.params, t));
  }
  return out;
}

bool same_bits(const std::vector<Sampler::Choice>& a, const std::vector<Sampler::Choice>& b) {
  static_assert(sizeof(Sampler::Choice) == 8, "no padding, so memcmp compares the values");
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(Sampler::Choice)) == 0;
}

TEST(SamplerInvariance, BatchedEqualsAloneWhateverTheOrderAndSlot) {
  const std::vector<Request> reqs = requests();
  std::vector<std::vector<Sampler::Choice>> alone;
  for (const Request& r : reqs) alone.push_back(run_alone(r));

  // One shared Sampler serves every request: the requests arrive at different steps, take
  // shuffled batch slots each step, and unrelated calls are interleaved.
  for (uint64_t schedule = 0; schedule < 3; ++schedule) {
    Sampler shared;
    std::vector<std::vector<Sampler::Choice>> batched(reqs.size());
    std::vector<std::vector<float>> lps;
    for (const Request& r : reqs) lps.push_back(make_logprobs(r.vocab));
    for (uint64_t step = 0; step < kTokens + reqs.size(); ++step) {
      std::vector<size_t> slots(reqs.size());
      std::iota(slots.begin(), slots.end(), size_t{0});
      std::sort(slots.begin(), slots.end(), [&](size_t a, size_t b) {
        return splitmix64(schedule * 1000 + step * 10 + a) <
               splitmix64(schedule * 1000 + step * 10 + b);
      });
      for (size_t s : slots) {
        if (step < s) continue;  // request s arrives at step s
        const uint64_t generated = step - s;
        if (generated >= kTokens) continue;
        const Request& r = reqs[s];
        const uint64_t t = kPromptLength + generated;
        batched[s].push_back(
            shared.sample(make_logits(r.stream, t, r.vocab, 2.0), lps[s], r.params, t));
        // Noise: another sequence's call with a different vocabulary, params and index.
        const std::vector<float> noise = make_logits(999 + step, s, 77 + 13 * s, 1.0);
        shared.sample(noise, make_logprobs(noise.size()), with(1.1f, 3, 0.8f, 0.0f, step),
                      step * 31 + s);
      }
    }
    for (size_t s = 0; s < reqs.size(); ++s) {
      EXPECT_TRUE(same_bits(batched[s], alone[s])) << "schedule " << schedule << " request " << s;
    }
  }
}

TEST(SamplerInvariance, CallOrderAndFreshObjectsDoNotMatter) {
  const Request req = requests()[1];
  const std::vector<Sampler::Choice> alone = run_alone(req);
  const std::vector<float> lp = make_logprobs(req.vocab);
  // Token indices visited backwards, each with a fresh Sampler (as after a preemption and
  // recompute, or on another replica).
  std::vector<Sampler::Choice> backwards(kTokens);
  for (uint64_t k = kTokens; k-- > 0;) {
    Sampler fresh;
    const uint64_t t = kPromptLength + k;
    backwards[k] = fresh.sample(make_logits(req.stream, t, req.vocab, 2.0), lp, req.params, t);
  }
  EXPECT_TRUE(same_bits(backwards, alone));
}

TEST(SamplerInvariance, NegativeControlSlotKeyedGeneratorDiffers) {
  // A deliberately wrong generator keyed by (seed, batch slot, step) instead of (seed, token
  // index): the same request in another slot, arriving at another step, gets other tokens. This
  // shows the memcmp comparisons above can fail.
  const Request req = requests()[0];
  const std::vector<float> lp = make_logprobs(req.vocab);
  const auto run_in_slot = [&](uint64_t slot, uint64_t first_step) {
    Sampler sampler;
    std::vector<Sampler::Choice> out;
    for (uint64_t k = 0; k < kTokens; ++k) {
      const uint64_t t = kPromptLength + k;
      SamplingParams slot_keyed = req.params;
      slot_keyed.seed = req.params.seed ^ (slot << 40);  // the bug: the slot enters the key
      const uint64_t step = first_step + k;              // the bug: the step is the counter
      out.push_back(
          sampler.sample(make_logits(req.stream, t, req.vocab, 2.0), lp, slot_keyed, step));
    }
    return out;
  };
  const std::vector<Sampler::Choice> slot0 = run_in_slot(0, 0);
  EXPECT_TRUE(same_bits(slot0, run_in_slot(0, 0)));   // it is deterministic...
  EXPECT_FALSE(same_bits(slot0, run_in_slot(3, 0)));  // ...but depends on the slot
  EXPECT_FALSE(same_bits(slot0, run_in_slot(0, 5)));  // ...and on the step
  EXPECT_FALSE(same_bits(slot0, run_alone(req)));
}

TEST(SamplerInvariance, DifferentSeedOrTokenIndexChangesTheTokens) {
  // A flat distribution over 1000 ids: equal draws would be rare coincidences.
  const std::vector<float> logits(1000, 0.0f);
  const std::vector<float> lp = make_logprobs(logits.size());
  Sampler sampler;
  int same_index = 0;
  int same_seed = 0;
  for (uint64_t t = 0; t < 200; ++t) {
    const int32_t a = sampler.sample(logits, lp, with(1.0f, 0, 1.0f, 0.0f, 8), t).id;
    same_index += a == sampler.sample(logits, lp, with(1.0f, 0, 1.0f, 0.0f, 8), t + 1).id;
    same_seed += a == sampler.sample(logits, lp, with(1.0f, 0, 1.0f, 0.0f, 9), t).id;
  }
  EXPECT_LE(same_index, 5);  // about 0.2 expected
  EXPECT_LE(same_seed, 5);
}

// ---- Semantics ----

TEST(Sampler, GreedyTiesGoToTheLowestId) {
  Sampler sampler;
  const auto greedy = [&](const std::vector<float>& logits) {
    return sampler.sample(logits, make_logprobs(logits.size()), with(0.0f, 0, 1.0f, 0.0f, 0), 0);
  };
  EXPECT_EQ(greedy({1.0f, 3.0f, 3.0f, 2.0f}).id, 1);
  EXPECT_EQ(greedy({5.0f, 5.0f}).id, 0);
  EXPECT_EQ(greedy({kNaN, 2.0f, kNaN, 2.0f}).id, 1);
  EXPECT_EQ(greedy({-kInf, -kInf, 0.5f, kInf, kInf}).id, 3);
  EXPECT_EQ(greedy({kNaN, kNaN, kNaN}).id, 0);
  const Sampler::Choice c = greedy({0.0f, 0.0f, 9.0f});
  EXPECT_EQ(c.id, 2);
  EXPECT_EQ(c.logprob, make_logprobs(3)[2]);
}

TEST(Sampler, TopK1AndTinyTopPAreGreedy) {
  Sampler sampler;
  for (uint64_t r = 0; r < 200; ++r) {
    // Small integers (exact under temperature 1, so z ties exactly when the logits do).
    std::vector<float> logits(50);
    for (size_t i = 0; i < logits.size(); ++i) {
      logits[i] = static_cast<float>(static_cast<int>(hash_unit(r + 500, i) * 8.0));
    }
    if (r % 5 == 0) logits[r % 50] = kNaN;
    const std::vector<float> lp = make_logprobs(logits.size());
    const int32_t greedy = sampler.sample(logits, lp, with(0.0f, 0, 1.0f, 0.0f, r), r).id;
    EXPECT_EQ(greedy, reference_greedy(logits));
    EXPECT_EQ(sampler.sample(logits, lp, with(1.0f, 1, 1.0f, 0.0f, r), r).id, greedy);
    EXPECT_EQ(sampler.sample(logits, lp, with(1.0f, 0, 1e-6f, 0.0f, r), r).id, greedy);
    EXPECT_EQ(
        sampler
            .sample(logits, lp, with(1.0f, 0, std::numeric_limits<float>::denorm_min(), 0.0f, r), r)
            .id,
        greedy);
  }
}

TEST(Sampler, MinP1KeepsOnlyTheMaximumAndItsTies) {
  const std::vector<float> logits = {0.0f, 5.0f, 5.0f, 4.9f, 5.0f, kNaN, -kInf};
  const std::vector<int64_t> counts = histogram(logits, with(1.0f, 0, 1.0f, 1.0f, 77), 3000);
  EXPECT_EQ(counts[0] + counts[3] + counts[5] + counts[6], 0);
  for (size_t id : {1, 2, 4}) {
    EXPECT_GT(counts[id], 850) << id;  // 1000 expected each
    EXPECT_LT(counts[id], 1150) << id;
  }
}

TEST(Sampler, TruncationBreaksTiesByIdAndTopPIncludesTheBoundary) {
  // Four equal logits: weights 1, 1, 1, 1 (total 4), sorted order 0, 1, 2, 3.
  const std::vector<float> logits = {0.5f, 0.5f, 0.5f, 0.5f};
  // top-k 2 keeps the two lowest ids.
  std::vector<int64_t> counts = histogram(logits, with(1.0f, 2, 1.0f, 0.0f, 5), 2000);
  EXPECT_EQ(counts[2] + counts[3], 0);
  EXPECT_GT(counts[0], 850);
  EXPECT_GT(counts[1], 850);
  // top-p .5: the running sum reaches exactly .5 * 4 = 2 after two ids, which is enough (>=).
  counts = histogram(logits, with(1.0f, 0, 0.5f, 0.0f, 6), 2000);
  EXPECT_EQ(counts[2] + counts[3], 0);
  EXPECT_GT(counts[0], 850);
  EXPECT_GT(counts[1], 850);
}

TEST(Sampler, FrequenciesMatchSoftmax) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 3.0f, 1.5f, -0.5f};
  constexpr int64_t kDraws = 20000;
  // 7 degrees of freedom at most: P(chi2 > 35) is about 1e-5.
  for (float temperature : {0.5f, 1.0f, 2.0f}) {
    const std::vector<int64_t> counts =
        histogram(logits, with(temperature, 0, 1.0f, 0.0f, 2024), kDraws);
    EXPECT_LT(chi_square(counts, softmax(logits, temperature)), 35.0) << "T " << temperature;
  }
}

TEST(Sampler, TruncatedFrequenciesMatchRenormalizedSoftmax) {
  // At T = 1, by id: 5 (logit 3), 0 (2), 6 (1.5), 1 (1), 2 (.5), 3 (0), 7 (-.5), 4 (-1).
  // Ratios to the max e^(l - 3): 1, .368, .223, .135, .082, .050, .030, .018 (sum 1.906);
  // probabilities: .525, .193, .117, .071, .043, .026, .016, .010.
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 3.0f, 1.5f, -0.5f};
  const std::vector<double> p = softmax(logits, 1.0);
  const auto keep = [&](std::vector<size_t> ids) {
    std::vector<double> q(p.size(), 0.0);
    double sum = 0.0;
    for (size_t id : ids) sum += p[id];
    for (size_t id : ids) q[id] = p[id] / sum;
    return q;
  };
  constexpr int64_t kDraws = 20000;
  // 2 degrees of freedom at most: P(chi2 > 25) is about 4e-6.
  // top-k 3: ids 5, 0, 6.
  EXPECT_LT(chi_square(histogram(logits, with(1.0f, 3, 1.0f, 0.0f, 1), kDraws), keep({5, 0, 6})),
            25.0);
  // top-p .75: .525 + .193 = .718 < .75 <= .718 + .117, so ids 5, 0, 6.
  EXPECT_LT(chi_square(histogram(logits, with(1.0f, 0, 0.75f, 0.0f, 2), kDraws), keep({5, 0, 6})),
            25.0);
  // min-p .2: ratios .368 and .223 pass, .135 does not: ids 5, 0, 6.
  EXPECT_LT(chi_square(histogram(logits, with(1.0f, 0, 1.0f, 0.2f, 3), kDraws), keep({5, 0, 6})),
            25.0);
  // All three: top-k 4 keeps 5, 0, 6, 1 (renormalized .579, .213, .129, .078); top-p .9 of
  // those keeps 5, 0, 6 (.792 < .9 <= .921); min-p .3 then drops 6 (ratio .223): ids 5, 0.
  EXPECT_LT(chi_square(histogram(logits, with(1.0f, 4, 0.9f, 0.3f, 4), kDraws), keep({5, 0})),
            25.0);
}

TEST(Sampler, LowerTemperatureSharpens) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 3.0f, 1.5f, -0.5f};
  int64_t previous = 20001;
  for (float temperature : {0.25f, 0.5f, 1.0f, 2.0f, 4.0f}) {
    const int64_t top = histogram(logits, with(temperature, 0, 1.0f, 0.0f, 11), 20000)[5];
    EXPECT_LT(top, previous) << "T " << temperature;
    previous = top;
  }
  EXPECT_GT(previous, 20000 / 8);  // T = 4 is flatter but id 5 is still the likeliest
}

TEST(Sampler, NaNAndInfinities) {
  // NaN and -inf are never drawn.
  {
    const std::vector<float> logits = {kNaN, 1.0f, -kInf, 1.0f, kNaN, 0.0f, -kInf};
    const std::vector<int64_t> counts = histogram(logits, with(1.0f, 0, 1.0f, 0.0f, 3), 4000);
    EXPECT_EQ(counts[0] + counts[2] + counts[4] + counts[6], 0);
    EXPECT_GT(counts[1], 0);
    EXPECT_GT(counts[3], 0);
    EXPECT_GT(counts[5], 0);
  }
  // One +inf always wins; two +inf share the draws; nothing else is drawn.
  {
    const std::vector<float> logits = {1.0f, kInf, 100.0f, kNaN};
    const std::vector<int64_t> counts = histogram(logits, with(1.0f, 0, 1.0f, 0.0f, 3), 500);
    EXPECT_EQ(counts[1], 500);
  }
  {
    const std::vector<float> logits = {1.0f, kInf, 100.0f, kInf};
    const std::vector<int64_t> counts = histogram(logits, with(1.0f, 0, 1.0f, 0.0f, 3), 2000);
    EXPECT_EQ(counts[0] + counts[2], 0);
    EXPECT_GT(counts[1], 850);
    EXPECT_GT(counts[3], 850);
  }
  // Nothing to draw from: the greedy answer (all NaN -> 0; the lowest non-NaN -inf otherwise).
  Sampler sampler;
  const auto pick = [&](const std::vector<float>& logits) {
    return sampler.sample(logits, make_logprobs(logits.size()), with(1.0f, 5, 0.9f, 0.1f, 1), 3).id;
  };
  EXPECT_EQ(pick({kNaN, kNaN, kNaN}), 0);
  EXPECT_EQ(pick({-kInf, -kInf, -kInf}), 0);
  EXPECT_EQ(pick({kNaN, -kInf, kNaN, -kInf}), 1);
  // Weights that underflow: ids far below the max are never drawn.
  EXPECT_EQ(histogram({0.0f, -200.0f, -1000.0f}, with(1.0f, 0, 1.0f, 0.0f, 4), 500)[0], 500);
}

TEST(Sampler, ReportsTheUnmodifiedLogprob) {
  // Whatever the truncation or temperature, the logprob is logprobs[id], bit for bit.
  const std::vector<float> logits = make_logits(3, 3, 500, 2.0);
  std::vector<float> lp(logits.size());
  for (size_t i = 0; i < lp.size(); ++i) lp[i] = -static_cast<float>(hash_unit(7, i)) * 20.0f;
  Sampler sampler;
  for (uint64_t t = 0; t < 200; ++t) {
    const SamplingParams params = with(0.3f + 0.01f * static_cast<float>(t),
                                       static_cast<int32_t>(t % 5) * 10, 0.9f, 0.02f, t);
    const Sampler::Choice c = sampler.sample(logits, lp, params, t);
    EXPECT_EQ(std::memcmp(&c.logprob, &lp[static_cast<size_t>(c.id)], sizeof(float)), 0);
  }
}

TEST(Sampler, NoAllocationPerCallAfterWarmUp) {
  constexpr size_t kVocab = 152064;
  const std::vector<float> logits = make_logits(21, 0, kVocab, 3.0);
  const std::vector<float> small = make_logits(22, 0, 1000, 3.0);
  const std::vector<float> lp = make_logprobs(kVocab);
  const std::vector<float> small_lp = make_logprobs(small.size());
  const SamplingParams params[] = {with(1.0f, 0, 1.0f, 0.0f, 1), with(0.7f, 50, 0.9f, 0.05f, 2),
                                   with(1.2f, 0, 0.95f, 0.0f, 3), with(0.0f, 0, 1.0f, 0.0f, 4)};
  // The counter sees allocations (so a zero below means something).
  const int64_t probe = g_allocations.load();
  ::operator delete(::operator new(16));
  ASSERT_EQ(g_allocations.load() - probe, 1);

  Sampler sampler;
  sampler.sample(logits, lp, params[0], 0);  // warm-up: the scratch grows to the vocabulary
  const int64_t before = g_allocations.load();
  for (uint64_t t = 1; t < 20; ++t) {
    for (const SamplingParams& p : params) {
      sampler.sample(logits, lp, p, t);
      sampler.sample(small, small_lp, p, t);
    }
  }
  EXPECT_EQ(g_allocations.load() - before, 0);
}

TEST(Sampler, RejectsMismatchedRows) {
  Sampler sampler;
  const std::vector<float> two = {0.0f, 1.0f};
  const std::vector<float> three = {0.0f, 1.0f, 2.0f};
  EXPECT_THROW(sampler.sample(two, three, SamplingParams{}, 0), bx::Error);
  EXPECT_THROW(sampler.sample({}, {}, SamplingParams{}, 0), bx::Error);
  SamplingParams bad;
  bad.top_p = 0.0f;
  EXPECT_THROW(sampler.sample(two, two, bad, 0), bx::Error);
}

// ---- validate ----

std::string validate_message(const SamplingParams& params) {
  try {
    bx::validate(params);
  } catch (const bx::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Validate, AcceptsTheEdgesOfEachRange) {
  EXPECT_NO_THROW(bx::validate(with(0.0f, 0, 1.0f, 0.0f, 0)));
  EXPECT_NO_THROW(bx::validate(with(1e30f, 1 << 30, 1e-30f, 1.0f, ~0ull)));
  EXPECT_NO_THROW(bx::validate(SamplingParams{}));
}

TEST(Validate, NamesTheFieldTheValueAndTheRange) {
  struct Case {
    SamplingParams params;
    const char* field;
    const char* value;
    const char* range;
  };
  const Case cases[] = {
      {with(-1.0f, 0, 1.0f, 0.0f, 0), "temperature", "-1", ">= 0"},
      {with(kNaN, 0, 1.0f, 0.0f, 0), "temperature", "nan", ">= 0"},
      {with(kInf, 0, 1.0f, 0.0f, 0), "temperature", "inf", "finite"},
      {with(1.0f, -3, 1.0f, 0.0f, 0), "top_k", "-3", ">= 0"},
      {with(1.0f, 0, 0.0f, 0.0f, 0), "top_p", "0", "(0, 1]"},
      {with(1.0f, 0, 1.5f, 0.0f, 0), "top_p", "1.5", "(0, 1]"},
      {with(1.0f, 0, kNaN, 0.0f, 0), "top_p", "nan", "(0, 1]"},
      {with(1.0f, 0, 1.0f, -0.25f, 0), "min_p", "-0.25", "[0, 1]"},
      {with(1.0f, 0, 1.0f, 2.0f, 0), "min_p", "2", "[0, 1]"},
      {with(1.0f, 0, 1.0f, kNaN, 0), "min_p", "nan", "[0, 1]"},
  };
  for (const Case& c : cases) {
    const std::string message = validate_message(c.params);
    EXPECT_NE(message.find(std::string(c.field) + " = " + c.value), std::string::npos) << message;
    EXPECT_NE(message.find(c.range), std::string::npos) << message;
  }
}

}  // namespace
