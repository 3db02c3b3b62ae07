// Attention benchmark for head_dim 256 (kernels/cuda/attention_d256.h) on Gemma 3 4B's shape: 8
// query heads, 4 KV heads of 256, sliding window 1024 on most layers; beside it the same query
// and KV widths as head_dim 128 (16 / 8 heads) on the default kernel, for scale.
//   prefill  causal 1 x 4096, full and with the 1024 window: flops = 4 T_vis H D / 2 summed over
//            the queries' visible positions (the FlashAttention count), in TFLOP/s
//   decode   batch b of single tokens over ctx cached positions, full and windowed: floor = the
//            visible KV bytes / copy bandwidth B (b vis Hkv D 2 bytes 2), vis = min(ctx, window)
// Timing: CUDA events around batches of eager launches (timing.h), median of 11.
// Usage: attention_d256_bench
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"
#include "timing.h"

namespace {

using bx::bench::median_us;
using bx::cuda::DeviceBuffer;

constexpr int kBlock = 16;

struct Shape {
  int heads, kv_heads, head_dim;
};

// n_seq sequences of ctx positions (consecutive blocks), random bf16 K and V; queries: the
// positions `pos` of each sequence.
struct Problem {
  DeviceBuffer k, v, tables, q, out, dpos, doff, workspace;
  bx::cuda::AttentionPlanner planner;
  bx::cuda::AttentionArgs args;
  Problem(Shape s, int64_t n_seq, int64_t ctx, const std::vector<int32_t>& pos, int window) {
    const int64_t blocks_per_seq = (ctx + kBlock - 1) / kBlock;
    const int64_t n_blocks = n_seq * blocks_per_seq;
    const int64_t elems = n_blocks * kBlock * s.kv_heads * s.head_dim;
    k = DeviceBuffer(static_cast<size_t>(elems) * 2);
    v = DeviceBuffer(static_cast<size_t>(elems) * 2);
    bx::cuda::fill_uniform_bf16(k.get<uint16_t>(), elems, 11, -1, 1, nullptr);
    bx::cuda::fill_uniform_bf16(v.get<uint16_t>(), elems, 12, -1, 1, nullptr);
    std::vector<int32_t> t(static_cast<size_t>(n_blocks));
    std::iota(t.begin(), t.end(), 0);
    tables = DeviceBuffer(t.size() * 4);
    tables.upload(t.data(), t.size() * 4);
    std::vector<int32_t> positions, offsets;
    for (int64_t i = 0; i < n_seq; ++i) {
      for (int32_t p : pos) {
        positions.push_back(p);
        offsets.push_back(static_cast<int32_t>(i * blocks_per_seq));
      }
    }
    const auto T = static_cast<int64_t>(positions.size());
    const int64_t width = static_cast<int64_t>(s.heads) * s.head_dim;
    q = DeviceBuffer(static_cast<size_t>(T * width) * 4);
    out = DeviceBuffer(q.bytes());
    bx::cuda::fill_uniform_f32(q.get<float>(), T * width, 13, -1, 1, nullptr);
    dpos = DeviceBuffer(positions.size() * 4);
    doff = DeviceBuffer(offsets.size() * 4);
    dpos.upload(positions.data(), positions.size() * 4);
    doff.upload(offsets.data(), offsets.size() * 4);
    const int64_t ws_floats = (int64_t{64} << 20) / 4;
    workspace = DeviceBuffer(static_cast<size_t>(ws_floats) * 4);
    args.q = q.get<float>();
    args.q_stride = width;
    args.out = out.get<float>();
    args.out_stride = width;
    args.n_heads = s.heads;
    args.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    args.window = window;
    args.kv = bx::cuda::PagedKv{k.get<uint16_t>(), v.get<uint16_t>(), n_blocks, kBlock,
                                s.kv_heads,        s.head_dim};
    args.batch =
        bx::cuda::DeviceBatch{dpos.get<int32_t>(), doff.get<int32_t>(), tables.get<int32_t>(), T};
    args.plan = planner.build(positions.data(), offsets.data(), T);
    args.workspace = workspace.get<float>();
    args.workspace_floats = ws_floats;
  }
  double time_us() {
    return median_us([&](int) { bx::cuda::attention(args, nullptr); }, 1);
  }
};

int64_t visible(int64_t pos, int window) {
  return window > 0 ? std::min<int64_t>(pos + 1, window) : pos + 1;
}

void prefill(Shape s, int64_t T, int window) {
  std::vector<int32_t> pos(static_cast<size_t>(T));
  std::iota(pos.begin(), pos.end(), 0);
  Problem p(s, 1, T, pos, window);
  double flops = 0;
  for (int64_t t = 0; t < T; ++t)
    flops += 4.0 * static_cast<double>(visible(t, window)) * s.heads * s.head_dim / 2;
  const double us = p.time_us();
  std::printf("| prefill 1x%lld, %d/%d heads, d%d, window %d | %.1f | %.0f TFLOP/s |\n",
              static_cast<long long>(T), s.heads, s.kv_heads, s.head_dim, window, us,
              flops / (us * 1e-6) / 1e12);
}

void decode(Shape s, int64_t batch, int64_t ctx, int window, double bandwidth) {
  const int64_t vis = window > 0 ? std::min<int64_t>(ctx, window) : ctx;
  const double kv_bytes = static_cast<double>(batch * vis * s.kv_heads * s.head_dim * 2 * 2);
  Problem p(s, batch, ctx, {static_cast<int32_t>(ctx - 1)}, window);
  const bool split = bx::cuda::attention_uses_split_partials(p.args);
  const double us = p.time_us();
  const double floor_us = kv_bytes / bandwidth * 1e6;
  std::printf("| decode b=%lld ctx=%lld, %d/%d heads, d%d, window %d | %.1f (%s) | %.2f | %.2f |\n",
              static_cast<long long>(batch), static_cast<long long>(ctx), s.heads, s.kv_heads,
              s.head_dim, window, us, split ? "split" : "walk", floor_us, floor_us / us);
}

}  // namespace

int main() {
  if (!bx::bench::report_device("attention_d256_bench")) return 0;
  const double bandwidth = bx::bench::copy_bandwidth();
  std::printf("ceiling: copy %.2f TB/s (1 GiB, read+write)\n\n", bandwidth / 1e12);
  const Shape d256{8, 4, 256}, d128{16, 8, 128};
  std::printf("| prefill | us | rate |\n|---|---|---|\n");
  for (const Shape s : {d256, d128}) {
    prefill(s, 4096, 0);
    prefill(s, 4096, 1024);
  }
  std::printf("\n| decode | us (path) | floor us | floor/ours |\n|---|---|---|---|\n");
  for (const int64_t b : {1, 8, 32, 128}) {
    for (const int64_t ctx : {512, 4096}) {
      for (const Shape s : {d256, d128}) {
        decode(s, b, ctx, 0, bandwidth);
        if (ctx > 1024 && s.head_dim == 256) decode(s, b, ctx, 1024, bandwidth);
      }
    }
  }
  return 0;
}
