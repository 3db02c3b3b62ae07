// The down projection and the combine for a few tokens in one launch (moe_steps.h
// down_combine_small): block j owns output columns [16 j, 16 j + 16) of every grouped row, so it
// holds all k expert results of each token for its columns and combines them itself.
//
//   out[row, n] = gemm.h's chain of act[row] and Wd_e[n] over K = Fp (round_up to 64 with +0,
//                 exactly those slices, though a stage holds 128):
//                 acc = +0; acc = acc + dot16(...) per 16-wide slice in increasing k, one
//                 mma.sync m16n8k16 step each (wgmma's k16 bits, gemm.h), e the row's expert
//   y[t, n]     = y[t, n] + (((w[t,0] out[row_of[t,0], n] + w[t,1] out[row_of[t,1], n]) + ...)
//                 in the token's rank order, f32, each product and sum rounded (moe.h's combine)
//
// The block walks the non-empty experts in increasing id, each in groups of up to 16 rows, and
// each group's K in 128-wide stages: units (group, stage) stream through a ring of kStages
// shared-memory stages (cp.async; 16 act rows and 16 Wd rows of 256 bytes per stage, 16-byte
// chunks at slot r * 16 + (chunk ^ (r % 8)): conflict-free ldmatrix). Warp 0 runs the chains; a
// group's rows past its expert's end are zeros and not kept. The expert results stay in shared
// memory [S, 16].
#include <mutex>
#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/moe_launch.cuh"
#include "kernels/cuda/moe_steps.h"

