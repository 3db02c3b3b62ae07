// Seeded sampling per row on the device (sample.h). Steps numbered as in sampling/sampler.h.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/sample.h"
#include "kernels/exp_steps.h"
#include "sampling/philox.h"

namespace bx::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kLanes = 16;                   // kernels/lanes.h
constexpr int kBins = 2048;                  // bins of z_max - z for the walks' rounds
constexpr int kRound = 8192;                 // most ids one round of a walk sorts
constexpr int kFirstRound = 1024;            // ... in its first round
constexpr uint64_t kAllKeys = ~uint64_t{0};  // above every key: "no limit"
constexpr int32_t kNone = 0x7fffffff;

// Sort key of an id: z descending, then id ascending, as one unsigned integer compared with <
// (sampler.cpp's sort_key). A real key is never 0 (its high word is at least 0x007FFFFF).
__device__ __forceinline__ uint64_t sort_key(float z, int64_t id) {
  const uint32_t bits = __float_as_uint(z);
  const uint32_t ascending = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
  return (static_cast<uint64_t>(~ascending) << 32) | static_cast<uint64_t>(id);
}

__device__ __forceinline__ int32_t id_of(uint64_t key) {
  return static_cast<int32_t>(key & 0xFFFFFFFFu);
}

// (value a, id ia) beats (value b, id ib) for bx::argmax (greedy.cu).
__device__ __forceinline__ bool beats(float a, int32_t ia, float b, int32_t ib) {
  if (ia == kNone) return false;
  if (ib == kNone) return true;
  return a > b || (a == b && ia < ib);
}

// Adds 1 to hist[bucket] for every thread of the warp with take set; warp-aggregated, so many
// threads with the same bucket cost one shared atomic. All 32 threads must call it.
__device__ __forceinline__ void hist_add(int* hist, bool take, uint32_t bucket) {
  const unsigned active = __ballot_sync(0xffffffffu, take);
  if (!take) return;
  const unsigned peers = __match_any_sync(active, bucket);
  if ((threadIdx.x & 31) == static_cast<unsigned>(__ffs(peers) - 1)) {
    atomicAdd(&hist[bucket], __popc(peers));
  }
}

// Appends value to list[] for every thread of the warp with take set (order within the list is
// arbitrary; every user sorts it). *count counts them, including ones past capacity, which are
// dropped. All 32 threads must call it.
__device__ __forceinline__ void append(uint64_t* list, int capacity, int* count, bool take,
                                       uint64_t value) {
  const unsigned active = __ballot_sync(0xffffffffu, take);
  if (active == 0) return;
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int leader = __ffs(active) - 1;
  int base = 0;
  if (lane == leader) base = atomicAdd(count, __popc(active));
  base = __shfl_sync(0xffffffffu, base, leader);
  if (take) {
    const int at = base + __popc(active & ((1u << lane) - 1u));
    if (at < capacity) list[at] = value;
  }
}

// Sorts keys[0, n) ascending in shared memory (bitonic, padded with kAllKeys to a power of two
// no larger than kRound). Ends synchronised.
__device__ void sort_keys(uint64_t* keys, int n) {
  int padded = 1;
  while (padded < n) padded *= 2;
  for (int i = n + static_cast<int>(threadIdx.x); i < padded; i += kThreads) keys[i] = kAllKeys;
  __syncthreads();
  for (int k = 2; k <= padded; k *= 2) {
    for (int j = k / 2; j > 0; j /= 2) {
      for (int t = static_cast<int>(threadIdx.x); t < padded / 2; t += kThreads) {
        const int i = ((t & ~(j - 1)) << 1) | (t & (j - 1));  // j is a power of two
        const int l = i + j;
        const bool ascending = (i & k) == 0;
        const uint64_t a = keys[i], b = keys[l];
        if ((a > b) == ascending) keys[i] = b, keys[l] = a;
      }
      __syncthreads();
    }
  }
}

