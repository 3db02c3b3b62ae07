// The invariant bf16 GEMM (gemm.h): mma.sync m16n8k16 tiles fed by a cp.async pipeline.
//
// A block computes a BM x BN tile of y; its warps split the tile (WARPS_M x WARPS_N), each warp
// owning (BM / WARPS_M) x (BN / WARPS_N) outputs as 16x8 mma fragments. The K loop walks stages of
// kBK = 64 columns in increasing k, and inside a stage the four 16-wide slices in increasing k,
// so every fragment receives the mma chain of gemm.h whatever the tile shape. Register schedule:
// after the last stage of each kGemmKSplit split, total += acc and acc restarts from +0. Split
// schedule: blockIdx.z is the split, the block walks only its stages and stores acc to the
// workspace; sum_splits_kernel then forms total in split order.
//
// Shared memory per stage: BM rows of x then BN rows of W, each row kBK bf16 = 8 chunks of 16
// bytes; chunk c of row r sits at slot r * 8 + (c ^ (r % 8)) so that the 8 rows one ldmatrix
// reads fall in different banks.
#include <mutex>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/mma.cuh"

namespace bx::cuda {
namespace {

constexpr int kBK = 64;
constexpr int kChunks = kBK / 8;  // 16-byte chunks per tile row
constexpr int kTilesPerSplit = static_cast<int>(kGemmKSplit / kBK);
static_assert(kGemmKSplit % kBK == 0, "a K split must be whole pipeline stages");

__device__ __forceinline__ int slot(int row, int chunk) {
  return row * kChunks + (chunk ^ (row & 7));
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
struct TileShape {
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int kWarpM = BM / WARPS_M;
  static constexpr int kWarpN = BN / WARPS_N;
  static constexpr int kFragsM = kWarpM / 16;
  static constexpr int kFragsN = kWarpN / 8;
  static constexpr int kStageSlots = (BM + BN) * kChunks;
  static constexpr int kSmemBytes = STAGES * kStageSlots * 16;
  static_assert(kWarpM % 16 == 0 && kWarpN % 8 == 0, "warp tile must hold whole fragments");
};

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
__global__ void __launch_bounds__(WARPS_M* WARPS_N * 32)
    gemm_bf16_kernel(const GemmArgs args, float* partials) {
  using S = TileShape<BM, BN, WARPS_M, WARPS_N, STAGES>;
  extern __shared__ __align__(128) uint4 smem[];
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m = warp / WARPS_N;
  const int warp_n = warp % WARPS_N;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int k_tiles_total = static_cast<int>((args.K + kBK - 1) / kBK);
  // The register schedule walks every stage; the split schedule only those of split blockIdx.z.
  const int kt_begin = partials == nullptr ? 0 : static_cast<int>(blockIdx.z) * kTilesPerSplit;
  const int kt_end =
      partials == nullptr ? k_tiles_total : min(kt_begin + kTilesPerSplit, k_tiles_total);
  const int k_tiles = kt_end - kt_begin;
  const uint32_t smem_base = ptx::smem_address(smem);

  // Stage `stage` <- x[m0 .. m0+BM, k0 .. k0+kBK) and W[n0 .. n0+BN, same k]; zeros outside.
  auto load_stage = [&](int stage, int kt) {
    const uint32_t base = smem_base + static_cast<uint32_t>(stage * S::kStageSlots * 16);
    const int64_t k0 = static_cast<int64_t>(kt) * kBK;
    for (int i = tid; i < (BM + BN) * kChunks; i += S::kThreads) {
      const int r = i / kChunks;
      const int c = i % kChunks;
      const int64_t k = k0 + c * 8;
      const uint16_t* src;
      bool valid;
      if (r < BM) {
        const int64_t m = m0 + r;
        valid = m < args.M && k < args.K;
        src = valid ? args.x + m * args.x_stride + k : args.x;
      } else {
        const int64_t n = n0 + (r - BM);
        valid = n < args.N && k < args.K;
        src = valid ? args.w + n * args.w_stride + k : args.w;
      }
      ptx::cp_async_16(base + static_cast<uint32_t>(slot(r, c) * 16), src, valid);
    }
  };

  float acc[S::kFragsM][S::kFragsN][4];
  float total[S::kFragsM][S::kFragsN][4];
#pragma unroll
  for (int i = 0; i < S::kFragsM; ++i)
#pragma unroll
    for (int j = 0; j < S::kFragsN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = total[i][j][e] = 0.0f;

  // acc += x_tile[:, 16 slices in increasing k] @ W_tile^T, one mma per (fragment, slice).
  auto compute_stage = [&](int stage) {
    const uint32_t base = smem_base + static_cast<uint32_t>(stage * S::kStageSlots * 16);
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t a[S::kFragsM][4];
#pragma unroll
      for (int mi = 0; mi < S::kFragsM; ++mi) {
        const int row = warp_m * S::kWarpM + mi * 16 + (lane & 15);
        const int chunk = kk * 2 + (lane >> 4);
        ptx::ldmatrix_x4(base + static_cast<uint32_t>(slot(row, chunk) * 16), a[mi][0], a[mi][1],
                         a[mi][2], a[mi][3]);
      }
      uint32_t b[S::kFragsN][2];
      if constexpr (S::kFragsN % 2 == 0) {
#pragma unroll
        for (int ni = 0; ni < S::kFragsN; ni += 2) {
          const int row = BM + warp_n * S::kWarpN + ni * 8 + (lane & 7) + ((lane >> 4) << 3);
          const int chunk = kk * 2 + ((lane >> 3) & 1);
          ptx::ldmatrix_x4(base + static_cast<uint32_t>(slot(row, chunk) * 16), b[ni][0], b[ni][1],
                           b[ni + 1][0], b[ni + 1][1]);
        }
      } else {
#pragma unroll
        for (int ni = 0; ni < S::kFragsN; ++ni) {
          const int row = BM + warp_n * S::kWarpN + ni * 8 + (lane & 7);
          const int chunk = kk * 2 + ((lane >> 3) & 1);
          ptx::ldmatrix_x2(base + static_cast<uint32_t>(slot(row, chunk) * 16), b[ni][0], b[ni][1]);
        }
      }
#pragma unroll
      for (int mi = 0; mi < S::kFragsM; ++mi)
#pragma unroll
        for (int ni = 0; ni < S::kFragsN; ++ni)
          ptx::mma_bf16_m16n8k16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    }
  };

  // Pipeline: STAGES - 1 stages in flight ahead of the one being multiplied.
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < k_tiles) load_stage(s, kt_begin + s);
    ptx::cp_async_commit();
  }
  // Outer loop: the splits (one in the split schedule); inner: the stages of one split. Stage
  // loads run STAGES - 1 ahead across split boundaries.
  for (int split_begin = 0; split_begin < k_tiles; split_begin += kTilesPerSplit) {
    const int split_end = min(split_begin + kTilesPerSplit, k_tiles);
    for (int i = split_begin; i < split_end; ++i) {
      ptx::cp_async_wait<STAGES - 2>();
      __syncthreads();  // stage i landed for all threads; stage i - 1 is no longer read
      const int next = i + STAGES - 1;
      if (next < k_tiles) load_stage(next % STAGES, kt_begin + next);
      ptx::cp_async_commit();
      compute_stage(i % STAGES);
    }
#pragma unroll
    for (int a = 0; a < S::kFragsM; ++a)
#pragma unroll
      for (int b = 0; b < S::kFragsN; ++b)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          total[a][b][e] = total[a][b][e] + acc[a][b][e];
          acc[a][b][e] = 0.0f;
        }
  }
  ptx::cp_async_wait<0>();

