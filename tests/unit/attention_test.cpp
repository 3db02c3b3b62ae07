// Tests of kernels/attention.h: kv_cache_write, attention, attention_reference.
//
//   T1 exact      zero keys give every score 0, so the output is the mean of the values, exact on
//                 small integers; one key scoring 200 above the rest gives exactly its value. On
//                 random inputs attention == attention_reference bit for bit (every shape, thread
//                 count and ISA), and a test-local generic version of the contract with canonical
//                 chunks equals it too.
//   T2 accurate   within a stated bound of a float64 softmax attention.
//   T3 invariant  the output of (sequence, position) is the same bits whatever the batch (ragged
//                 lengths 1..300, alone or together), the schedule (one prefill call, chunked
//                 prefill of 1, 7, 64 or 100 tokens, token-by-token decode, mixed), the KV block
//                 size (1, 16, 64), the block table order (shuffled), the thread count (1/2/3)
//                 and the ISA. Negative controls: chunks aligned to the start of the current
//                 prefill chunk, a single-pass softmax, chunks per KV block and a KV split by
//                 thread count each give different bits for some case.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "support/kernel_test_data.h"
#include "kernels/attention.h"
#include "kernels/lanes.h"
#include "kernels/math.h"

namespace bx {
namespace {

using test::pool;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

size_t sz(int64_t n) {
  return static_cast<size_t>(n);
}

// ---- test fixtures: sequences, a paged cache, a scheduler ----

struct Shape {
  int n_heads = 4;
  int n_kv_heads = 2;
  int head_dim = 32;
  int q_width() const { return n_heads * head_dim; }
  int kv_width() const { return n_kv_heads * head_dim; }
};

// One sequence's per-position inputs: q [len, n_heads * hd], k and v [len, n_kv_heads * hd].
struct Seq {
  int len = 0;
  std::vector<float> q, k, v;
};

Seq random_seq(const Shape& s, int len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> qd(-2.5f, 2.5f), kd(-1.0f, 1.0f), vd(-1.0f, 1.0f);
  Seq seq;
  seq.len = len;
  seq.q.resize(sz(int64_t{len} * s.q_width()));
  seq.k.resize(sz(int64_t{len} * s.kv_width()));
  seq.v.resize(sz(int64_t{len} * s.kv_width()));
  for (float& f : seq.q) f = qd(rng);
  for (float& f : seq.k) f = kd(rng);
  for (float& f : seq.v) f = vd(rng);
  return seq;
}

// A paged cache holding every sequence; unwritten slots hold NaN, so reading one shows.
struct Cache {
  std::vector<float> k, v;
  KvLayerView view;
  std::vector<std::vector<int32_t>> tables;  // per sequence
};

Cache make_cache(const Shape& s, const std::vector<Seq>& seqs, int block_size, uint32_t shuffle) {
  int64_t n_blocks = 3;  // a few spare blocks
  for (const Seq& q : seqs) n_blocks += (q.len + block_size - 1) / block_size;
  std::vector<int32_t> ids(sz(n_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  if (shuffle != 0) {
    std::mt19937 rng(shuffle);
    std::shuffle(ids.begin(), ids.end(), rng);
  }
  Cache c;
  const size_t cells = sz(n_blocks * block_size * s.kv_width());
  c.k.assign(cells, kNan);
  c.v.assign(cells, kNan);
  c.view = KvLayerView{c.k.data(), c.v.data(), n_blocks, block_size, s.n_kv_heads, s.head_dim};
  size_t next = 0;
  for (const Seq& q : seqs) {
    std::vector<int32_t> table;
    for (int b = 0; b < (q.len + block_size - 1) / block_size; ++b) table.push_back(ids[next++]);
    c.tables.push_back(table);
  }
  return c;
}

// An attention implementation; origins[t] is the first position of token t's sequence in this
// call (used only by the negative control that aligns chunks to it).
using AttnFn = std::function<void(const AttentionArgs&, const int32_t* origins)>;

AttnFn fast(int threads) {
  return [threads](const AttentionArgs& a, const int32_t*) { attention(a, pool(threads)); };
}
AttnFn reference() {
  return [](const AttentionArgs& a, const int32_t*) { attention_reference(a); };
}

struct RunConfig {
  int block_size = 16;
  uint32_t shuffle = 0;      // 0: blocks in order
  std::vector<int> chunk;    // per sequence tokens per step; 0 = the whole sequence at once
  bool together = true;      // all sequences in the same steps, or each sequence alone
  bool rotate_slots = true;  // change the order of the sequences in the batch every step
};

// Feeds the sequences through the schedule and returns each sequence's outputs
// [len, n_heads * hd]. A step batches the next chunk of every unfinished sequence (when
// `together`): k and v of the whole batch are written first, then attention runs on the batch.
std::vector<std::vector<float>> run(const Shape& s, const std::vector<Seq>& seqs,
                                    const RunConfig& cfg, const AttnFn& attn) {
  Cache cache = make_cache(s, seqs, cfg.block_size, cfg.shuffle);
  std::vector<std::vector<float>> out(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    out[i].assign(sz(int64_t{seqs[i].len} * s.q_width()), kNan);
  }
  std::vector<int> done(seqs.size(), 0);
  const int qpad = 3, kvpad = 5;  // padded batch rows
  const int q_stride = s.q_width() + qpad, kv_stride = s.kv_width() + kvpad;
  auto step = [&](const std::vector<size_t>& members, int step_index) {
    struct Seg {
      size_t seq;
      int first, count;
    };
    std::vector<Seg> segs;
    std::vector<size_t> order = members;
    if (cfg.rotate_slots && !order.empty()) {
      std::rotate(order.begin(), order.begin() + (step_index % static_cast<int>(order.size())),
                  order.end());
    }
    int64_t T = 0;
    for (size_t i : order) {
      if (done[i] >= seqs[i].len) continue;
      const int chunk = cfg.chunk.empty() || cfg.chunk[i] == 0 ? seqs[i].len : cfg.chunk[i];
      const int count = std::min(chunk, seqs[i].len - done[i]);
      segs.push_back({i, done[i], count});
      T += count;
    }
    if (T == 0) return false;
    std::vector<float> q(sz(T * q_stride), 0.0f), k(sz(T * kv_stride), 0.0f),
        v(sz(T * kv_stride), 0.0f), o(sz(T * q_stride), kNan);
    std::vector<int32_t> positions, origins;
    std::vector<const int32_t*> tables;
    int64_t t = 0;
    for (const Seg& g : segs) {
      const Seq& sq = seqs[g.seq];
      for (int p = g.first; p < g.first + g.count; ++p, ++t) {
        std::memcpy(&q[sz(t * q_stride)], &sq.q[sz(int64_t{p} * s.q_width())],
                    sz(s.q_width()) * sizeof(float));
        std::memcpy(&k[sz(t * kv_stride)], &sq.k[sz(int64_t{p} * s.kv_width())],
                    sz(s.kv_width()) * sizeof(float));
        std::memcpy(&v[sz(t * kv_stride)], &sq.v[sz(int64_t{p} * s.kv_width())],
                    sz(s.kv_width()) * sizeof(float));
        positions.push_back(p);
        origins.push_back(g.first);
        tables.push_back(cache.tables[g.seq].data());
      }
    }
    kv_cache_write(cache.view, k.data(), kv_stride, v.data(), kv_stride, positions.data(),
                   tables.data(), T);
    AttentionArgs a;
    a.q = q.data();
    a.q_stride = q_stride;
    a.out = o.data();
    a.out_stride = q_stride;
    a.positions = positions.data();
    a.block_tables = tables.data();
    a.T = T;
    a.n_heads = s.n_heads;
    a.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    a.kv = cache.view;
    attn(a, origins.data());
    t = 0;
    for (const Seg& g : segs) {
      for (int p = g.first; p < g.first + g.count; ++p, ++t) {
        std::memcpy(&out[g.seq][sz(int64_t{p} * s.q_width())], &o[sz(t * q_stride)],
                    sz(s.q_width()) * sizeof(float));
      }
      done[g.seq] += g.count;
    }
    return true;
  };
  if (cfg.together) {
    std::vector<size_t> all(seqs.size());
    std::iota(all.begin(), all.end(), 0);
    for (int i = 0; step(all, i); ++i) {
    }
  } else {
    for (size_t j = 0; j < seqs.size(); ++j) {
      for (int i = 0; step({j}, i); ++i) {
      }
    }
  }
  return out;
}

// Number of (sequence, position) rows whose bits differ between two runs.
int differing_rows(const Shape& s, const std::vector<std::vector<float>>& a,
                   const std::vector<std::vector<float>>& b) {
  int n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t r = 0; r * sz(s.q_width()) < a[i].size(); ++r) {
      n += std::memcmp(&a[i][r * sz(s.q_width())], &b[i][r * sz(s.q_width())],
                       sz(s.q_width()) * sizeof(float)) != 0;
    }
  }
  return n;
}

// ---- a test-local generic version of the contract, with pluggable chunk boundaries ----

// Chunk starts for token t at position p (ascending, the first one 0).
using ChunkStarts = std::function<std::vector<int64_t>(int64_t t, int64_t p)>;

void attention_generic(const AttentionArgs& args, const ChunkStarts& starts_of) {
  const KvLayerView& kv = args.kv;
  const int hd = kv.head_dim;
  const int group = args.n_heads / kv.n_kv_heads;
  auto slot = [&](const int32_t* bt, int64_t j) {
    return (int64_t{bt[j / kv.block_size]} * kv.block_size + j % kv.block_size) * kv.n_kv_heads *
           hd;
  };
  for (int64_t t = 0; t < args.T; ++t) {
    const int64_t p = args.positions[t];
    std::vector<int64_t> starts = starts_of(t, p);
    starts.push_back(p + 1);
    for (int h = 0; h < args.n_heads; ++h) {
      const float* q = args.q + t * args.q_stride + h * hd;
      const int64_t kvo = int64_t{h / group} * hd;
      float M = -INFINITY, L = 0.0f;
      std::vector<float> O(sz(hd), 0.0f);
      for (size_t c = 0; c + 1 < starts.size(); ++c) {
        std::vector<float> sc;
        float m_c = -INFINITY;
        for (int64_t j = starts[c]; j < starts[c + 1]; ++j) {
          sc.push_back(lanes::dot_reference(q, kv.k + slot(args.block_tables[t], j) + kvo, hd) *
                       args.scale);
          if (sc.back() > m_c) m_c = sc.back();
        }
        float l_c = 0.0f;
        std::vector<float> o_c(sz(hd), 0.0f);
        for (int64_t j = starts[c]; j < starts[c + 1]; ++j) {
          const float pj = exp_f32(sc[sz(j - starts[c])] - m_c);
          l_c = l_c + pj;
          const float* v = kv.v + slot(args.block_tables[t], j) + kvo;
          for (int d = 0; d < hd; ++d) o_c[sz(d)] = std::fma(pj, v[d], o_c[sz(d)]);
        }
        const float M_new = m_c > M ? m_c : M;
        const float a = exp_f32(M - M_new), b = exp_f32(m_c - M_new);
        L = L * a + l_c * b;
        for (int d = 0; d < hd; ++d) O[sz(d)] = O[sz(d)] * a + o_c[sz(d)] * b;
        M = M_new;
      }
      float* out = args.out + t * args.out_stride + h * hd;
      for (int d = 0; d < hd; ++d) out[d] = O[sz(d)] / L;
    }
  }
}

std::vector<int64_t> every(int64_t step, int64_t origin, int64_t p) {
  std::vector<int64_t> s = {0};
  for (int64_t b = origin % step; b <= p; b += step) {
    if (b > 0) s.push_back(b);
  }
  return s;
}

AttnFn generic_canonical() {
  return [](const AttentionArgs& a, const int32_t*) {
    attention_generic(a, [](int64_t, int64_t p) { return every(kAttentionChunk, 0, p); });
  };
}
// Negative control: chunks aligned to the first position of the current prefill chunk.
AttnFn generic_origin_aligned() {
  return [](const AttentionArgs& a, const int32_t* origins) {
    attention_generic(
        a, [origins](int64_t t, int64_t p) { return every(kAttentionChunk, origins[t], p); });
  };
}
// Negative control: one chunk, i.e. the single-pass softmax max -> sum -> divide.
AttnFn generic_single_pass() {
  return [](const AttentionArgs& a, const int32_t*) {
    attention_generic(a, [](int64_t, int64_t) { return std::vector<int64_t>{0}; });
  };
}
// Negative control: one chunk per KV block.
AttnFn generic_per_block() {
  return [](const AttentionArgs& a, const int32_t*) {
    attention_generic(a, [&a](int64_t, int64_t p) { return every(a.kv.block_size, 0, p); });
  };
}
// Negative control: the KV range split into `parts` pieces (as a split-KV kernel sized by the
// thread count would).
AttnFn generic_split(int parts) {
  return [parts](const AttentionArgs& a, const int32_t*) {
    attention_generic(a, [parts](int64_t, int64_t p) {
      std::vector<int64_t> s = {0};
      for (int i = 1; i < parts; ++i) {
        const int64_t b = (p + 1) * i / parts;
        if (b > s.back()) s.push_back(b);
      }
      return s;
    });
  };
}

std::vector<Seq> ragged_seqs(const Shape& s, const std::vector<int>& lens, uint32_t seed) {
  std::vector<Seq> seqs;
  for (size_t i = 0; i < lens.size(); ++i) {
    seqs.push_back(random_seq(s, lens[i], seed + static_cast<uint32_t>(i)));
  }
  return seqs;
}

// ---- kv_cache_write ----

TEST(KvCacheWrite, PutsRowsInTheirPagedSlots) {
  const Shape s{2, 2, 8};
  const std::vector<Seq> seqs = ragged_seqs(s, {37}, 1);
  for (int bs : {1, 5, 16}) {
    Cache c = make_cache(s, seqs, bs, 99);
    std::vector<int32_t> pos(37);
    std::iota(pos.begin(), pos.end(), 0);
    const std::vector<const int32_t*> tables(37, c.tables[0].data());
    kv_cache_write(c.view, seqs[0].k.data(), s.kv_width(), seqs[0].v.data(), s.kv_width(),
                   pos.data(), tables.data(), 37);
    for (int p = 0; p < 37; ++p) {
      const int64_t at = (int64_t{c.tables[0][sz(p / bs)]} * bs + p % bs) * s.kv_width();
      EXPECT_EQ(std::memcmp(&c.k[sz(at)], &seqs[0].k[sz(p * s.kv_width())],
                            sz(s.kv_width()) * sizeof(float)),
                0);
      EXPECT_EQ(std::memcmp(&c.v[sz(at)], &seqs[0].v[sz(p * s.kv_width())],
                            sz(s.kv_width()) * sizeof(float)),
                0);
    }
  }
}

TEST(KvCacheWrite, RejectsBadSlots) {
  const Shape s{2, 2, 8};
  const std::vector<Seq> seqs = ragged_seqs(s, {4}, 1);
  Cache c = make_cache(s, seqs, 4, 0);
  const std::vector<int32_t> bad_table = {static_cast<int32_t>(c.view.n_blocks)};
  const int32_t* tables[1] = {bad_table.data()};
  const int32_t pos0 = 0, neg = -1;
  EXPECT_THROW(kv_cache_write(c.view, seqs[0].k.data(), 16, seqs[0].v.data(), 16, &pos0, tables, 1),
               Error);
  const int32_t* good[1] = {c.tables[0].data()};
  EXPECT_THROW(kv_cache_write(c.view, seqs[0].k.data(), 16, seqs[0].v.data(), 16, &neg, good, 1),
               Error);
}

TEST(Attention, RejectsBadShapes) {
  const Shape s{3, 2, 8};
  const std::vector<Seq> seqs = ragged_seqs(s, {4}, 1);
  EXPECT_THROW(run(s, seqs, RunConfig{}, fast(1)), Error);  // 3 heads over 2 kv heads
  const Shape big{1, 1, kAttentionMaxHeadDim + 1};
  EXPECT_THROW(run(big, ragged_seqs(big, {2}, 1), RunConfig{}, fast(1)), Error);
}

TEST(Attention, RejectsBlockTablesOutsideTheCache) {
  const Shape s{2, 1, 8};
  const std::vector<Seq> seqs = ragged_seqs(s, {20}, 1);
  Cache c = make_cache(s, seqs, 4, 0);
  std::vector<int32_t> table = c.tables[0];
  table[2] = -1;  // positions 8..11
  const int32_t* tables[1] = {table.data()};
  std::vector<float> out(sz(s.q_width()));
  AttentionArgs a;
  a.q = seqs[0].q.data();
  a.q_stride = s.q_width();
  a.out = out.data();
  a.out_stride = s.q_width();
  const int32_t pos = 19;
  a.positions = &pos;
  a.block_tables = tables;
  a.T = 1;
  a.n_heads = s.n_heads;
  a.scale = 1.0f;
  a.kv = c.view;
  EXPECT_THROW(attention(a, pool(1)), Error);
  EXPECT_THROW(attention_reference(a), Error);
  table[2] = static_cast<int32_t>(c.view.n_blocks);
  EXPECT_THROW(attention(a, pool(2)), Error);
}

// ---- T1 ----

TEST(Attention, T1ZeroKeysGiveExactMeanOfValues) {
  const Shape s{4, 2, 24};
  std::vector<Seq> seqs = ragged_seqs(s, {200}, 7);
  std::mt19937 rng(8);
  for (float& f : seqs[0].k) f = 0.0f;
  for (float& f : seqs[0].v) f = static_cast<float>(static_cast<int>(rng() % 17) - 8);
  for (const AttnFn& fn : {fast(2), reference()}) {
    const auto out = run(s, seqs, RunConfig{16, 5, {13}}, fn);
    for (int p = 0; p < 200; ++p) {
      for (int h = 0; h < s.n_heads; ++h) {
        const int kvh = h / (s.n_heads / s.n_kv_heads);
        for (int d = 0; d < s.head_dim; ++d) {
          float sum = 0.0f;  // exact: small integers
          for (int j = 0; j <= p; ++j)
            sum += seqs[0].v[sz(j * s.kv_width() + kvh * s.head_dim + d)];
          const float want = sum / static_cast<float>(p + 1);
          const float got = out[0][sz(p * s.q_width() + h * s.head_dim + d)];
          ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0) << p << " " << h << " " << d;
        }
      }
    }
  }
}

TEST(Attention, T1DominantKeyGivesItsValueExactly) {
  // Every score is 0 except position 70, which scores 200: e^-200 underflows to 0, so tokens at
  // positions >= 70 output v_70 exactly, whatever chunk the other positions fall in.
  const Shape s{2, 1, 16};
  std::vector<Seq> seqs = ragged_seqs(s, {150}, 9);
  for (float& f : seqs[0].q) f = 1.0f;
  for (float& f : seqs[0].k) f = 0.0f;
  seqs[0].k[sz(70 * s.kv_width())] = 200.0f * std::sqrt(16.0f);  // score = 200 after scale 1/4
  for (const AttnFn& fn : {fast(3), reference()}) {
    const auto out = run(s, seqs, RunConfig{1, 3, {50}}, fn);
    for (int p = 70; p < 150; ++p) {
      for (int h = 0; h < s.n_heads; ++h) {
        EXPECT_EQ(std::memcmp(&out[0][sz(p * s.q_width() + h * s.head_dim)],
                              &seqs[0].v[sz(70 * s.kv_width())], sz(s.head_dim) * sizeof(float)),
                  0)
            << "p " << p;
      }
    }
  }
}

TEST(Attention, T1FastEqualsReferenceBitwise) {
  const Isa saved = active_isa();
  const std::vector<Shape> shapes = {{4, 2, 32},  {4, 4, 24}, {8, 1, 80},
                                     {2, 2, 128}, {1, 1, 1},  {2, 1, 17}};
  uint32_t seed = 100;
  for (const Shape& s : shapes) {
    const std::vector<Seq> seqs = ragged_seqs(s, {1, 64, 65, 150}, seed++);
    const RunConfig cfg{16, seed, {0, 7, 64, 1}};
    const auto want = run(s, seqs, cfg, reference());
    EXPECT_EQ(differing_rows(s, want, run(s, seqs, cfg, generic_canonical())), 0)
        << "the test-local generic contract disagrees with attention_reference";
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
      if (!isa_supported(isa)) continue;
      set_isa(isa);
      for (int threads : {1, 3}) {
        const auto got = run(s, seqs, cfg, fast(threads));
        EXPECT_EQ(differing_rows(s, want, got), 0)
            << "hd " << s.head_dim << " isa " << isa_name(isa) << " threads " << threads;
      }
    }
  }
  set_isa(saved);
}