struct Shared {
  uint64_t keys[kRound];     // a round's keys; also two lane-sum tiles of kRound floats
  float weights[kRound];     // the weights of a round's keys, in sorted order
  int bin_start[kBins + 1];  // the domain's ids of bin b: order[bin_start[b], bin_start[b + 1])
  int digits[256];           // radix select histogram
  float lane_acc[kLanes];
  int lane_count[kLanes];
  float red_f[2][kWarps];
  int red_i[3][kWarps];
  int scan[kWarps];
  int32_t red_id[kWarps];
  int count;
  // The walk's state and results (written by thread 0).
  uint64_t select_prefix;
  int select_need;
  int select_done;
  uint64_t select_result;
  int plan_refine;
  int plan_bin_end;
  int decided;
  int first_hit;
  int last_kept;
  float running;
  int walked;
  uint64_t result_key;
  int32_t result_id;
};

__device__ float block_max(float v, float* scratch) {
  for (int o = 16; o >= 1; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = scratch[0];
  for (int w = 1; w < kWarps; ++w) total = fmaxf(total, scratch[w]);
  __syncthreads();
  return total;
}

__device__ float block_min(float v, float* scratch) {
  for (int o = 16; o >= 1; o /= 2) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = scratch[0];
  for (int w = 1; w < kWarps; ++w) total = fminf(total, scratch[w]);
  __syncthreads();
  return total;
}

__device__ int block_count(int v, int* scratch) {
  for (int o = 16; o >= 1; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  int total = 0;
  for (int w = 0; w < kWarps; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

// counts[0, kBins) -> their exclusive prefix sums, and counts[kBins] = the total (kBins = 2 *
// kThreads: two bins per thread). Ends synchronised.
__device__ void exclusive_scan_bins(int* counts, int* warp_sums) {
  static_assert(kBins == 2 * kThreads);
  const int t = static_cast<int>(threadIdx.x), lane = t & 31, warp = t / 32;
  const int a = counts[2 * t], b = counts[2 * t + 1];
  int sum = a + b;  // inclusive scan of the pair sums within the warp
  for (int o = 1; o < 32; o *= 2) {
    const int v = __shfl_up_sync(0xffffffffu, sum, o);
    if (lane >= o) sum += v;
  }
  if (lane == 31) warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    const int own = warp_sums[lane];
    int prefix = own;
    for (int o = 1; o < 32; o *= 2) {
      const int v = __shfl_up_sync(0xffffffffu, prefix, o);
      if (lane >= o) prefix += v;
    }
    warp_sums[lane] = prefix - own;  // exclusive
  }
  __syncthreads();
  const int before = warp_sums[warp] + sum - (a + b);
  counts[2 * t] = before;
  counts[2 * t + 1] = before + a;
  if (t == kThreads - 1) counts[kBins] = before + a + b;
  __syncthreads();
}

// One row's sampling. Members that depend on the row are set before the first use.
struct RowSampler {
  Shared& sm;
  const float* logits;
  int64_t V;
  float temperature;
  float z_max = 0.0f;
  bool inf_mode = false;         // z_max = +inf: the +inf ids weigh 1, the rest 0
  uint64_t topk_key = kAllKeys;  // 3. the last key top-k keeps
  float bin_scale = 0.0f;
  // The final kept set (6, 7): keys <= cut_key with weight >= min_floor.
  uint64_t cut_key = kAllKeys;
  float min_floor = 0.0f;
  uint32_t* order = nullptr;  // [V] the domain's ids grouped by bin (the row's global scratch)
  bool grouped = false;       // order holds them

  // 1. z = logits / temperature; NaN -> -inf; + 0 folds -0 into +0.
  __device__ float z_at(int64_t i) const {
    const float l = logits[i];
    return l != l ? -ieee::infinity() : ieee::add(ieee::div(l, temperature), 0.0f);
  }
  __device__ bool candidate(float z) const {
    return inf_mode ? z == ieee::infinity() : z > -ieee::infinity();
  }
  // 4. The weight of a candidate.
  __device__ float weight(float z) const {
    if (inf_mode) return z == ieee::infinity() ? 1.0f : 0.0f;
    return exp_steps(ieee::sub(z, z_max));
  }
  // weight(z) > 0, mostly without the exp: e^x > 0 for x >= -103 (e^-103 is above twice the
  // least subnormal) and exp_steps is 0 below -104.
  __device__ bool positive(float z) const {
    if (inf_mode) return z == ieee::infinity();
    const float x = ieee::sub(z, z_max);
    if (x >= -103.0f) return true;
    if (x < -104.0f) return false;
    return exp_steps(x) > 0.0f;
  }
  // The walks' domain: candidates that top-k keeps, of positive weight (sampler.cpp's order_
  // after step 4).
  __device__ bool in_domain(float z, uint64_t key) const {
    return candidate(z) && key <= topk_key && positive(z);
  }
  // A bin of z_max - z: monotone in the key (a larger z never has a larger bin).
  __device__ int bin_of(float z) const {
    if (inf_mode) return 0;
    const float scaled = ieee::mul(ieee::sub(z_max, z), bin_scale);
    return static_cast<int>(fminf(scaled, static_cast<float>(kBins - 1)));
  }
  // The final weight: weight for the kept ids (7), 0 for the ones top-p or min-p dropped.
  __device__ float kept_weight(float z, uint64_t key) const {
    if (key > cut_key) return 0.0f;
    const float w = weight(z);
    return w >= min_floor ? w : 0.0f;
  }

  // The need-th smallest key (1-based) among the ids with key > lo that `in_set(z, key)` admits
  // (at least need of them exist), looking at ids list[0, count) (all V ids if list is null):
  // radix selection, 8 bits at a time from the top, stopping as soon as the bucket holding it
  // is taken whole. All threads call it; returns to all.
  template <typename InSet>
  __device__ uint64_t select_key(int need, uint64_t lo, const uint32_t* list, int64_t count,
                                 InSet in_set) {
    if (threadIdx.x == 0) sm.select_prefix = 0, sm.select_need = need, sm.select_done = 0;
    uint64_t result = kAllKeys;
    for (int shift = 56; shift >= 0; shift -= 8) {
      for (int d = static_cast<int>(threadIdx.x); d < 256; d += kThreads) sm.digits[d] = 0;
      __syncthreads();
      const uint64_t prefix = sm.select_prefix;
      const uint64_t high = shift == 56 ? 0 : kAllKeys << (shift + 8);
      for (int64_t base = 0; base < count; base += kThreads) {
        const int64_t j = base + threadIdx.x;
        bool take = false;
        uint64_t key = 0;
        if (j < count) {
          const int64_t i = list != nullptr ? list[j] : j;
          const float z = z_at(i);
          key = sort_key(z, i);
          take = key > lo && (key & high) == prefix && in_set(z, key);
        }
        hist_add(sm.digits, take, static_cast<uint32_t>((key >> shift) & 255u));
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        int left = sm.select_need;
        int d = 0;
        while (sm.digits[d] < left) left -= sm.digits[d++];
        const uint64_t chosen = sm.select_prefix | (static_cast<uint64_t>(d) << shift);
        sm.select_prefix = chosen;
        sm.select_need = left;
        if (sm.digits[d] == left) {  // the whole bucket: every key with this prefix
          sm.select_done = 1;
          sm.select_result = chosen | (shift == 0 ? 0 : (uint64_t{1} << shift) - 1);
        }
      }
      __syncthreads();
      if (sm.select_done) {
        result = sm.select_result;
        break;
      }
    }
    __syncthreads();
    return result;
  }

  // 5. The canonical sum over all V ids in id order of weight(z) for the ids in the set and +0
  // for the rest (kernels/lanes.h). `count` is the set's size. All threads call it.
  template <typename InSet>
  __device__ float lane_total(int count, InSet in_set) {
    float acc = 0.0f;  // lane threadIdx.x (< 16)
    if (count <= kRound) {
      // Few ids: gather them, sort by (lane, id), and run each lane's chain over its own ids.
      if (threadIdx.x == 0) sm.count = 0;
      if (threadIdx.x < kLanes) sm.lane_count[threadIdx.x] = 0;
      __syncthreads();
      for (int64_t base = 0; base < V; base += kThreads) {
        const int64_t i = base + threadIdx.x;
        bool take = false;
        if (i < V) {
          const float z = z_at(i);
          take = in_set(z, sort_key(z, i));
        }
        const uint64_t lane = static_cast<uint64_t>(i & (kLanes - 1));
        append(sm.keys, kRound, &sm.count, take, (lane << 32) | static_cast<uint64_t>(i));
      }
      __syncthreads();
      const int n = sm.count;
      sort_keys(sm.keys, n);
      for (int j = static_cast<int>(threadIdx.x); j < n; j += kThreads) {
        const int32_t id = id_of(sm.keys[j]);
        sm.weights[j] = weight(z_at(id));
        atomicAdd(&sm.lane_count[id & (kLanes - 1)], 1);
      }
      __syncthreads();
      if (threadIdx.x < kLanes) {
        int start = 0;
        for (int l = 0; l < static_cast<int>(threadIdx.x); ++l) start += sm.lane_count[l];
        const int end = start + sm.lane_count[threadIdx.x];
        for (int j = start; j < end; ++j) acc = ieee::add(acc, sm.weights[j]);
      }
    } else {
      // Many ids: tiles of kRound ids, two of them in the keys' space. Warps 1.. compute the
      // weights of the next tile while lanes 0-15 of warp 0 run the chains over this one.
      float* tiles = reinterpret_cast<float*>(sm.keys);
      const int64_t n_tiles = (V + kRound - 1) / kRound;
      const auto fill = [&](int64_t t) {
        float* tile = tiles + (t & 1) * kRound;
        for (int k = static_cast<int>(threadIdx.x) - 32; k < kRound; k += kThreads - 32) {
          const int64_t i = t * kRound + k;
          float w = 0.0f;
          if (i < V) {
            const float z = z_at(i);
            if (in_set(z, sort_key(z, i))) w = weight(z);
          }
          tile[k] = w;
        }
      };
      if (threadIdx.x >= 32) fill(0);
      __syncthreads();
      for (int64_t t = 0; t < n_tiles; ++t) {
        if (threadIdx.x < kLanes) {
          const float* tile = tiles + (t & 1) * kRound;
#pragma unroll 8
          for (int j = 0; j < kRound / kLanes; ++j) {
            acc = ieee::add(acc, tile[j * kLanes + static_cast<int>(threadIdx.x)]);
          }
        } else if (threadIdx.x >= 32 && t + 1 < n_tiles) {
          fill(t + 1);
        }
        __syncthreads();
      }
    }
    if (threadIdx.x < kLanes) sm.lane_acc[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int h = kLanes / 2; h >= 1; h /= 2) {
        for (int j = 0; j < h; ++j) sm.lane_acc[j] = ieee::add(sm.lane_acc[j], sm.lane_acc[j + h]);
      }
    }
    __syncthreads();
    const float total = sm.lane_acc[0];
    __syncthreads();
    return total;
  }

  // Groups the domain's ids by bin: order[bin_start[b], bin_start[b + 1]) = the ids of bin b,
  // in arbitrary order (every round sorts). All threads call it.
  __device__ void group_by_bin() {
    int* cursor = reinterpret_cast<int*>(sm.weights);
    for (int b = static_cast<int>(threadIdx.x); b < kBins; b += kThreads) cursor[b] = 0;
    __syncthreads();
    for (int64_t base = 0; base < V; base += kThreads) {
      const int64_t i = base + threadIdx.x;
      bool take = false;
      uint32_t b = 0;
      if (i < V) {
        const float z = z_at(i);
        take = in_domain(z, sort_key(z, i));
        if (take) b = static_cast<uint32_t>(bin_of(z));
      }
      const unsigned active = __ballot_sync(0xffffffffu, take);
      if (take) {
        const unsigned peers = __match_any_sync(active, b);
        const int lane = static_cast<int>(threadIdx.x & 31);
        const int leader = __ffs(peers) - 1;
        int at = 0;
        if (lane == leader) at = atomicAdd(&cursor[b], __popc(peers));
        at = __shfl_sync(peers, at, leader) + __popc(peers & ((1u << lane) - 1u));
        order[sm.bin_start[b] + at] = static_cast<uint32_t>(i);
      }
    }
    __syncthreads();
    grouped = true;
  }

  // A walk over the domain in sorted order with a running sum c = c + w per id (w = weight for
  // top-p, kept_weight for the draw). top-p (draw = false): stops at the first id with
  // c >= limit, result_key = its key, walked = its 1-based position. Draw: stops at the first
  // id with c > limit or past cut_key; result_id = that id, or the last id of positive weight
  // walked. decided = 0 if the domain ran out first. All threads call it.
  __device__ void walk(bool draw, float limit) {
    if (threadIdx.x == 0) {
      sm.running = 0.0f, sm.walked = 0, sm.decided = 0, sm.result_id = -1;
    }
    int bin = 0;      // the bin the next round starts in
    int taken = 0;    // ids of that bin already walked
    uint64_t lo = 0;  // they are the keys <= lo (0: none)
    for (int round = 0; bin < kBins; ++round) {
      const int cap = round == 0 ? kFirstRound : kRound;
      if (threadIdx.x == 0) {
        const int* start = sm.bin_start;
        const int left = start[bin + 1] - start[bin] - taken;
        sm.plan_refine = left > cap;
        int end = bin + 1;
        while (end < kBins && start[end + 1] - start[bin] - taken <= cap) ++end;
        sm.plan_bin_end = end;
      }
      __syncthreads();
      const bool refine = sm.plan_refine;
      const int bin_end = sm.plan_bin_end;
      // The round: the ids of bin `bin` above lo (up to hi when the bin is cut), then whole bins;
      // their ids lie in order[bin_start[bin], bin_start[bin_end]). A first round of whole bins
      // (all a peaked row needs) is gathered from all V ids instead, without grouping them.
      const bool from_order = round > 0 || refine;
      if (from_order && !grouped) group_by_bin();
      const int first = sm.bin_start[bin];
      const int last = sm.bin_start[refine ? bin + 1 : bin_end];
      uint64_t hi = kAllKeys;
      if (refine) {
        hi = select_key(cap, lo, order + first, last - first, [](float, uint64_t) { return true; });
      }
      if (threadIdx.x == 0) sm.count = 0;
      __syncthreads();
      for (int64_t base = 0; !from_order && base < V; base += kThreads) {
        const int64_t i = base + threadIdx.x;
        bool take = false;
        uint64_t key = 0;
        if (i < V) {
          const float z = z_at(i);
          key = sort_key(z, i);
          take = in_domain(z, key) && bin_of(z) < bin_end;  // (bin = 0, nothing walked yet)
        }
        append(sm.keys, kRound, &sm.count, take, key);
      }
      for (int base = first; from_order && base < last; base += kThreads) {
        const int j = base + static_cast<int>(threadIdx.x);
        bool take = false;
        uint64_t key = 0;
        if (j < last) {
          const uint32_t i = order[j];
          const float z = z_at(i);
          key = sort_key(z, i);
          // lo and hi bound keys of bin `bin` only (a later bin may hold keys below either)
          take = refine ? key > lo && key <= hi : bin_of(z) != bin || key > lo;
        }
        append(sm.keys, kRound, &sm.count, take, key);
      }
      __syncthreads();
      const int n = sm.count;
      sort_keys(sm.keys, n);
      // Weights in sorted order, zero-padded to a multiple of 4.
      const int n4 = (n + 3) / 4 * 4;
      for (int j = static_cast<int>(threadIdx.x); j < n4; j += kThreads) {
        float w = 0.0f;
        if (j < n) {
          const uint64_t key = sm.keys[j];
          const float z = z_at(id_of(key));
          w = draw ? kept_weight(z, key) : weight(z);
        }
        sm.weights[j] = w;
      }
      if (threadIdx.x == 0) sm.first_hit = kRound, sm.last_kept = -1;
      __syncthreads();
      // The running sum, the only sequential part: one thread, one add per id, in sorted order.
      // weights[j] becomes c after id j, negated for an id the draw does not keep (weight 0;
      // a kept id's c is > 0), so the search below can tell them apart.
      if (threadIdx.x == 0) {
        float c = sm.running;
        float4* w4 = reinterpret_cast<float4*>(sm.weights);
#pragma unroll 4
        for (int q = 0; q < n4 / 4; ++q) {
          const float4 w = w4[q];
          float4 out;
          c = ieee::add(c, w.x), out.x = w.x > 0.0f ? c : -c;
          c = ieee::add(c, w.y), out.y = w.y > 0.0f ? c : -c;
          c = ieee::add(c, w.z), out.z = w.z > 0.0f ? c : -c;
          c = ieee::add(c, w.w), out.w = w.w > 0.0f ? c : -c;
          w4[q] = out;
        }
        sm.running = c;
      }
      __syncthreads();
      // The first id whose c decides (c only grows at kept ids, so that one is kept), and the
      // last kept id (the draw's fallback): in parallel.
      for (int j = static_cast<int>(threadIdx.x); j < n; j += kThreads) {
        const float c = sm.weights[j];
        if (draw ? fabsf(c) > limit : c >= limit) atomicMin(&sm.first_hit, j);
        if (draw && !signbit(c)) atomicMax(&sm.last_kept, j);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        const int hit = sm.first_hit;
        if (hit < n) {
          sm.decided = 1;
          sm.result_id = id_of(sm.keys[hit]);
          sm.result_key = sm.keys[hit];
          sm.walked += hit + 1;
        } else {
          sm.walked += n;
          if (sm.last_kept >= 0) sm.result_id = id_of(sm.keys[sm.last_kept]);
          // Past the top-p cut: the rest of the sorted order is not kept either.
          if (draw && n > 0 && sm.keys[n - 1] > cut_key) sm.decided = 1;
        }
      }
      __syncthreads();
      if (sm.decided) break;
      if (refine) {
        taken += n, lo = hi;
      } else {
        bin = bin_end, taken = 0, lo = 0;
      }
    }
    __syncthreads();
  }
};

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* logits, int64_t logits_stride, const float* logprobs,
                  int64_t logprobs_stride, int64_t V, const SampleRowParams* params,
                  uint32_t* scratch, int32_t* ids, float* chosen) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  Shared& sm = *reinterpret_cast<Shared*>(shared_bytes);
  const int64_t r = blockIdx.x;
  const SampleRowParams p = params[r];
  const float* row = logits + r * logits_stride;
  const float inf = ieee::infinity();
  RowSampler s{sm, row, V, p.temperature};
  const bool sampled = p.temperature != 0.0f;

  // The greedy choice (bx::argmax), and for sampling 1. z's maximum, the smallest finite z and
  // the candidate counts.
  float best = 0.0f;
  int32_t best_id = kNone;
  float z_max = -inf, z_min = inf;
  int n_finite_or_inf = 0, n_inf = 0;
  for (int64_t i = threadIdx.x; i < V; i += kThreads) {
    const float x = row[i];
    if (x == x && (best_id == kNone || x > best)) best = x, best_id = static_cast<int32_t>(i);
    if (sampled) {
      const float z = s.z_at(i);
      z_max = fmaxf(z_max, z);
      if (z > -inf) {
        ++n_finite_or_inf;
        if (z == inf) {
          ++n_inf;
        } else {
          z_min = fminf(z_min, z);
        }
      }
    }
  }
  for (int o = 16; o >= 1; o /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, best, o);
    const int32_t other_id = __shfl_xor_sync(0xffffffffu, best_id, o);
    if (beats(other, other_id, best, best_id)) best = other, best_id = other_id;
  }
  if ((threadIdx.x & 31) == 0)
    sm.red_f[0][threadIdx.x / 32] = best, sm.red_id[threadIdx.x / 32] = best_id;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w) {
      if (beats(sm.red_f[0][w], sm.red_id[w], best, best_id))
        best = sm.red_f[0][w], best_id = sm.red_id[w];
    }
    sm.result_id = best_id == kNone ? 0 : best_id;
  }
  __syncthreads();
  const int32_t greedy_id = sm.result_id;
  __syncthreads();
  const auto finish = [&](int32_t id) {
    if (threadIdx.x == 0) {
      ids[r] = id;
      chosen[r] = logprobs[r * logprobs_stride + id];
    }
  };
  if (!sampled) return finish(greedy_id);
  s.z_max = block_max(z_max, sm.red_f[0]);
  if (s.z_max == -inf) return finish(greedy_id);  // nothing to draw from
  s.inf_mode = s.z_max == inf;
  const int n_candidates = block_count(s.inf_mode ? n_inf : n_finite_or_inf, sm.red_i[0]);
  const float z_low = block_min(z_min, sm.red_f[1]);

  // 3. top-k: the top_k-th key of the candidates.
  if (p.top_k > 0 && p.top_k < n_candidates) {
    s.topk_key =
        s.select_key(p.top_k, 0, nullptr, V, [&](float z, uint64_t) { return s.candidate(z); });
  }

  // Bins over the span of z_max - z that can weigh anything (weights below e^-104 are 0).
  const float span = fminf(ieee::sub(s.z_max, z_low), 104.0f);
  s.bin_scale = span > 0.0f ? ieee::div(static_cast<float>(kBins), span) : 0.0f;
  int* counts = sm.bin_start;
  for (int b = static_cast<int>(threadIdx.x); b <= kBins; b += kThreads) counts[b] = 0;
  __syncthreads();
  int n_domain = 0;
  for (int64_t base = 0; base < V; base += kThreads) {
    const int64_t i = base + threadIdx.x;
    bool take = false;
    int b = 0;
    if (i < V) {
      const float z = s.z_at(i);
      take = s.in_domain(z, sort_key(z, i));
      if (take) b = s.bin_of(z), ++n_domain;
    }
    hist_add(counts, take, static_cast<uint32_t>(b));
  }
  n_domain = block_count(n_domain, sm.red_i[1]);
  exclusive_scan_bins(sm.bin_start, sm.scan);
  s.order = scratch + r * V;  // grouped by bin when a walk needs a second round
  // (n_domain >= 1: the id of z_max weighs exp(0) = 1 and top-k keeps it.)

  // 5. The total of the domain.
  const auto domain = [&](float z, uint64_t key) { return s.in_domain(z, key); };
  float total = s.lane_total(n_domain, domain);

  // 6. top-p: the shortest sorted prefix whose running sum reaches top_p * total.
  int kept = n_domain;
  if (p.top_p < 1.0f) {
    s.walk(false, ieee::mul(p.top_p, total));
    if (sm.decided) s.cut_key = sm.result_key, kept = sm.walked;
  }
  // 7. min-p: keep w >= min_p * (the largest weight: z_max's, exp(0) or 1).
  if (p.min_p > 0.0f) {
    s.min_floor = ieee::mul(p.min_p, s.weight(s.z_max));
    int here = 0;
    for (int64_t i = threadIdx.x; i < V; i += kThreads) {
      const float z = s.z_at(i);
      const uint64_t key = sort_key(z, i);
      if (s.in_domain(z, key) && s.kept_weight(z, key) > 0.0f) ++here;
    }
    kept = block_count(here, sm.red_i[2]);
  }
  if (kept < n_domain) {
    total = s.lane_total(kept, [&](float z, uint64_t key) {
      return s.in_domain(z, key) && s.kept_weight(z, key) > 0.0f;
    });
  }

  // 8. The draw: the first sorted id whose running sum exceeds u * total, else the last one.
  const float threshold = ieee::mul(philox_uniform(p.seed, p.token_index), total);
  s.walk(true, threshold);
  finish(sm.result_id);
}

__global__ void exp_kernel(const float* x, float* y, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = exp_steps(x[i]);
}

}  // namespace

void sample_rows(const float* logits, int64_t logits_stride, const float* logprobs,
                 int64_t logprobs_stride, int64_t rows, int64_t cols, const SampleRowParams* params,
                 uint32_t* scratch, int32_t* ids, float* chosen, cudaStream_t stream) {
  if (rows <= 0) return;
  static const bool configured = [] {
    check_cuda(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(sizeof(Shared))),
               "cudaFuncSetAttribute (sample_kernel)");
    return true;
  }();
  (void)configured;
  sample_kernel<<<static_cast<unsigned>(rows), kThreads, sizeof(Shared), stream>>>(
      logits, logits_stride, logprobs, logprobs_stride, cols, params, scratch, ids, chosen);
  check_launch("sample_kernel");
}

void exp_steps_on_device(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const int threads = 256;
  exp_kernel<<<static_cast<unsigned>((n + threads - 1) / threads), threads, 0, stream>>>(x, y, n);
  check_launch("exp_kernel");
}

}  // namespace bx::cuda
