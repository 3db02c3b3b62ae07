// Attention benchmark (kernels/cuda/attention.h) on the Qwen3-8B shapes: 32 query heads, 8 KV
// heads, head_dim 128. The memory-bound kernels of rows.h and rope.h have their own benchmark,
// rows_bench.
//
// Ceiling: copy bandwidth B (a device-to-device cudaMemcpy of 1 GiB, bytes read plus written).
//   prefill  causal 1 x 4096 (8 and 32 KV heads) and 8 x 1024 (8 KV heads), 32 heads: flops =
//            n 4 T^2 H D / 2 (the FlashAttention count), in TFLOP/s, on the default cuda-k2
//            kernels (wgmma, mma.sync) and on the opt-in k3 kernels (AttentionArgs::k3, split
//            128; warpgroups side by side, and taking turns: ping-pong); torch SDPA (flash, cuDNN,
//            efficient) is measured by attention_sdpa.py in the same run
//   decode   batch b of single tokens, each over ctx cached positions: floor = KV bytes / B,
//            KV bytes = b ctx Hkv D 2 (bf16) 2 (K and V); on the opt-in k3 kernels (split 128)
//            unless named cuda-k2: the backend's path with a 64 MiB
//            workspace (split partials or walking by batch size), each path forced (split
//            jobs streamed through a block an SM, or a block per job pair), the 512-position
//            split, the fast mode's split and the mma.sync kernels (the same bits), each timed
//            as CUDA graph replays (GPU time) and ours also as eager launches
// Timing: CUDA events around batches of launches, median of 5; inputs rotated among copies
// that together exceed 3x the L2 where memory allows (the small decode cases still fit in L2).
// Inputs are random (never zeros).
//
// Usage: attention_bench [--quick | --prefill | --prefill-all | --decode | --decode-key]
// (--prefill: the 1 x 4096 GQA prefill case only; --prefill-all: the three prefill cases;
// --decode: decode only; --decode-key: decode at b = 1, 2, 4, 8, 32, 256, graph replays of the
// paths and the 512 split only)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"
#include "timing.h"