// ---- T2 ----

TEST(Attention, T2WithinBoundOfFloat64) {
  // Bound: |out - ref| <= 2e-6 * max |v| (+ 1e-6 relative): the output is a convex combination
  // of values; exp_f32 is below 1 ulp and the sums over at most 300 terms each add a few ulps.
  const Shape s{4, 2, 64};
  const std::vector<Seq> seqs = ragged_seqs(s, {300}, 31);
  const auto out = run(s, seqs, RunConfig{16, 0, {0}}, fast(2));
  const Seq& sq = seqs[0];
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  double worst = 0.0;
  for (int p = 0; p < sq.len; p += 7) {
    for (int h = 0; h < s.n_heads; ++h) {
      const int kvh = h / 2;
      std::vector<double> w(sz(p + 1));
      double mx = -1e300;
      for (int j = 0; j <= p; ++j) {
        double dotv = 0.0;
        for (int d = 0; d < s.head_dim; ++d) {
          dotv += double{sq.q[sz(p * s.q_width() + h * s.head_dim + d)]} *
                  sq.k[sz(j * s.kv_width() + kvh * s.head_dim + d)];
        }
        w[sz(j)] = dotv * scale;
        mx = std::max(mx, w[sz(j)]);
      }
      double l = 0.0;
      for (double& x : w) l += (x = std::exp(x - mx));
      for (int d = 0; d < s.head_dim; ++d) {
        double ref = 0.0;
        for (int j = 0; j <= p; ++j)
          ref += w[sz(j)] * sq.v[sz(j * s.kv_width() + kvh * s.head_dim + d)];
        ref /= l;
        const double err = std::fabs(out[0][sz(p * s.q_width() + h * s.head_dim + d)] - ref);
        worst = std::max(worst, err);
        ASSERT_LE(err, 2e-6 + 1e-6 * std::fabs(ref)) << "p " << p << " h " << h << " d " << d;
      }
    }
  }
  RecordProperty("worst_abs_error", std::to_string(worst));
}