  // Epilogue: fragment element e of (mi, ni) is row lane/4 (+8 for e >= 2), column 2*(lane%4)
  // (+1 for odd e) of the 16x8 fragment.
#pragma unroll
  for (int mi = 0; mi < S::kFragsM; ++mi) {
#pragma unroll
    for (int ni = 0; ni < S::kFragsN; ++ni) {
      const int64_t col = n0 + warp_n * S::kWarpN + ni * 8 + (lane & 3) * 2;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t row = m0 + warp_m * S::kWarpM + mi * 16 + (lane >> 2) + half * 8;
        if (row >= args.M) continue;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (col + e >= args.N) continue;
          if (partials != nullptr) {
            // +0 + acc of split blockIdx.z: the same value acc except that -0 becomes +0, which
            // cannot change total (total starts at +0, so it is never -0).
            partials[(static_cast<int64_t>(blockIdx.z) * args.M + row) * args.N + col + e] =
                total[mi][ni][half * 2 + e];
          } else {
            float* out = args.y + row * args.y_stride + col + e;
            const float v = total[mi][ni][half * 2 + e];
            *out = args.accumulate ? *out + v : v;
          }
        }
      }
    }
  }
}

// total = sum of the splits' partials in split order, then the epilogue of gemm.h.
__global__ void sum_splits_kernel(const GemmArgs args, const float* partials, int splits) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= args.M * args.N) return;
  const int64_t m = i / args.N, n = i % args.N;
  float total = 0.0f;
  for (int s = 0; s < splits; ++s) total = total + partials[(s * args.M + m) * args.N + n];
  float* out = args.y + m * args.y_stride + n;
  *out = args.accumulate ? *out + total : total;
}