namespace bx::cuda::moe {
namespace {

constexpr int kThreads = 128;
constexpr int kCols = 16;  // output columns per block: two n8 fragments
constexpr int kRows = 16;  // rows per group: the mma's m
constexpr int kBK = 128;   // K per stage: fewer, longer steps between barriers
constexpr int kChunks = kBK / 8;
constexpr int kStages = 12;                             // ~44 KB of weights in flight per block
constexpr int kStageSlots = (kRows + kCols) * kChunks;  // 16-byte slots per stage
constexpr int kRingBytes = kStages * kStageSlots * 16;  // 96 KB
constexpr int kSmemBytes = kRingBytes + kSmallSlots * kCols * 4;  // + the results, 16 KB
constexpr int kMaxGroups = kSmallSlots;  // each group holds at least one row

__device__ __forceinline__ int slot(int row, int chunk) {
  return row * kChunks + (chunk ^ (row & 7));
}

struct Params {
  const uint16_t* act;  // [S, Fp]
  int64_t Fp;
  const uint16_t* down;  // [E * D, down_stride]
  int64_t down_stride;
  int64_t D;
  int E, k, T;
  const int32_t* offsets;  // [E + 1]
  const int32_t* row_of;   // [S]
  const float* weights;    // [S]
  float* y;
  int64_t y_stride;
};

__global__ void __launch_bounds__(kThreads) down_combine_small_kernel(const Params p) {
  extern __shared__ __align__(128) uint4 ring[];
  auto out_s = reinterpret_cast<float(*)[kCols]>(ring + kRingBytes / 16);  // [S][kCols]
  __shared__ int16_t g_expert[kMaxGroups];
  __shared__ int16_t g_row0[kMaxGroups], g_rows[kMaxGroups];
  __shared__ int groups_below[kMoeMaxExperts + 1];
  begin_step();
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kCols;

  // The groups: expert e's rows [offsets[e], offsets[e+1]) in pieces of up to kRows.
  for (int e = tid; e < p.E; e += kThreads) {
    const int n = p.offsets[e + 1] - p.offsets[e];
    groups_below[e + 1] = (n + kRows - 1) / kRows;
  }
  if (tid == 0) groups_below[0] = 0;
  __syncthreads();
  if (tid == 0) {  // prefix sum, integers
    for (int e = 1; e <= p.E; ++e) groups_below[e] += groups_below[e - 1];
  }
  __syncthreads();
  for (int e = tid; e < p.E; e += kThreads) {
    const int first = p.offsets[e], end = p.offsets[e + 1];
    for (int j = groups_below[e]; j < groups_below[e + 1]; ++j) {
      const int row0 = first + (j - groups_below[e]) * kRows;
      g_expert[j] = static_cast<int16_t>(e);
      g_row0[j] = static_cast<int16_t>(row0);
      g_rows[j] = static_cast<int16_t>(min(kRows, end - row0));
    }
  }
  __syncthreads();
  const int n_groups = groups_below[p.E];
  const int k_blocks = static_cast<int>((p.Fp + kBK - 1) / kBK);
  const int64_t k_chain = (p.Fp + 63) / 64 * 64;  // gemm.h: K padded with zeros to 64
  const int units = n_groups * k_blocks;
  const uint32_t base = ptx::smem_address(ring);

  auto load_unit = [&](int u) {
    const int j = u / k_blocks, kb = u - j * k_blocks;
    const uint32_t stage = base + static_cast<uint32_t>((u % kStages) * kStageSlots * 16);
    const int e = g_expert[j], row0 = g_row0[j], rows = g_rows[j];
    const int64_t k0 = static_cast<int64_t>(kb) * kBK;
    for (int i = tid; i < kStageSlots; i += kThreads) {
      const int r = i / kChunks, c = i % kChunks;
      const int64_t k = k0 + c * 8;
      const uint16_t* src = p.act;
      bool valid;
      if (r < kRows) {
        valid = r < rows && k < p.Fp;
        if (valid) src = p.act + static_cast<int64_t>(row0 + r) * p.Fp + k;
      } else {
        const int64_t n = n0 + (r - kRows);
        valid = n < p.D && k < p.Fp;
        if (valid) src = p.down + (static_cast<int64_t>(e) * p.D + n) * p.down_stride + k;
      }
      ptx::cp_async_16(stage + static_cast<uint32_t>(slot(r, c) * 16), src, valid);
    }
  };

  for (int u = 0; u < kStages - 1; ++u) {
    if (u < units) load_unit(u);
    ptx::cp_async_commit();
  }
  const int lane = tid & 31;
  float acc[2][4];
  for (int u = 0; u < units; ++u) {
    ptx::cp_async_wait<kStages - 2>();
    __syncthreads();
    if (u + kStages - 1 < units) load_unit(u + kStages - 1);
    ptx::cp_async_commit();
    if (tid < 32) {
      const int j = u / k_blocks, kb = u - j * k_blocks;
      if (kb == 0) {
#pragma unroll
        for (int ni = 0; ni < 2; ++ni)
#pragma unroll
          for (int v = 0; v < 4; ++v) acc[ni][v] = 0.0f;
      }
      const uint32_t stage = base + static_cast<uint32_t>((u % kStages) * kStageSlots * 16);
#pragma unroll
      for (int kk = 0; kk < kBK / 16; ++kk) {
        if (static_cast<int64_t>(kb) * kBK + kk * 16 >= k_chain) break;  // gemm.h's last slice
        uint32_t a[4];
        ptx::ldmatrix_x4(stage + static_cast<uint32_t>(slot(lane & 15, kk * 2 + (lane >> 4)) * 16),
                         a[0], a[1], a[2], a[3]);
#pragma unroll
        for (int ni = 0; ni < 2; ++ni) {
          uint32_t b0, b1;
          const int row = kRows + ni * 8 + (lane & 7);
          ptx::ldmatrix_x2(
              stage + static_cast<uint32_t>(slot(row, kk * 2 + ((lane >> 3) & 1)) * 16), b0, b1);
          ptx::mma_bf16_m16n8k16(acc[ni], a, b0, b1);
        }
      }
      if (kb == k_blocks - 1) {
        // acc[ni][v]: group row lane / 4 (+8 for v >= 2), column ni * 8 + 2 (lane % 4) (+1, odd v)
        const int row0 = g_row0[j], rows = g_rows[j];
#pragma unroll
        for (int ni = 0; ni < 2; ++ni)
#pragma unroll
          for (int v = 0; v < 4; ++v) {
            const int r = lane / 4 + (v >= 2 ? 8 : 0);
            if (r < rows) out_s[row0 + r][ni * 8 + 2 * (lane % 4) + (v & 1)] = acc[ni][v];
          }
      }
    }
  }
  ptx::cp_async_wait<0>();
  __syncthreads();

  for (int q = tid; q < p.T * kCols; q += kThreads) {
    const int t = q / kCols, c = q - t * kCols;
    const int64_t n = n0 + c;
    if (n >= p.D) continue;
    const int64_t s0 = static_cast<int64_t>(t) * p.k;
    float a = __fmul_rn(p.weights[s0], out_s[p.row_of[s0]][c]);
    for (int r = 1; r < p.k; ++r)
      a = __fadd_rn(a, __fmul_rn(p.weights[s0 + r], out_s[p.row_of[s0 + r]][c]));
    float* yc = p.y + t * p.y_stride + n;
    *yc = __fadd_rn(*yc, a);
  }
}

}  // namespace

void down_combine_small(const uint16_t* act, int64_t Fp, const uint16_t* down, int64_t down_stride,
                        int64_t D, int n_experts, int top_k, int64_t T, const Grouping& g,
                        const float* weights, float* y, int64_t y_stride, cudaStream_t stream,
                        bool early_start) {
  BX_CHECK(T * top_k <= kSmallSlots && n_experts <= kMoeMaxExperts && Fp % 8 == 0 &&
               down_stride % 8 == 0 && down_stride >= Fp,
           "moe down_combine_small: T = " + std::to_string(T) + ", top-" + std::to_string(top_k) +
               ", Fp = " + std::to_string(Fp) + ": expected at most " +
               std::to_string(kSmallSlots) + " slots and 8-aligned rows");
  if (T == 0) return;
  static std::once_flag configured;  // raise the dynamic shared memory limit once
  std::call_once(configured, [] {
    check_cuda(cudaFuncSetAttribute(down_combine_small_kernel,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
               "moe down_combine_small: cudaFuncSetAttribute");
  });
  Params p{
      act,       Fp,       down,    down_stride, D,       n_experts, top_k, static_cast<int>(T),
      g.offsets, g.row_of, weights, y,           y_stride};
  const auto blocks = static_cast<unsigned>((D + kCols - 1) / kCols);
  launch_step(down_combine_small_kernel, dim3(blocks), dim3(kThreads), kSmemBytes, stream,
              early_start, "moe down_combine_small_kernel", p);
}

}  // namespace bx::cuda::moe
