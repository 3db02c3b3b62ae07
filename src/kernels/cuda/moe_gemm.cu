// The grouped expert GEMM (moe_steps.h grouped_gemm): mma.sync m16n8k16 tiles fed by a cp.async
// pipeline, one block per (output column tile, row tile of the device tile list).
//
// Block (blockIdx.x, blockIdx.y): row tile i = blockIdx.y of the grouping (blocks past *n_tiles
// exit at once), expert e = tile_expert[i], rows [tile_row0[i], + min(BM, offsets[e+1] - row0)).
// A stage holds BM rows of a (each the row a_rows names; zeros past the tile's rows or past K)
// and BN rows of W (plain: expert e's rows n0 .. n0 + BN; gated: BN/2 gate rows then the same
// BN/2 up rows), kBK = 64 columns each, as 16-byte chunks at slot r * 8 + (chunk ^ (r % 8)).
// The K loop walks stages in increasing k, inside a stage the four 16-wide slices in increasing
// k: every element is one chain of mma k16 steps from +0 (gemm.h's order; K is padded to 64 with
// zeros as there). A warp owns kWarpM x kWarpN outputs as 16x8 fragments; gated, its first half
// of fragments are gate chains and the second half the up chains of the same outputs, so the
// epilogue forms silu(g) * u in registers.
//
// split_k_by_count (the control): the stages are cut into 1 + n_e % 3 runs of equal length,
// each run a chain from +0, the runs' results added in order.
#include <mutex>
#include <string>

#include <cuda_bf16.h>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kBK = 64;
constexpr int kChunks = kBK / 8;  // 16-byte chunks per tile row

__device__ __forceinline__ int slot(int row, int chunk) {
  return row * kChunks + (chunk ^ (row & 7));
}

// F.silu(g) * u as rows.cu's silu_mul evaluates it (same compilation flags).
__device__ __forceinline__ float silu_times(float g, float u) {
  return (g / (1.0f + expf(-g))) * u;
}

template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int STAGES_>
struct Config {
  static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
  static constexpr int STAGES = STAGES_;
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;
  static constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;
  static constexpr int kStageSlots = (BM + BN) * kChunks;
  static constexpr int kSmemBytes = STAGES * kStageSlots * 16;
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "warp tiles of whole fragment pairs");
};

using Small = Config<16, 64, 1, 4, 4>;    // decode: few rows per expert, many column tiles
using Medium = Config<64, 128, 2, 2, 3>;  // tens of rows per expert
using Large = Config<128, 128, 2, 4, 3>;  // prefill

struct Params {
  GroupedGemm a;
  Grouping g;
};