namespace {

using bx::bench::median_us;
using bx::cuda::check_cuda;
using bx::cuda::DeviceBuffer;

constexpr int kHeads = 32, kDh = 128, kBlock = 16;
constexpr size_t kRotateBytes = size_t{160} << 20;  // > 3x the 50 MB L2

// A paged cache of n_seq sequences of len positions each (consecutive blocks), random bf16.
struct Cache {
  DeviceBuffer k, v, tables;
  bx::cuda::PagedKv kv;
  Cache(int64_t n_seq, int64_t len, int n_kv) {
    const int64_t blocks_per_seq = (len + kBlock - 1) / kBlock;
    const int64_t n_blocks = n_seq * blocks_per_seq;
    const int64_t elems = n_blocks * kBlock * n_kv * kDh;
    k = DeviceBuffer(static_cast<size_t>(elems) * 2);
    v = DeviceBuffer(static_cast<size_t>(elems) * 2);
    bx::cuda::fill_uniform_bf16(k.get<uint16_t>(), elems, 11, -1, 1, nullptr);
    bx::cuda::fill_uniform_bf16(v.get<uint16_t>(), elems, 12, -1, 1, nullptr);
    std::vector<int32_t> t(static_cast<size_t>(n_blocks));
    std::iota(t.begin(), t.end(), 0);
    tables = DeviceBuffer(t.size() * 4);
    tables.upload(t.data(), t.size() * 4);
    kv = bx::cuda::PagedKv{k.get<uint16_t>(), v.get<uint16_t>(), n_blocks, kBlock, n_kv, kDh};
  }
};

struct Batch {
  std::vector<int32_t> pos, off;
  DeviceBuffer dpos, doff;
  bx::cuda::AttentionPlanner planner;
  bx::cuda::DeviceBatch batch;
  void upload(const int32_t* tables) {
    dpos = DeviceBuffer(pos.size() * 4);
    doff = DeviceBuffer(off.size() * 4);
    dpos.upload(pos.data(), pos.size() * 4);
    doff.upload(off.data(), off.size() * 4);
    batch = bx::cuda::DeviceBatch{dpos.get<int32_t>(), doff.get<int32_t>(), tables,
                                  static_cast<int64_t>(pos.size())};
    planner.build(pos.data(), off.data(), static_cast<int64_t>(pos.size()));
  }
};

bx::cuda::AttentionArgs args_for(const Cache& c, const Batch& b, const float* q, float* out,
                                 float* workspace, int64_t workspace_floats) {
  bx::cuda::AttentionArgs a;
  a.q = q;
  a.q_stride = kHeads * kDh;
  a.out = out;
  a.out_stride = kHeads * kDh;
  a.n_heads = kHeads;
  a.scale = 1.0f / std::sqrt(static_cast<float>(kDh));
  a.kv = c.kv;
  a.batch = b.batch;
  a.plan = b.planner.plan();
  a.workspace = workspace;
  a.workspace_floats = workspace_floats;
  return a;
}

// n_seq causal prompts of T tokens each, every one a whole sequence from position 0.
void prefill(int64_t n_seq, int64_t T, int n_kv) {
  Cache cache(n_seq, T, n_kv);
  const int64_t blocks_per_seq = (T + kBlock - 1) / kBlock;
  Batch b;
  for (int64_t s = 0; s < n_seq; ++s) {
    for (int64_t t = 0; t < T; ++t) {
      b.pos.push_back(static_cast<int32_t>(t));
      b.off.push_back(static_cast<int32_t>(s * blocks_per_seq));
    }
  }
  b.upload(cache.tables.get<int32_t>());
  const int64_t rows = n_seq * T;
  DeviceBuffer q(static_cast<size_t>(rows) * kHeads * kDh * 4), out(q.bytes());
  bx::cuda::fill_uniform_f32(q.get<float>(), rows * kHeads * kDh, 13, -1, 1, nullptr);
  bx::cuda::AttentionArgs a = args_for(cache, b, q.get<float>(), out.get<float>(), nullptr, 0);
  const double flops = 4.0 * static_cast<double>(n_seq * T * T * kHeads * kDh) / 2;
  struct Variant {
    bool mma_sync, ping_pong, k3;
    int split;
    const char* name;
  };
  // (The default cuda-k2 kernels first, the opt-in k3 ones after; ping-pong, newest, last.)
  for (const Variant v :
       {Variant{false, false, false, bx::cuda::kAttentionSplit, "wgmma, cuda-k2 (default)"},
        Variant{true, false, false, bx::cuda::kAttentionSplit, "mma.sync, cuda-k2"},
        Variant{false, false, true, bx::cuda::kAttentionSplitK3, "wgmma k3, side by side"},
        Variant{false, true, true, bx::cuda::kAttentionSplitK3, "wgmma k3, ping-pong"}}) {
    a.mma_sync = v.mma_sync;
    a.ping_pong = v.ping_pong;
    a.k3 = v.k3;
    a.split = v.split;
    const double us = median_us([&](int) { bx::cuda::attention(a, nullptr); }, 1);
    std::printf("| prefill %lldx%lld causal (%s) | %d | %d | %.1f | %.0f |\n",
                static_cast<long long>(n_seq), static_cast<long long>(T), v.name, kHeads, n_kv, us,
                flops / (us * 1e-6) / 1e12);
  }
}

void decode(int64_t batch, int64_t ctx, double bandwidth, bool key_only) {
  const int n_kv = 8;
  const double kv_bytes = static_cast<double>(batch * ctx * n_kv * kDh * 2 * 2);
  const int rotations = static_cast<int>(
      std::clamp<double>(std::ceil(static_cast<double>(kRotateBytes) / kv_bytes), 1, 16));
  Cache cache(batch * rotations, ctx, n_kv);
  const int64_t blocks_per_seq = (ctx + kBlock - 1) / kBlock;
  std::vector<Batch> batches(static_cast<size_t>(rotations));
  for (int r = 0; r < rotations; ++r) {
    for (int64_t i = 0; i < batch; ++i) {
      batches[static_cast<size_t>(r)].pos.push_back(static_cast<int32_t>(ctx - 1));
      batches[static_cast<size_t>(r)].off.push_back(
          static_cast<int32_t>((r * batch + i) * blocks_per_seq));
    }
    batches[static_cast<size_t>(r)].upload(cache.tables.get<int32_t>());
  }
  DeviceBuffer q(static_cast<size_t>(batch) * kHeads * kDh * 4), out(q.bytes());
  bx::cuda::fill_uniform_f32(q.get<float>(), batch * kHeads * kDh, 14, -1, 1, nullptr);
  const int64_t ws_floats = (int64_t{64} << 20) / 4;
  DeviceBuffer ws(static_cast<size_t>(ws_floats) * 4);
  auto args_of = [&](int r, bool workspace, bool fast, bool mma_sync = false,
                     bx::cuda::DecodePath path = bx::cuda::DecodePath::by_batch, int split = 0,
                     bool stream_jobs = true) {
    bx::cuda::AttentionArgs a =
        args_for(cache, batches[static_cast<size_t>(r)], q.get<float>(), out.get<float>(),
                 workspace ? ws.get<float>() : nullptr, workspace ? ws_floats : 0);
    // The opt-in k3 kernels, split 128 (split > 0: the default cuda-k2 kernels at that split).
    a.k3 = split == 0;
    a.split = bx::cuda::kAttentionSplitK3;
    if (fast) a.split = bx::cuda::conventional_split(a.plan, n_kv);
    if (split > 0) a.split = split;
    a.mma_sync = mma_sync;
    a.decode_path = path;
    a.stream_split_jobs = stream_jobs;
    return a;
  };
  auto eager = [&](bool workspace, bool fast) {
    return median_us([&](int r) { bx::cuda::attention(args_of(r, workspace, fast), nullptr); },
                     rotations);
  };
  // The same launches captured once per rotation as a CUDA graph and replayed: the GPU time
  // without the host's launch overhead (as a graph-launching engine would see it).
  auto graphed = [&](bool workspace, bool fast, bool mma_sync = false,
                     bx::cuda::DecodePath path = bx::cuda::DecodePath::by_batch, int split = 0,
                     bool stream_jobs = true) {
    cudaStream_t stream;
    check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
    std::vector<cudaGraphExec_t> execs;
    for (int r = 0; r < rotations; ++r) {
      bx::cuda::attention(args_of(r, workspace, fast, mma_sync, path, split, stream_jobs),
                          stream);  // setup
      cudaGraph_t graph;
      check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
      bx::cuda::attention(args_of(r, workspace, fast, mma_sync, path, split, stream_jobs), stream);
      check_cuda(cudaStreamEndCapture(stream, &graph), "capture");
      cudaGraphExec_t exec;
      check_cuda(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
      cudaGraphDestroy(graph);
      execs.push_back(exec);
    }
    const double us = median_us(
        [&](int r) {
          check_cuda(cudaGraphLaunch(execs[static_cast<size_t>(r)], stream), "cudaGraphLaunch");
        },
        rotations);
    check_cuda(cudaStreamSynchronize(stream), "sync");
    for (cudaGraphExec_t e : execs) cudaGraphExecDestroy(e);
    cudaStreamDestroy(stream);
    return us;
  };
  const bool split_path = bx::cuda::attention_uses_split_partials(args_of(0, true, false));
  // key_only: the backend's path, each path forced and the 512 split (the rest print as nan).
  const double nan = std::nan("");
  const double ours_graph = graphed(true, false);
  const double ours_eager = key_only ? nan : eager(true, false);
  const double walk_graph = graphed(false, false);
  const double fast_graph = key_only ? nan : graphed(true, true);
  const double split_graph = graphed(true, false, false, bx::cuda::DecodePath::split_partials);
  const double pairs_graph =
      graphed(true, false, false, bx::cuda::DecodePath::split_partials, 0, false);
  const double k2_graph = graphed(true, false, false, bx::cuda::DecodePath::by_batch, 512);
  const bool mma_split = bx::cuda::attention_uses_split_partials(args_of(0, true, false, true));
  const double mma_graph = key_only ? nan : graphed(true, false, true);
  const double floor_us = kv_bytes / bandwidth * 1e6;
  std::printf(
      "| decode b=%lld ctx=%lld | %.1f | %.2f | %s %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f "
      "| %s %.1f | %.2f |\n",
      static_cast<long long>(batch), static_cast<long long>(ctx), kv_bytes / 1e6, floor_us,
      split_path ? "split" : "walk", ours_graph, ours_eager, split_graph, pairs_graph, walk_graph,
      k2_graph, fast_graph, mma_split ? "split" : "walk", mma_graph, floor_us / ours_graph);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool prefill_only = argc > 1 && std::strcmp(argv[1], "--prefill") == 0;
  const bool prefills_only = argc > 1 && std::strcmp(argv[1], "--prefill-all") == 0;
  const bool decode_key = argc > 1 && std::strcmp(argv[1], "--decode-key") == 0;
  const bool decode_only = decode_key || (argc > 1 && std::strcmp(argv[1], "--decode") == 0);
  if (!bx::bench::report_device("attention_bench")) return 0;
  const double bandwidth = bx::bench::copy_bandwidth();
  std::printf("ceiling: copy %.2f TB/s (1 GiB, read+write)\n\n", bandwidth / 1e12);

  if (!decode_only) {
    std::printf("| attention | q heads | kv heads | us | TFLOP/s |\n|---|---|---|---|---|\n");
    prefill(1, 4096, 8);
    if (prefill_only) return 0;
    prefill(1, 4096, 32);
    prefill(8, 1024, 8);
    if (prefills_only) return 0;
  }
  std::printf(
      "\n| decode (32 q / 8 kv heads, d128) | KV MB | floor us | ours us, graph (path) | "
      "ours us, eager | split us, graph | split, a block per job pair us, graph | walk us, graph "
      "| cuda-k2 default (split 512) us, graph | fast mode us, graph | mma.sync kernel us, graph "
      "(path) | floor/ours |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const std::vector<int64_t> batches = quick ? std::vector<int64_t>{1, 8, 32, 256}
                                       : decode_key
                                           ? std::vector<int64_t>{1, 2, 4, 8, 32, 256}
                                           : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 128, 256};
  const std::vector<int64_t> ctxs =
      quick ? std::vector<int64_t>{512, 8192} : std::vector<int64_t>{512, 2048, 8192};
  for (int64_t b : batches) {
    for (int64_t ctx : ctxs) decode(b, ctx, bandwidth, decode_key);
  }
  return 0;
}
