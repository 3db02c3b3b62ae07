// The fused-dequantization GEMM (gemm_quant.h): raw GGUF blocks through a cp.async ring in shared
// memory, the B fragments of mma.sync m16n8k16 dequantized in registers. This file: the tiled
// kernel and the host entry points; at M <= 16 automatic (or an explicit schedule) runs
// gemm_quant_stream.cuh's or gemm_quant_chain_warps.cuh's.
//
// Block = kWarps warps; tile = BM = 16 * FM rows of x (tokens) by
// BN = 8 * kWarps rows of W (outputs), warp w owning W rows [8w, 8w + 8) as one n8 column of FM
// m16n8 fragments. A stage covers 256 columns of K: x[m0 .. m0+BM, k0 .. k0+256) (bf16, 32
// chunks of 16 bytes per row, chunk c of row r at
// slot r * 32 + (c ^ (r % 8)) so that ldmatrix's 8 rows fall in different banks), and for each W
// row the bytes of its blocks in that range (one K-quant super-block, or 8 blocks of 32),
// loaded as the 16-byte-aligned chunks that cover them (`lead` bytes before the first block).
// For each 16-wide slice of the stage, in increasing k, lane l of a warp dequantizes elements
// k0 + 2 (l % 4) + {0, 1, 8, 9} of W row 8w + l / 4 (the m16n8k16 B fragment), rounds them to
// bf16 pairs and issues its FM mma steps: the chain of gemm.h for every element. The element
// steps are kernels/quant_pair.h's (host and device; tests/unit/quant_pair_test.cpp checks them
// against quant.h's scalar reference on the CPU).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_quant.h"
#include "kernels/cuda/gemm_quant_chain_warps.cuh"
#include "kernels/cuda/gemm_quant_common.cuh"
#include "kernels/cuda/gemm_quant_stream.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/quant_blocks.h"
#include "kernels/quant_pair.h"