// ---- T3 ----

const Shape kInvShape{4, 2, 32};
const std::vector<int> kRagged = {1, 2, 17, 63, 64, 65, 129, 300};

TEST(AttentionInvariance, T3SameBitsForEveryBatchScheduleLayoutThreadAndIsa) {
  const Isa saved = active_isa();
  const Shape& s = kInvShape;
  const std::vector<Seq> seqs = ragged_seqs(s, kRagged, 200);
  // Baseline: each sequence alone, prefilled in one call, blocks of 16 in order, 1 thread, scalar.
  set_isa(Isa::scalar);
  RunConfig base{16, 0, {}, /*together=*/false};
  const auto want = run(s, seqs, base, fast(1));
  for (const auto& o : want) {
    for (float f : o) ASSERT_FALSE(std::isnan(f)) << "read an unwritten cache slot";
  }
  struct Case {
    const char* what;
    RunConfig cfg;
    int threads;
    Isa isa;
  };
  const std::vector<int> all1(kRagged.size(), 1), all7(kRagged.size(), 7),
      all64(kRagged.size(), 64), all100(kRagged.size(), 100);
  const std::vector<int> mixed = {1, 7, 64, 100, 1, 0, 7, 64};
  const std::vector<Case> cases = {
      {"all in one batch, one call each", {16, 0, {}}, 1, Isa::scalar},
      {"decode token by token, together", {16, 0, all1}, 1, Isa::scalar},
      {"decode token by token, alone", {16, 0, all1, false}, 1, Isa::scalar},
      {"chunked prefill 7", {16, 0, all7}, 2, Isa::scalar},
      {"chunked prefill 64", {16, 0, all64}, 3, Isa::scalar},
      {"chunked prefill 100", {16, 0, all100}, 2, Isa::scalar},
      {"mixed chunks in one batch", {16, 0, mixed}, 3, Isa::scalar},
      {"block size 1", {1, 0, mixed}, 2, Isa::scalar},
      {"block size 64", {64, 0, mixed}, 1, Isa::scalar},
      {"block size 1 shuffled", {1, 17, all7}, 3, Isa::scalar},
      {"block size 16 shuffled", {16, 18, {}}, 2, Isa::scalar},
      {"block size 64 shuffled", {64, 19, all1}, 3, Isa::scalar},
      {"avx2, mixed", {16, 20, mixed}, 2, Isa::avx2},
      {"avx2, one call", {64, 0, {}}, 3, Isa::avx2},
      {"avx512, mixed", {16, 21, mixed}, 3, Isa::avx512},
      {"avx512, decode, block size 1", {1, 22, all1}, 2, Isa::avx512},
      {"avx512, chunked 100, alone", {64, 23, all100, false}, 1, Isa::avx512},
  };
  for (const Case& c : cases) {
    if (!isa_supported(c.isa)) continue;
    set_isa(c.isa);
    const auto got = run(s, seqs, c.cfg, fast(c.threads));
    EXPECT_EQ(differing_rows(s, want, got), 0)
        << c.what << " (threads " << c.threads << ", isa " << isa_name(c.isa) << ")";
  }
  set_isa(saved);
}