template <typename C, bool kGated, bool kSplit>
__global__ void __launch_bounds__(C::kThreads) grouped_gemm_kernel(const Params p) {
  constexpr int BM = C::BM, BN = C::BN;
  constexpr int kFragsM = C::kFragsM, kFragsN = C::kFragsN;
  constexpr int kOutCols = kGated ? BN / 2 : BN;
  extern __shared__ __align__(128) uint4 smem[];
  __shared__ int64_t a_row_offset[BM];  // element offset of tile row r in a, or -1
  begin_step();
  const GroupedGemm& a = p.a;
  const int tile = static_cast<int>(blockIdx.y);
  if (tile >= *p.g.n_tiles) return;
  const int e = p.g.tile_expert[tile];
  const int row0 = p.g.tile_row0[tile];
  const int end = p.g.offsets[e + 1];
  const int rows = min(BM, end - row0);
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / C::WARPS_N, warp_n = warp % C::WARPS_N;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kOutCols;
  const int k_tiles = static_cast<int>((a.K + kBK - 1) / kBK);
  const uint32_t smem_base = ptx::smem_address(smem);

  for (int r = tid; r < BM; r += C::kThreads) {
    int64_t off = -1;
    if (r < rows) {
      const int64_t src = a.a_rows != nullptr ? a.a_rows[row0 + r] : row0 + r;
      off = src * a.a_stride;
    }
    a_row_offset[r] = off;
  }
  __syncthreads();

  const int64_t w_first = static_cast<int64_t>(e) * a.N;  // expert e's first weight row
  auto load_stage = [&](int stage, int kt) {
    const uint32_t base = smem_base + static_cast<uint32_t>(stage * C::kStageSlots * 16);
    const int64_t k0 = static_cast<int64_t>(kt) * kBK;
    for (int i = tid; i < (BM + BN) * kChunks; i += C::kThreads) {
      const int r = i / kChunks;
      const int c = i % kChunks;
      const int64_t k = k0 + c * 8;
      const uint16_t* src = a.a;
      bool valid = false;
      if (r < BM) {
        const int64_t off = a_row_offset[r];
        valid = off >= 0 && k < a.K;
        if (valid) src = a.a + off + k;
      } else {
        const int rr = r - BM;
        const uint16_t* w = a.w;
        int64_t n = n0 + rr;
        if constexpr (kGated) {
          if (rr >= BN / 2) {
            w = a.w_up;
            n = n0 + rr - BN / 2;
          }
        }
        valid = n < a.N && k < a.K;
        if (valid) src = w + (w_first + n) * a.w_stride + k;
      }
      ptx::cp_async_16(base + static_cast<uint32_t>(slot(r, c) * 16), src, valid);
    }
  };

  float acc[kFragsM][kFragsN][4];
  float total[kSplit ? kFragsM : 1][kSplit ? kFragsN : 1][4];
#pragma unroll
  for (int i = 0; i < kFragsM; ++i)
#pragma unroll
    for (int j = 0; j < kFragsN; ++j)
#pragma unroll
      for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;

  // The W tile row of fragment ni for this warp (gated: gate fragments, then up fragments).
  auto b_row = [&](int ni) {
    if constexpr (kGated) {
      constexpr int half = kFragsN / 2;
      const int in_half = warp_n * (C::kWarpN / 2) + (ni % half) * 8;
      return ni < half ? in_half : BN / 2 + in_half;
    } else {
      return warp_n * C::kWarpN + ni * 8;
    }
  };

  auto compute_stage = [&](int stage) {
    const uint32_t base = smem_base + static_cast<uint32_t>(stage * C::kStageSlots * 16);
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[kFragsM][4];
#pragma unroll
      for (int mi = 0; mi < kFragsM; ++mi) {
        const int row = warp_m * C::kWarpM + mi * 16 + (lane & 15);
        const int chunk = kk * 2 + (lane >> 4);
        ptx::ldmatrix_x4(base + static_cast<uint32_t>(slot(row, chunk) * 16), af[mi][0], af[mi][1],
                         af[mi][2], af[mi][3]);
      }
      uint32_t bf[kFragsN][2];
#pragma unroll
      for (int ni = 0; ni < kFragsN; ++ni) {
        const int row = BM + b_row(ni) + (lane & 7);
        const int chunk = kk * 2 + ((lane >> 3) & 1);
        ptx::ldmatrix_x2(base + static_cast<uint32_t>(slot(row, chunk) * 16), bf[ni][0], bf[ni][1]);
      }
#pragma unroll
      for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
        for (int ni = 0; ni < kFragsN; ++ni)
          ptx::mma_bf16_m16n8k16(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }
  };

  int run_stages = k_tiles;  // stages per run of the split control
  if constexpr (kSplit) {
    const int splits = 1 + (end - p.g.offsets[e]) % 3;
    run_stages = (k_tiles + splits - 1) / splits;
  }

#pragma unroll
  for (int s = 0; s < C::STAGES - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    ptx::cp_async_commit();
  }
  for (int i = 0; i < k_tiles; ++i) {
    ptx::cp_async_wait<C::STAGES - 2>();
    __syncthreads();
    const int next = i + C::STAGES - 1;
    if (next < k_tiles) load_stage(next % C::STAGES, next);
    ptx::cp_async_commit();
    compute_stage(i % C::STAGES);
    if constexpr (kSplit) {
      if ((i + 1) % run_stages == 0 || i + 1 == k_tiles) {
        const bool first_run = i + 1 <= run_stages;
#pragma unroll
        for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
          for (int ni = 0; ni < kFragsN; ++ni)
#pragma unroll
            for (int v = 0; v < 4; ++v) {
              total[mi][ni][v] = first_run ? acc[mi][ni][v] : total[mi][ni][v] + acc[mi][ni][v];
              acc[mi][ni][v] = 0.0f;
            }
      }
    }
  }
  ptx::cp_async_wait<0>();
  if constexpr (kSplit) {
#pragma unroll
    for (int mi = 0; mi < kFragsM; ++mi)
#pragma unroll
      for (int ni = 0; ni < kFragsN; ++ni)
#pragma unroll
        for (int v = 0; v < 4; ++v) acc[mi][ni][v] = total[mi][ni][v];
  }

  // Fragment element v of (mi, ni): row lane/4 (+8 for v >= 2), column 2 (lane % 4) (+1, odd v).
  if constexpr (kGated) {
    constexpr int half = kFragsN / 2;
    const int64_t n_padded = (a.N + 7) / 8 * 8;
#pragma unroll
    for (int mi = 0; mi < kFragsM; ++mi) {
#pragma unroll
      for (int ni = 0; ni < half; ++ni) {
        const int64_t col = n0 + warp_n * (C::kWarpN / 2) + ni * 8 + (lane & 3) * 2;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = warp_m * C::kWarpM + mi * 16 + (lane >> 2) + h * 8;
          if (r >= rows) continue;
          uint16_t* out = a.act + static_cast<int64_t>(row0 + r) * a.y_stride;
#pragma unroll
          for (int v = 0; v < 2; ++v) {
            const int64_t c = col + v;
            if (c >= n_padded) continue;
            const float value =
                c < a.N ? silu_times(acc[mi][ni][h * 2 + v], acc[mi][ni + half][h * 2 + v]) : 0.0f;
            out[c] = __bfloat16_as_ushort(__float2bfloat16_rn(value));
          }
        }
      }
    }
  } else {
#pragma unroll
    for (int mi = 0; mi < kFragsM; ++mi) {
#pragma unroll
      for (int ni = 0; ni < kFragsN; ++ni) {
        const int64_t col = n0 + warp_n * C::kWarpN + ni * 8 + (lane & 3) * 2;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = warp_m * C::kWarpM + mi * 16 + (lane >> 2) + h * 8;
          if (r >= rows) continue;
          float* out = a.y + static_cast<int64_t>(row0 + r) * a.y_stride;
#pragma unroll
          for (int v = 0; v < 2; ++v) {
            if (col + v < a.N) out[col + v] = acc[mi][ni][h * 2 + v];
          }
        }
      }
    }
  }
}