namespace bx::cuda {
namespace {

using quant_gemm::kKS;
using quant_gemm::kXChunks;
using quant_gemm::launch_chain_warps_format;
using quant_gemm::launch_stream_format;
using quant_gemm::pack_bf16;
using quant_gemm::Params;
using quant_gemm::RowSlot;
using quant_gemm::store_fragments;

template <int F, int FM, int kWarps, bool kGated>
struct QShape {
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int BN = 8 * kWarps;                // outputs per block, 8 per warp
  static constexpr int kWRows = kGated ? 2 * BN : BN;  // gate rows, then the up rows
  static constexpr int E = RowSlot<F>::E;
  static constexpr int BB = RowSlot<F>::BB;
  static constexpr int kStageBlockBytes = RowSlot<F>::kStageBlockBytes;
  static constexpr int kWSlot = RowSlot<F>::kBytes;
  static constexpr int kWChunks = RowSlot<F>::kChunks;
  static constexpr int BM = 16 * FM;
  static constexpr int kXBytes = BM * kKS * 2;
  static constexpr int kStageBytes = kXBytes + kWRows * kWSlot;
  static constexpr int kStages = 4;
  static constexpr int kSmemBytes = kStages * kStageBytes;
  static_assert(kStageBytes % 16 == 0, "stages must keep 16-byte alignment");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block");
};

template <int F, int FM, int kWarps, bool kGated>
__global__ void __launch_bounds__(32 * kWarps) gemm_quant_kernel(const Params p) {
  using S = QShape<F, FM, kWarps, kGated>;
  constexpr int BN = S::BN, kThreads = S::kThreads;
  extern __shared__ __align__(128) uint4 smem[];
  const QuantGemmArgs& a = p.a;
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * S::BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const uint32_t smem_base = ptx::smem_address(smem);
  const uint8_t* smem_bytes = reinterpret_cast<const uint8_t*>(smem);
  const uintptr_t w_addr = reinterpret_cast<uintptr_t>(a.w);
  const uintptr_t up_addr = reinterpret_cast<uintptr_t>(a.w_up);

  // Rows of the x tile past M are zeroed once here, for every stage, and never loaded.
  const int x_rows = static_cast<int>(a.M - m0 < S::BM ? a.M - m0 : S::BM);
  if (x_rows < S::BM) {
    for (int s = 0; s < S::kStages; ++s) {
      for (int i = x_rows * kXChunks + tid; i < S::BM * kXChunks; i += kThreads) {
        smem[(s * S::kStageBytes) / 16 + i] = make_uint4(0, 0, 0, 0);
      }
    }
  }

  // Stage `stage` <- x[m0 .. m0+x_rows, k0 .. k0+256) (zeros past K) and the chunks covering
  // each W row's blocks of that range (zeros for rows past N).
  auto load_stage = [&](int stage, int kb) {
    const uint32_t base = smem_base + static_cast<uint32_t>(stage * S::kStageBytes);
    const int64_t k0 = static_cast<int64_t>(kb) * kKS;
    for (int i = tid; i < x_rows * kXChunks; i += kThreads) {
      const int r = i / kXChunks, c = i % kXChunks;
      const int64_t m = m0 + r, k = k0 + c * 8;
      const bool valid = k < a.K;
      const uint16_t* src = valid ? a.x + m * a.x_stride + k : a.x;
      ptx::cp_async_16(base + static_cast<uint32_t>((r * kXChunks + (c ^ (r & 7))) * 16), src,
                       valid);
    }
    const int64_t stage_bytes = (a.K - k0 < kKS ? a.K - k0 : kKS) / S::E * S::BB;
    for (int i = tid; i < S::kWRows * S::kWChunks; i += kThreads) {
      const int r = i / S::kWChunks, c = i % S::kWChunks;
      const int64_t n = n0 + r % BN;
      const uintptr_t first =
          (r < BN ? w_addr : up_addr) + n * a.w_row_bytes + kb * int64_t{S::kStageBlockBytes};
      const uintptr_t chunk = (first & ~uintptr_t{15}) + 16 * c;
      const bool valid = n < a.N && k0 < a.K && chunk < first + stage_bytes;
      ptx::cp_async_16(base + static_cast<uint32_t>(S::kXBytes + r * S::kWSlot + 16 * c),
                       valid ? reinterpret_cast<const void*>(chunk) : a.w, valid);
    }
  };

  float acc[FM][4], acc_up[FM][4];  // acc_up: the up chains (gated only)
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[i][e] = acc_up[i][e] = 0.0f;

  const int w_row = warp * 8 + lane / 4;  // this lane's W row in the tile
  const int pair = 2 * (lane % 4);        // its first element in each slice

  auto compute_stage = [&](int stage, int kb) {
    const uint32_t base = smem_base + static_cast<uint32_t>(stage * S::kStageBytes);
    const int64_t k0 = static_cast<int64_t>(kb) * kKS;
    const int64_t offset = (n0 + w_row) * a.w_row_bytes + kb * int64_t{S::kStageBlockBytes};
    const uint8_t* w_slots = smem_bytes + stage * S::kStageBytes + S::kXBytes;
    const uint8_t* row = w_slots + w_row * S::kWSlot + ((w_addr + offset) & 15u);
    const uint8_t* up_row = w_slots + (BN + w_row) * S::kWSlot + ((up_addr + offset) & 15u);
#pragma unroll
    for (int s = 0; s < kKS / 16; ++s) {
      if (k0 + 16 * s >= p.k_round) break;      // past round_up(K, 64): no more slices
      uint32_t b0 = 0, b1 = 0, u0 = 0, u1 = 0;  // slices past K (< round_up(K, 64)): +0 weights
      if (k0 + 16 * s < a.K) {
        const int block = 16 * s / S::E * S::BB, first = 16 * s % S::E;
        b0 = pack_bf16(quant::dequant_pair<F>(row + block, first, pair));
        b1 = pack_bf16(quant::dequant_pair<F>(row + block, first, pair + 8));
        if constexpr (kGated) {
          u0 = pack_bf16(quant::dequant_pair<F>(up_row + block, first, pair));
          u1 = pack_bf16(quant::dequant_pair<F>(up_row + block, first, pair + 8));
        }
      }
#pragma unroll
      for (int mi = 0; mi < FM; ++mi) {
        const int r = mi * 16 + (lane & 15);
        const int c = s * 2 + (lane >> 4);
        uint32_t x[4];
        ptx::ldmatrix_x4(base + static_cast<uint32_t>((r * kXChunks + (c ^ (r & 7))) * 16), x[0],
                         x[1], x[2], x[3]);
        ptx::mma_bf16_m16n8k16(acc[mi], x, b0, b1);
        if constexpr (kGated) ptx::mma_bf16_m16n8k16(acc_up[mi], x, u0, u1);
      }
    }
  };

  // Pipeline: kStages - 1 stages in flight ahead of the one being multiplied.
#pragma unroll
  for (int s = 0; s < S::kStages - 1; ++s) {
    if (s < p.k_stages) load_stage(s, s);
    ptx::cp_async_commit();
  }
  for (int i = 0; i < p.k_stages; ++i) {
    ptx::cp_async_wait<S::kStages - 2>();
    __syncthreads();  // stage i landed for all threads; stage i - 1 is no longer read
    const int next = i + S::kStages - 1;
    if (next < p.k_stages) load_stage(next % S::kStages, next);
    ptx::cp_async_commit();
    compute_stage(i % S::kStages, i);
  }
  ptx::cp_async_wait<0>();

  store_fragments<FM, kGated>(a, m0, n0 + warp * 8 + pair, lane, acc, acc_up);
}

template <int F, int FM, int kWarps, bool kGated>
void launch(const Params& p, cudaStream_t stream) {
  using S = QShape<F, FM, kWarps, kGated>;
  auto* kernel = gemm_quant_kernel<F, FM, kWarps, kGated>;
  static std::once_flag configured;
  std::call_once(configured, [&] {
    check_cuda(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes),
        "gemm_quant: cudaFuncSetAttribute");
    // The whole unified L1 / shared memory as shared memory, so that several blocks fit.
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                    cudaSharedmemCarveoutMaxShared),
               "gemm_quant: cudaFuncSetAttribute (carveout)");
  });
  const dim3 grid(static_cast<unsigned>((p.a.N + S::BN - 1) / S::BN),
                  static_cast<unsigned>((p.a.M + S::BM - 1) / S::BM));
  kernel<<<grid, S::kThreads, S::kSmemBytes, stream>>>(p);
  check_launch("gemm_quant_kernel");
}