int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device),
               "cudaDeviceGetAttribute");
    return n;
  }();
  return count;
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
void launch(const GemmArgs& args, cudaStream_t stream, GemmSchedule schedule) {
  using S = TileShape<BM, BN, WARPS_M, WARPS_N, STAGES>;
  auto* kernel = gemm_bf16_kernel<BM, BN, WARPS_M, WARPS_N, STAGES>;
  static std::once_flag configured;
  std::call_once(configured, [&] {
    check_cuda(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes),
        "gemm_bf16: cudaFuncSetAttribute");
  });
  const int64_t tiles = (args.N + BN - 1) / BN * ((args.M + BM - 1) / BM);
  const int64_t splits = (args.K + kGemmKSplit - 1) / kGemmKSplit;
  const bool room = args.workspace != nullptr &&
                    args.workspace_floats >= gemm_workspace_floats(args.M, args.N, args.K);
  BX_CHECK(schedule != GemmSchedule::splits || room,
           "gemm_bf16: the split schedule needs a workspace of " +
               std::to_string(gemm_workspace_floats(args.M, args.N, args.K)) + " floats");
  // K == 0 has no split to add: the register schedule writes the zeros.
  const bool use_splits =
      splits > 0 && (schedule == GemmSchedule::splits ||
                     (schedule == GemmSchedule::automatic && room && splits > 1 &&
                      tiles < 2 * static_cast<int64_t>(sm_count())));
  const dim3 grid(static_cast<unsigned>((args.N + BN - 1) / BN),
                  static_cast<unsigned>((args.M + BM - 1) / BM),
                  use_splits ? static_cast<unsigned>(splits) : 1u);
  kernel<<<grid, S::kThreads, S::kSmemBytes, stream>>>(args, use_splits ? args.workspace : nullptr);
  check_launch("gemm_bf16_kernel");
  if (use_splits) {
    const int64_t outputs = args.M * args.N;
    sum_splits_kernel<<<static_cast<unsigned>((outputs + 255) / 256), 256, 0, stream>>>(
        args, args.workspace, static_cast<int>(splits));
    check_launch("sum_splits_kernel");
  }
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

void validate(const GemmArgs& a) {
  BX_CHECK(a.M >= 0 && a.N >= 0 && a.K >= 0, "gemm_bf16: M, N, K must be >= 0, got " +
                                                 std::to_string(a.M) + ", " + std::to_string(a.N) +
                                                 ", " + std::to_string(a.K));
  BX_CHECK(a.K % 8 == 0, "gemm_bf16: K = " + std::to_string(a.K) +
                             " must be a multiple of 8 (pad rows with zeros)");
  BX_CHECK(a.x_stride >= a.K && a.w_stride >= a.K && a.y_stride >= a.N,
           "gemm_bf16: a row stride is below its row length");
  BX_CHECK(a.x_stride % 8 == 0 && a.w_stride % 8 == 0,
           "gemm_bf16: x and W row strides must be multiples of 8 elements, got " +
               std::to_string(a.x_stride) + " and " + std::to_string(a.w_stride));
  BX_CHECK(aligned16(a.x) && aligned16(a.w), "gemm_bf16: x and W must be 16-byte aligned");
  BX_CHECK(a.M == 0 || a.N == 0 || a.y != nullptr, "gemm_bf16: y is null");
  BX_CHECK(a.M == 0 || a.N == 0 || a.K == 0 || (a.x != nullptr && a.w != nullptr),
           "gemm_bf16: x or W is null");
}

}  // namespace

void gemm_bf16(const GemmArgs& args, cudaStream_t stream, GemmTile tile, GemmSchedule schedule) {
  validate(args);
  if (args.M == 0 || args.N == 0) return;
  if (tile == GemmTile::automatic) {
    const bool wide = args.N >= 16384;
    tile = args.M <= 16    ? GemmTile::t16x32
           : args.M <= 64  ? (wide ? GemmTile::t64x128 : GemmTile::t64x32)
           : args.M <= 128 ? (wide ? GemmTile::t128x128w16 : GemmTile::t64x32)
                           : GemmTile::t128x128w16;
  }
  // <BM, BN, warps along M, warps along N, pipeline stages>
  switch (tile) {
    case GemmTile::t16x32:
      launch<16, 32, 1, 4, 6>(args, stream, schedule);
      break;
    case GemmTile::t64x32:
      launch<64, 32, 2, 2, 4>(args, stream, schedule);
      break;
    case GemmTile::t64x128:
      launch<64, 128, 2, 4, 4>(args, stream, schedule);
      break;
    case GemmTile::t128x128w16:
      launch<128, 128, 4, 4, 3>(args, stream, schedule);
      break;
    default:
      launch<128, 128, 2, 4, 3>(args, stream, schedule);
      break;
  }
}

}  // namespace bx::cuda