template <typename C, bool kGated, bool kSplit>
void launch(const Params& p, cudaStream_t stream, bool early_start) {
  constexpr int out_cols = kGated ? C::BN / 2 : C::BN;
  const int64_t cols = kGated ? (p.a.N + 7) / 8 * 8 : p.a.N;
  const dim3 grid(static_cast<unsigned>((cols + out_cols - 1) / out_cols),
                  static_cast<unsigned>(max_tiles(p.a.slots, p.a.n_experts, C::BM)));
  auto kernel = grouped_gemm_kernel<C, kGated, kSplit>;
  static std::once_flag configured;  // raise the dynamic shared memory limit once per kernel
  std::call_once(configured, [&] {
    check_cuda(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes),
        "moe grouped_gemm: cudaFuncSetAttribute");
  });
  launch_step(kernel, grid, dim3(C::kThreads), C::kSmemBytes, stream, early_start,
              "moe grouped_gemm_kernel", p);
}

template <typename C>
void launch_config(const Params& p, cudaStream_t stream, bool early_start) {
  const bool gated = p.a.w_up != nullptr;
  const bool split = p.a.order == MoeExpertOrder::split_k_by_count;
  if (gated) {
    split ? launch<C, true, true>(p, stream, early_start)
          : launch<C, true, false>(p, stream, early_start);
  } else {
    split ? launch<C, false, true>(p, stream, early_start)
          : launch<C, false, false>(p, stream, early_start);
  }
}

}  // namespace

void grouped_gemm(const GroupedGemm& args, const Grouping& g, int bm, cudaStream_t stream,
                  bool early_start) {
  BX_CHECK(args.K > 0 && args.K % 8 == 0 && args.a_stride % 8 == 0 && args.w_stride % 8 == 0 &&
               args.a_stride >= args.K && args.w_stride >= args.K,
           "moe grouped_gemm: K = " + std::to_string(args.K) + ", strides " +
               std::to_string(args.a_stride) + " and " + std::to_string(args.w_stride) +
               ": expected K a positive multiple of 8 and strides multiples of 8 of at least K");
  BX_CHECK((args.w_up != nullptr) == (args.act != nullptr) &&
               (args.w_up != nullptr || args.y != nullptr),
           "moe grouped_gemm: a gated GEMM writes act, a plain one y");
  if (args.slots == 0 || args.N == 0) return;
  const Params p{args, g};
  switch (bm) {
    case Small::BM:
      launch_config<Small>(p, stream, early_start);
      return;
    case Medium::BM:
      launch_config<Medium>(p, stream, early_start);
      return;
    case Large::BM:
      launch_config<Large>(p, stream, early_start);
      return;
    default:
      throw Error("moe grouped_gemm: no tile of " + std::to_string(bm) + " rows");
  }
}

}  // namespace bx::cuda::moe