template <int F, bool kGated>
void launch_format(const Params& p, QuantGemmSchedule schedule, cudaStream_t stream) {
  switch (schedule) {
    case QuantGemmSchedule::stream:
      launch_stream_format<F, kGated>(p, stream);
      return;
    case QuantGemmSchedule::chain_warps:
      launch_chain_warps_format<F, kGated>(p, stream);
      return;
    default:
      launch<F, 4, 4, kGated>(p, stream);
  }
}

template <int F>
__global__ void embed_quant_kernel(const uint8_t* table, int64_t row_bytes, const int32_t* ids,
                                   float* out, int64_t out_stride, int64_t pairs) {
  constexpr int E = static_cast<int>(quant::kBlockElements[F]);
  constexpr int BB = static_cast<int>(quant::kBlockBytes[F]);
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= pairs) return;
  const int64_t t = blockIdx.y, c = 2 * i;
  const uint8_t* row = table + static_cast<int64_t>(ids[t]) * row_bytes;
  const int e = static_cast<int>(c % E);
  const quant::QuantPair v = quant::dequant_pair<F>(row + (c / E) * BB, e & ~15, e & 15);
  const __nv_bfloat162 h = __floats2bfloat162_rn(v.first, v.second);
  float* o = out + t * out_stride + c;
  o[0] = __bfloat162float(h.x);
  o[1] = __bfloat162float(h.y);
}

template <int F>
void launch_embed(const uint8_t* table, int64_t row_bytes, const int32_t* ids, float* out,
                  int64_t out_stride, int64_t T, int64_t D, cudaStream_t stream) {
  const int64_t pairs = D / 2;
  const dim3 grid(static_cast<unsigned>((pairs + 255) / 256), static_cast<unsigned>(T));
  embed_quant_kernel<F><<<grid, 256, 0, stream>>>(table, row_bytes, ids, out, out_stride, pairs);
  check_launch("embed_quant_kernel");
}