// ---- negative controls: each must give different bits for some (sequence, position) ----

TEST(AttentionNegativeControl, ChunksAlignedToPrefillChunkStartDiffer) {
  const Shape& s = kInvShape;
  const std::vector<Seq> seqs = ragged_seqs(s, {300}, 300);
  const auto one_call = run(s, seqs, RunConfig{16, 0, {0}}, generic_origin_aligned());
  // In one call every origin is 0, so the variant is the canonical contract there ...
  EXPECT_EQ(differing_rows(s, one_call, run(s, seqs, RunConfig{16, 0, {0}}, fast(1))), 0);
  // ... but with chunks of 100 its boundaries move, and the T3 comparison must see it.
  const auto chunked = run(s, seqs, RunConfig{16, 0, {100}}, generic_origin_aligned());
  EXPECT_GT(differing_rows(s, one_call, chunked), 0);
}

TEST(AttentionNegativeControl, SinglePassSoftmaxDiffers) {
  const Shape& s = kInvShape;
  const std::vector<Seq> seqs = ragged_seqs(s, {300}, 301);
  const auto canonical = run(s, seqs, RunConfig{16, 0, {0}}, fast(1));
  const auto single = run(s, seqs, RunConfig{16, 0, {0}}, generic_single_pass());
  EXPECT_GT(differing_rows(s, canonical, single), 0);
}

TEST(AttentionNegativeControl, ChunksPerKvBlockDependOnBlockSize) {
  const Shape& s = kInvShape;
  const std::vector<Seq> seqs = ragged_seqs(s, {200}, 302);
  const auto b16 = run(s, seqs, RunConfig{16, 0, {0}}, generic_per_block());
  const auto b64 = run(s, seqs, RunConfig{64, 0, {0}}, generic_per_block());
  EXPECT_GT(differing_rows(s, b16, b64), 0);
}

TEST(AttentionNegativeControl, KvSplitByThreadCountDiffers) {
  const Shape& s = kInvShape;
  const std::vector<Seq> seqs = ragged_seqs(s, {200}, 303);
  const auto t1 = run(s, seqs, RunConfig{16, 0, {0}}, generic_split(1));
  const auto t3 = run(s, seqs, RunConfig{16, 0, {0}}, generic_split(3));
  EXPECT_GT(differing_rows(s, t1, t3), 0);
}

}  // namespace
}  // namespace bx