// Calls fn.template operator()<F>() for the runtime format id.
template <typename Fn>
void dispatch(int format, const char* who, Fn&& fn) {
  switch (format) {
    case quant::kQ8_0:
      fn.template operator()<quant::kQ8_0>();
      return;
    case quant::kQ4_0:
      fn.template operator()<quant::kQ4_0>();
      return;
    case quant::kQ4_1:
      fn.template operator()<quant::kQ4_1>();
      return;
    case quant::kQ4_K:
      fn.template operator()<quant::kQ4_K>();
      return;
    case quant::kQ5_K:
      fn.template operator()<quant::kQ5_K>();
      return;
    case quant::kQ6_K:
      fn.template operator()<quant::kQ6_K>();
      return;
    default:
      throw Error(std::string(who) + ": block format id " + std::to_string(format) +
                  " has no fused kernel; expected Q8_0, Q4_0, Q4_1, Q4_K, Q5_K or Q6_K");
  }
}

}  // namespace

bool gemm_quant_supports(int format) {
  return format == quant::kQ8_0 || format == quant::kQ4_0 || format == quant::kQ4_1 ||
         format == quant::kQ4_K || format == quant::kQ5_K || format == quant::kQ6_K;
}

const char* quant_gemm_schedule_name(QuantGemmSchedule schedule) {
  switch (schedule) {
    case QuantGemmSchedule::automatic:
      return "automatic";
    case QuantGemmSchedule::tiled:
      return "tiled";
    case QuantGemmSchedule::stream:
      return "stream";
    case QuantGemmSchedule::chain_warps:
      return "chain_warps";
  }
  return "?";
}

QuantGemmSchedule quant_gemm_pick_schedule(int64_t M) {
  // Every schedule gives the same bits. Measured on the H100 (bench/cuda/GEMM_NOTES.md, Q4_K,
  // 8B decode shapes, M = 1 and 8): stream is as fast as or faster than chain_warps on every
  // shape (qkv 25.5 vs 26.0 us, down 48.8 vs 53.7, lm head 345 vs 495) and 2-4x faster than tiled.
  return M > 16 ? QuantGemmSchedule::tiled : QuantGemmSchedule::stream;
}

void gemm_quant(const QuantGemmArgs& args, cudaStream_t stream, QuantGemmSchedule schedule) {
  BX_CHECK(gemm_quant_supports(args.format),
           "gemm_quant: block format id " + std::to_string(args.format) +
               " has no fused kernel; expected Q8_0, Q4_0, Q4_1, Q4_K, Q5_K or Q6_K");
  const int64_t E = quant::kBlockElements[args.format];
  const int64_t BB = quant::kBlockBytes[args.format];
  BX_CHECK(args.M >= 0 && args.N >= 0 && args.K >= 0,
           "gemm_quant: M, N, K must be >= 0, got " + std::to_string(args.M) + ", " +
               std::to_string(args.N) + ", " + std::to_string(args.K));
  BX_CHECK(args.M <= 16 || schedule == QuantGemmSchedule::automatic ||
               schedule == QuantGemmSchedule::tiled,
           std::string("gemm_quant: the ") + quant_gemm_schedule_name(schedule) +
               " schedule takes M <= 16, got M = " + std::to_string(args.M));
  BX_CHECK(args.K % E == 0, "gemm_quant: K = " + std::to_string(args.K) +
                                " must be a multiple of the block size " + std::to_string(E));
  BX_CHECK(args.x_stride >= args.K && args.x_stride % 8 == 0,
           "gemm_quant: the x row stride " + std::to_string(args.x_stride) +
               " must be a multiple of 8 elements and at least K = " + std::to_string(args.K));
  BX_CHECK(args.w_row_bytes >= args.K / E * BB,
           "gemm_quant: the W row stride " + std::to_string(args.w_row_bytes) +
               " bytes is below the bytes of K weights (" + std::to_string(args.K / E * BB) + ")");
  const int64_t y_cols = args.n_parts > 0 ? args.parts[0].first_col : args.N;
  BX_CHECK(args.y_stride >= y_cols, "gemm_quant: the y row stride is below its columns");
  BX_CHECK(args.n_parts >= 0 && args.n_parts <= GemmArgs::kMaxParts,
           "gemm_quant: n_parts = " + std::to_string(args.n_parts) + " must be in [0, " +
               std::to_string(GemmArgs::kMaxParts) + "]");
  int64_t previous = 0;
  for (int i = 0; i < args.n_parts; ++i) {
    const GemmOutputPart& part = args.parts[i];
    const int64_t end = i + 1 < args.n_parts ? args.parts[i + 1].first_col : args.N;
    BX_CHECK(part.first_col % 8 == 0 && part.first_col > previous && part.first_col < args.N &&
                 part.y != nullptr && part.stride >= end - part.first_col,
             "gemm_quant: output part " + std::to_string(i) + " starts at column " +
                 std::to_string(part.first_col) +
                 "; expected a multiple of 8 after the previous part's start and below N, with "
                 "a y and a stride of at least its width");
    previous = part.first_col;
  }
  if (args.w_up != nullptr) {
    BX_CHECK(!args.accumulate && args.n_parts == 0,
             "gemm_quant: the gated epilogue takes neither accumulate nor output parts");
  }
  if (args.y_bf16 != nullptr) {
    BX_CHECK(args.w_up != nullptr, "gemm_quant: bf16 outputs (y_bf16) need the gated epilogue");
    BX_CHECK((reinterpret_cast<uintptr_t>(args.y_bf16) & 3u) == 0 && args.y_stride % 2 == 0 &&
                 args.y_stride >= (args.N + 7) / 8 * 8,
             "gemm_quant: y_bf16 must be 4-byte aligned with an even row stride of at least N "
             "rounded up to 8, got stride " +
                 std::to_string(args.y_stride));
  }
  BX_CHECK((reinterpret_cast<uintptr_t>(args.x) & 15u) == 0,
           "gemm_quant: x must be 16-byte aligned");
  if (args.M == 0 || args.N == 0) return;
  BX_CHECK((args.y != nullptr || args.y_bf16 != nullptr) &&
               (args.K == 0 || (args.x != nullptr && args.w != nullptr)),
           "gemm_quant: x, W or y is null");
  BX_CHECK(args.K > 0 || (args.n_parts == 0 && args.w_up == nullptr),
           "gemm_quant: output parts and the gated epilogue need K > 0");
  Params p;
  p.a = args;
  p.k_round = (args.K + 63) / 64 * 64;
  p.k_stages = static_cast<int>((p.k_round + kKS - 1) / kKS);
  p.n_full = static_cast<int>(args.K / kKS);
  if (args.K == 0) {  // no slice: y = +0 (or y unchanged), as gemm_bf16 gives
    if (!args.accumulate) {
      check_cuda(
          cudaMemset2DAsync(args.y, static_cast<size_t>(args.y_stride) * 4, 0,
                            static_cast<size_t>(args.N) * 4, static_cast<size_t>(args.M), stream),
          "gemm_quant: cudaMemset2DAsync");
    }
    return;
  }
  if (schedule == QuantGemmSchedule::automatic) {
    schedule = quant_gemm_pick_schedule(args.M);
  }
  dispatch(args.format, "gemm_quant", [&]<int F>() {
    if (args.w_up != nullptr) {
      launch_format<F, true>(p, schedule, stream);
    } else {
      launch_format<F, false>(p, schedule, stream);
    }
  });
}

void embed_quant_rows(const uint8_t* table, int format, int64_t row_bytes, const int32_t* ids,
                      float* out, int64_t out_stride, int64_t T, int64_t D, cudaStream_t stream) {
  BX_CHECK(T >= 0 && D >= 0 && D % quant::kMinBlockElements == 0,
           "embed_quant_rows: D = " + std::to_string(D) + " must be a multiple of the block size");
  if (T == 0 || D == 0) return;
  dispatch(format, "embed_quant_rows",
           [&]<int F>() { launch_embed<F>(table, row_bytes, ids, out, out_stride, T, D, stream); });
}

}  // namespace bx::cuda
