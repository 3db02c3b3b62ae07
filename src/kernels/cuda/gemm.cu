// The invariant bf16 GEMM (gemm.h): TMA loads into a shared-memory ring, wgmma on two operands in
// shared memory, a persistent grid.
//
// Block = 1 producer warpgroup + kConsumers consumer warpgroups. The tile is BM x BN outputs,
// BM = 64 * kConsumers rows of x (tokens) by BN rows of W (outputs); consumer c owns rows
// [64c, 64c + 64) of the tile as one m64nBN accumulator (BN / 2 f32 per thread). A stage holds
// x[m0 .. m0+BM, k0 .. k0+64) and W[n0 .. n0+BN, same k] as K-major tiles of 128-byte rows,
// written by TMA with the 128-byte swizzle the wgmma descriptors name; rows or columns outside
// the tensors arrive as zeros. One thread of the producer walks the block's tiles and their
// 64-wide K blocks in increasing k, waiting for a free stage (empty barrier), announcing its bytes
// and issuing the two TMA loads (full barrier). Consumers wait for a full stage, issue the four
// k16 wgmma of the block in increasing k into their accumulator, and free the stage once those
// have completed (wgmma.wait_group keeps up to kInFlight blocks in flight). After the last K block
// each consumer stores its accumulator (or adds it to y), while the producer already fills the ring
// for the block's next tile. Every element thus gets the chain of gemm.h from +0.
//
// At M <= 64 the kernel is launched with programmatic stream serialization: its prologue overlaps
// the previous kernel's drain, and griddepcontrol.wait holds every global access until that
// kernel has finished.
//
// Gated tiles (kGated, gemm.h): the W half of a stage holds BN/2 gate rows then the same BN/2 up
// rows (two TMA loads, each half a whole number of 1024-byte swizzle atoms, so the shared-memory
// layout is the one a single BN-row load makes); the accumulator's columns [0, BN/2) are gate
// chains and [BN/2, BN) the matching up chains, held by the same thread, and the epilogue
// combines them into BN/2 outputs.
//
// Tiles are visited in groups of kGroupRows row tiles: inside a group, column tile by column
// tile, so the blocks running at once share rows of x and of W in L2.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>

#include <mutex>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemm_grouped.h"
#include "kernels/cuda/hopper.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/wgmma.cuh"

namespace bx::cuda {
namespace {

constexpr int kBK = 64;             // K elements per stage: one 128-byte swizzled row
constexpr int kRowBytes = kBK * 2;  // bytes of one tile row
constexpr int kGroupRows = 8;       // row tiles per raster group

struct KernelParams {
  float* y;
  int64_t y_stride;
  int64_t M, N;
  int k_blocks;
  int tiles_m, tiles_n;
  int a_rows;  // rows of x TMA loads per stage (BM, or M rounded up to 8 when M < BM)
  bool accumulate;
  bool vector_store;  // y rows 8-byte aligned: store column pairs as float2
  uint16_t* y_bf16;   // gated: bf16 outputs instead of y (GemmArgs::y_bf16)
  int n_parts;        // output parts after y (GemmArgs::parts)
  int64_t part_first[GemmArgs::kMaxParts];
  float* part_y[GemmArgs::kMaxParts];
  int64_t part_stride[GemmArgs::kMaxParts];
  // Grouped (kGrouped, gemm_grouped.h): row tile tm is the device list's entry tm, of *n_tiles.
  const int32_t* tile_group;
  const int32_t* tile_row0;
  const int32_t* n_tiles;
  const int32_t* offsets;
  // Gathered A (kGather, gemm_grouped.h GemmGroups::x_rows): grouped row r is row x_rows[r] of x.
  const uint16_t* gather_x;
  int64_t gather_stride;
  const int32_t* gather_rows;
  int64_t K;
  bool skip_idle;  // grouped: GemmGroups::skip_idle_consumers
};

// Row `row` of the output part holding column `col` (a multiple of 2); col becomes the column
// inside that part.
__device__ __forceinline__ float* output_row(const KernelParams& p, int64_t row, int64_t& col) {
  float* base = p.y;
  int64_t stride = p.y_stride, first = 0;
#pragma unroll
  for (int i = 0; i < GemmArgs::kMaxParts; ++i) {
    if (i < p.n_parts && col >= p.part_first[i]) {
      base = p.part_y[i];
      stride = p.part_stride[i];
      first = p.part_first[i];
    }
  }
  col -= first;
  return base + row * stride;
}

// Stores (v0, v1) at columns col, col + 1 of out_row (added to what is there when accumulating);
// first_in / second_in say which of the two columns exist.
__device__ __forceinline__ void store_pair(const KernelParams& p, float* out_row, int64_t col,
                                           bool first_in, bool second_in, float v0, float v1) {
  if (p.vector_store && second_in) {
    float2* out = reinterpret_cast<float2*>(out_row + col);
    if (p.accumulate) {
      const float2 old = *out;
      v0 = old.x + v0;
      v1 = old.y + v1;
    }
    *out = make_float2(v0, v1);
  } else {
    if (first_in) out_row[col] = p.accumulate ? out_row[col] + v0 : v0;
    if (second_in) out_row[col + 1] = p.accumulate ? out_row[col + 1] + v1 : v1;
  }
}

// F.silu(g) * u, the expression of rows.cu's silu_mul_kernel (same compilation flags).
__device__ __forceinline__ float silu_times(float g, float u) {
  return (g / (1.0f + expf(-g))) * u;
}

template <int BN, int kConsumers, int kStages>
struct Shape {
  static constexpr int BM = 64 * kConsumers;
  static constexpr int kThreads = 128 * (kConsumers + 1);
  static constexpr int kABytes = BM * kRowBytes;
  static constexpr int kBBytes = BN * kRowBytes;
  static constexpr int kStageBytes = kABytes + kBBytes;
  // 1024 bytes of slack to align the ring (swizzled tiles start on 1024), then the barriers.
  static constexpr int kSmemBytes = 1024 + kStages * kStageBytes + 2 * kStages * 8;
  static_assert(kABytes % 1024 == 0 && kBBytes % 1024 == 0, "tiles must keep 1024 alignment");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block");
};

__device__ __forceinline__ void tile_coords(int tile, int tiles_m, int tiles_n, int& tm, int& tn) {
  const int per_group = kGroupRows * tiles_n;
  const int group = tile / per_group;
  const int first = group * kGroupRows;
  const int rows = min(tiles_m - first, kGroupRows);
  const int in_group = tile - group * per_group;
  tm = first + in_group % rows;
  tn = in_group / rows;
}

// The rows of row tile tm: x rows from *first and output rows below *end; W rows from
// *w_first (grouped: the tile's group's rows of W; dense: tm * BM, M and 0). Read after
// griddep_wait (the list is the previous kernel's output).
template <int BM, bool kGrouped>
__device__ __forceinline__ void row_tile(const KernelParams& p, int tm, int64_t& first,
                                         int64_t& end, int64_t& w_first) {
  if constexpr (kGrouped) {
    const int g = p.tile_group[tm];
    first = p.tile_row0[tm];
    end = p.offsets[g + 1];
    w_first = static_cast<int64_t>(g) * p.N;
  } else {
    first = static_cast<int64_t>(tm) * BM;
    end = p.M;
    w_first = 0;
  }
}

template <int BN, int kConsumers, int kStages, bool kGated, bool kGrouped = false,
          bool kGather = false>
__global__ void __launch_bounds__(Shape<BN, kConsumers, kStages>::kThreads, 1)
    gemm_wgmma_kernel(const __grid_constant__ CUtensorMap x_map,
                      const __grid_constant__ CUtensorMap w_map,
                      const __grid_constant__ CUtensorMap u_map, const KernelParams p) {
  using S = Shape<BN, kConsumers, kStages>;
  // K blocks of wgmma a consumer keeps in flight (1 measured as fast as 4 on narrow tiles, and
  // leaves more stages to the producer).
  constexpr int kInFlight = 1;
  static_assert(kInFlight < kStages, "the producer needs a free stage");
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  const uint32_t raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw));
  const uint32_t ring = (raw + 1023u) & ~1023u;
  const uint32_t full_bar = ring + kStages * S::kStageBytes;  // kStages barriers
  const uint32_t empty_bar = full_bar + kStages * 8;          // kStages barriers
  const int warpgroup = static_cast<int>(threadIdx.x) / 128;

  if (threadIdx.x == 0) {
    ptx::prefetch_tensor_map(&x_map);
    ptx::prefetch_tensor_map(&w_map);
    if constexpr (kGated) ptx::prefetch_tensor_map(&u_map);
    for (int s = 0; s < kStages; ++s) {
      // Gathered A: the W bytes' arrival plus one arrival per producer thread after its rows.
      ptx::mbarrier_init(full_bar + 8 * s, kGather ? 1 + 128 : 1);
      ptx::mbarrier_init(empty_bar + 8 * s, 4 * kConsumers);  // lane 0 of every consumer warp
    }
    ptx::fence_barrier_init();
  }
  __syncthreads();
  // Programmatic dependent launch: a GEMM launched next on the stream may start its own prologue
  // as soon as its blocks fit; it waits (below) for this grid before touching global memory.
  ptx::griddep_launch_dependents();

  if (warpgroup == 0) {
    // Producer.
    if constexpr (kConsumers > 1) ptx::setmaxnreg_dec<40>();
    if constexpr (kGather) {
      // Thread r loads row r of every x tile: the tile's grouped row first + r is x row
      // gather_rows[first + r] (+0 past the group's end or past K), eight 16-byte cp.async at
      // the 128-byte swizzle's chunk positions (chunk c of row r at c ^ (r % 8), as TMA lays
      // them). Thread 0 also loads the W rows by TMA. Thread r arrives on a stage's full barrier
      // once its rows have landed (one stage later: wait_group 1), after fence.proxy.async, so
      // the consumers' wgmma reads see them.
      static_assert(!kGather || S::BM == 128, "one producer thread per tile row");
      const int r = static_cast<int>(threadIdx.x);
      const uint32_t tx_bytes = static_cast<uint32_t>(BN * kRowBytes);
      ptx::griddep_wait();
      const int tiles = *p.n_tiles * p.tiles_n;
      int stage = 0, pending = -1;
      uint32_t phase = 0;
      for (int tile = static_cast<int>(blockIdx.x); tile < tiles;
           tile += static_cast<int>(gridDim.x)) {
        int tm, tn;
        tile_coords(tile, *p.n_tiles, p.tiles_n, tm, tn);
        int64_t first, end, w_first;
        row_tile<S::BM, kGrouped>(p, tm, first, end, w_first);
        const bool row_in = first + r < end;
        const uint16_t* src =
            p.gather_x +
            (row_in ? static_cast<int64_t>(p.gather_rows[first + r]) * p.gather_stride : 0);
        for (int kb = 0; kb < p.k_blocks; ++kb) {
          ptx::mbarrier_wait(empty_bar + 8 * stage, phase ^ 1u);
          const uint32_t a = ring + static_cast<uint32_t>(stage * S::kStageBytes);
          if (r == 0) {
            ptx::mbarrier_arrive_expect_tx(full_bar + 8 * stage, tx_bytes);
            const uint32_t b = a + S::kABytes;
            if constexpr (kGated) {
              const int w_row = static_cast<int>(w_first + tn * (BN / 2));
              ptx::tma_load_2d(b, &w_map, full_bar + 8 * stage, kb * kBK, w_row);
              ptx::tma_load_2d(b + (BN / 2) * kRowBytes, &u_map, full_bar + 8 * stage, kb * kBK,
                               w_row);
            } else {
              ptx::tma_load_2d(b, &w_map, full_bar + 8 * stage, kb * kBK,
                               static_cast<int>(w_first + tn * BN));
            }
          }
          const uint32_t row_smem = a + static_cast<uint32_t>(r * kRowBytes);
#pragma unroll
          for (int c = 0; c < kBK / 8; ++c) {
            const int64_t k = static_cast<int64_t>(kb) * kBK + c * 8;
            const bool valid = row_in && k < p.K;
            ptx::cp_async_16(row_smem + static_cast<uint32_t>((c ^ (r & 7)) * 16),
                             valid ? src + k : p.gather_x, valid);
          }
          ptx::cp_async_commit();
          if (pending >= 0) {
            ptx::cp_async_wait<1>();
            ptx::fence_proxy_async();
            ptx::mbarrier_arrive(full_bar + 8 * pending);
          }
          pending = stage;
          if (++stage == kStages) {
            stage = 0;
            phase ^= 1u;
          }
        }
      }
      if (pending >= 0) {
        ptx::cp_async_wait<0>();
        ptx::fence_proxy_async();
        ptx::mbarrier_arrive(full_bar + 8 * pending);
      }
    } else if (threadIdx.x == 0) {
      const uint32_t tx_bytes = static_cast<uint32_t>((p.a_rows + BN) * kRowBytes);
      ptx::griddep_wait();  // the previous grid on the stream has finished and flushed
      const int tiles_m = kGrouped ? *p.n_tiles : p.tiles_m;
      const int tiles = tiles_m * p.tiles_n;
      int stage = 0;
      uint32_t phase = 0;
      for (int tile = static_cast<int>(blockIdx.x); tile < tiles;
           tile += static_cast<int>(gridDim.x)) {
        int tm, tn;
        tile_coords(tile, tiles_m, p.tiles_n, tm, tn);
        int64_t first, end, w_first;
        row_tile<S::BM, kGrouped>(p, tm, first, end, w_first);
        const int a_row = static_cast<int>(first);
        for (int kb = 0; kb < p.k_blocks; ++kb) {
          ptx::mbarrier_wait(empty_bar + 8 * stage, phase ^ 1u);
          const uint32_t a = ring + static_cast<uint32_t>(stage * S::kStageBytes);
          ptx::mbarrier_arrive_expect_tx(full_bar + 8 * stage, tx_bytes);
          ptx::tma_load_2d(a, &x_map, full_bar + 8 * stage, kb * kBK, a_row);
          if constexpr (kGated) {  // BN/2 gate rows, then the same BN/2 up rows
            const uint32_t b = a + S::kABytes;
            const int w_row = static_cast<int>(w_first + tn * (BN / 2));
            ptx::tma_load_2d(b, &w_map, full_bar + 8 * stage, kb * kBK, w_row);
            ptx::tma_load_2d(b + (BN / 2) * kRowBytes, &u_map, full_bar + 8 * stage, kb * kBK,
                             w_row);
          } else {
            ptx::tma_load_2d(a + S::kABytes, &w_map, full_bar + 8 * stage, kb * kBK,
                             static_cast<int>(w_first + tn * BN));
          }
          if (++stage == kStages) {
            stage = 0;
            phase ^= 1u;
          }
        }
      }
    }
  } else {
    // Consumer c: rows [64c, 64c + 64) of every tile.
    if constexpr (kConsumers > 1) ptx::setmaxnreg_inc<232>();
    // With a_rows < BM, TMA never writes rows [a_rows, BM) of the x tiles: the consumers zero
    // them once (their outputs are not stored; zeros keep them finite) while the first loads
    // are in flight (TMA writes only the other rows), and order these generic-proxy writes
    // before their own wgmma reads.
    if (p.a_rows < S::BM) {
      uint8_t* ring_ptr = smem_raw + (ring - raw);
      const int first = p.a_rows * kRowBytes / 16, count = S::kABytes / 16;
      const int id = static_cast<int>(threadIdx.x) - 128;
      for (int s = 0; s < kStages; ++s) {
        uint4* a = reinterpret_cast<uint4*>(ring_ptr + s * S::kStageBytes);
        for (int i = first + id; i < count; i += 128 * kConsumers) a[i] = make_uint4(0, 0, 0, 0);
      }
      ptx::fence_proxy_async();
      ptx::named_barrier_sync(1, 128 * kConsumers);
    }
    ptx::griddep_wait();  // before the epilogue's loads and stores of y
    const int tiles_m = kGrouped ? *p.n_tiles : p.tiles_m;
    const int tiles = tiles_m * p.tiles_n;
    const int c = warpgroup - 1;
    const int t = static_cast<int>(threadIdx.x) % 128;
    const int warp = t / 32, lane = t % 32;
    float acc[BN / 2];
    int stage = 0;
    uint32_t phase = 0;
    for (int tile = static_cast<int>(blockIdx.x); tile < tiles;
         tile += static_cast<int>(gridDim.x)) {
      int tm, tn;
      tile_coords(tile, tiles_m, p.tiles_n, tm, tn);
      int64_t first, end, w_first;
      row_tile<S::BM, kGrouped>(p, tm, first, end, w_first);
      // Grouped: a consumer whose 64 rows all lie past the group's end (the short last tile of a
      // group) stores nothing, so it skips the tensor work and only keeps the stage protocol
      // (the other consumer's chains are unchanged).
      const bool idle = kGrouped && p.skip_idle && first + c * 64 >= end;
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
      for (int kb = 0; kb < p.k_blocks; ++kb) {
        ptx::mbarrier_wait(full_bar + 8 * stage, phase);
        const uint32_t a =
            ring + static_cast<uint32_t>(stage * S::kStageBytes) + c * 64 * kRowBytes;
        const uint32_t b = ring + static_cast<uint32_t>(stage * S::kStageBytes) + S::kABytes;
        if (!idle) {
          ptx::fence_registers(acc);
          ptx::wgmma_fence();
#pragma unroll
          for (int kk = 0; kk < kBK / 16; ++kk) {
            ptx::wgmma_bf16<BN>(acc, ptx::smem_desc_k128(a + kk * 32),
                                ptx::smem_desc_k128(b + kk * 32));
          }
          ptx::wgmma_commit();
        }
        // Blocks up to kb - kInFlight are done: the stage of block kb - kInFlight may be refilled.
        ptx::wgmma_wait<kInFlight>();
        ptx::fence_registers(acc);
        if (kb >= kInFlight && lane == 0) {
          ptx::mbarrier_arrive(empty_bar + 8 * ((stage + kStages - kInFlight) % kStages));
        }
        if (++stage == kStages) {
          stage = 0;
          phase ^= 1u;
        }
      }
      ptx::wgmma_wait<0>();
      ptx::fence_registers(acc);
      if (lane == 0) {
        for (int i = min(kInFlight, p.k_blocks); i >= 1; --i) {
          ptx::mbarrier_arrive(empty_bar + 8 * ((stage + kStages - i) % kStages));
        }
      }

      // Accumulator fragment: acc[4j + e] is row 16 * warp + lane / 4 (+8 for e >= 2), column
      // 8j + 2 * (lane % 4) (+1 for odd e) of this consumer's 64 x BN block.
      const int64_t row0 = first + c * 64 + warp * 16 + lane / 4;
      if constexpr (kGated) {
        // Output column n of the tile's BN/2: gate chain in fragment column n, up in n + BN/2.
        const int64_t col0 = static_cast<int64_t>(tn) * (BN / 2) + 2 * (lane % 4);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t row = row0 + 8 * half;
          if (row >= end) continue;
          float* out_row = p.y + row * p.y_stride;
          uint32_t* bf16_row = reinterpret_cast<uint32_t*>(p.y_bf16 + row * p.y_stride);
          const int64_t padded = (p.N + 7) / 8 * 8;
#pragma unroll
          for (int j = 0; j < BN / 16; ++j) {
            const int64_t col = col0 + 8 * j;
            const int g = 4 * j + 2 * half, u = 4 * (j + BN / 16) + 2 * half;
            const float v0 = silu_times(acc[g], acc[u]), v1 = silu_times(acc[g + 1], acc[u + 1]);
            if (p.y_bf16 != nullptr) {
              // Columns col, col + 1 (col even) as one 4-byte store; +0 past N up to the pad.
              if (col < padded) {
                const uint32_t lo =
                    __bfloat16_as_ushort(__float2bfloat16_rn(col < p.N ? v0 : 0.0f));
                const uint32_t hi =
                    __bfloat16_as_ushort(__float2bfloat16_rn(col + 1 < p.N ? v1 : 0.0f));
                bf16_row[col / 2] = lo | (hi << 16);
              }
            } else {
              store_pair(p, out_row, col, col < p.N, col + 1 < p.N, v0, v1);
            }
          }
        }
      } else {
        const int64_t col0 = static_cast<int64_t>(tn) * BN + 2 * (lane % 4);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t row = row0 + 8 * half;
          if (row >= end) continue;
#pragma unroll
          for (int j = 0; j < BN / 8; ++j) {
            const int64_t col = col0 + 8 * j;
            int64_t part_col = col;
            float* out_row = output_row(p, row, part_col);
            store_pair(p, out_row, part_col, col < p.N, col + 1 < p.N, acc[4 * j + 2 * half],
                       acc[4 * j + 2 * half + 1]);
          }
        }
      }
    }
  }
}

// --- host side ---

PFN_cuTensorMapEncodeTiled_v12000 encode_function() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult found{};
    check_cuda(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000,
                                                cudaEnableDefault, &found),
               "gemm_bf16: cudaGetDriverEntryPointByVersion(cuTensorMapEncodeTiled)");
    BX_CHECK(found == cudaDriverEntryPointSuccess && ptr != nullptr,
             "gemm_bf16: the driver has no cuTensorMapEncodeTiled (needs CUDA 12+)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  }();
  return fn;
}

// Tensor map of a row-major [rows, K] bf16 matrix, boxes of box_rows x 64, 128-byte swizzle.
CUtensorMap tensor_map(const uint16_t* base, int64_t rows, int64_t K, int64_t stride,
                       int box_rows) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(K), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(stride) * 2};  // bytes, of dim 1
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBK), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t steps[2] = {1, 1};
  const CUresult r = encode_function()(
      &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<uint16_t*>(base), dims, strides, box,
      steps, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  BX_CHECK(r == CUDA_SUCCESS, "gemm_bf16: cuTensorMapEncodeTiled failed (error " +
                                  std::to_string(static_cast<int>(r)) + ")");
  return map;
}

template <int BN, int kConsumers, int kStages, bool kGated, bool kGrouped = false,
          bool kGather = false>
void launch(const GemmArgs& args, cudaStream_t stream, const GemmGroups* groups = nullptr) {
  using S = Shape<BN, kConsumers, kStages>;
  static_assert(!kGated || (BN / 2) % 8 == 0, "gated halves must be whole swizzle atoms");
  auto* kernel = gemm_wgmma_kernel<BN, kConsumers, kStages, kGated, kGrouped, kGather>;
  static std::once_flag configured;
  std::call_once(configured, [&] {
    check_cuda(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes),
        "gemm_bf16: cudaFuncSetAttribute");
  });
  // One row tile: load only the rows that exist (rounded up to 8), not BM rows of zero fill.
  // Gathered: the producer threads write all BM rows of every x tile (zeros where no row is).
  const int a_rows = kGather || args.M >= S::BM ? S::BM : static_cast<int>((args.M + 7) / 8 * 8);
  const int64_t x_rows = kGather ? groups->x_count : args.M;  // rows the x map covers
  const CUtensorMap x_map = tensor_map(args.x, x_rows, args.K, args.x_stride, kGather ? 8 : a_rows);
  // Rows of W (and of w_up) one tile reads: BN, or BN/2 of each when gated.
  constexpr int w_rows = kGated ? BN / 2 : BN;
  // Grouped: W holds the groups' rows back to back (group g: rows [g N, (g + 1) N)).
  const int64_t all_w_rows = kGrouped ? groups->count * args.N : args.N;
  const CUtensorMap w_map = tensor_map(args.w, all_w_rows, args.K, args.w_stride, w_rows);
  const CUtensorMap u_map =
      kGated ? tensor_map(args.w_up, all_w_rows, args.K, args.w_stride, w_rows) : w_map;
  KernelParams p;
  p.y = args.y;
  p.y_stride = args.y_stride;
  p.M = args.M;
  p.N = args.N;
  p.k_blocks = static_cast<int>((args.K + kBK - 1) / kBK);
  p.tiles_m = static_cast<int>(kGrouped ? groups->max_tiles : (args.M + S::BM - 1) / S::BM);
  p.tiles_n = static_cast<int>((args.N + w_rows - 1) / w_rows);
  p.a_rows = a_rows;
  p.accumulate = args.accumulate;
  const auto pairs_aligned = [](const float* y, int64_t stride) {
    return stride % 2 == 0 && (reinterpret_cast<uintptr_t>(y) & 7u) == 0;
  };
  p.vector_store = pairs_aligned(args.y, args.y_stride);
  p.y_bf16 = args.y_bf16;
  p.n_parts = args.n_parts;
  for (int i = 0; i < GemmArgs::kMaxParts; ++i) {
    const bool used = i < args.n_parts;
    p.part_first[i] = used ? args.parts[i].first_col : 0;
    p.part_y[i] = used ? args.parts[i].y : nullptr;
    p.part_stride[i] = used ? args.parts[i].stride : 0;
    p.tile_group = kGrouped ? groups->tile_group : nullptr;
    p.tile_row0 = kGrouped ? groups->tile_row0 : nullptr;
    p.n_tiles = kGrouped ? groups->n_tiles : nullptr;
    p.offsets = kGrouped ? groups->offsets : nullptr;
    if (used)
      p.vector_store = p.vector_store && pairs_aligned(args.parts[i].y, args.parts[i].stride);
  }
  p.gather_x = kGather ? args.x : nullptr;
  p.gather_stride = args.x_stride;
  p.gather_rows = kGather ? groups->x_rows : nullptr;
  p.K = args.K;
  p.skip_idle = kGrouped && groups->skip_idle_consumers;
  const int64_t tiles = static_cast<int64_t>(p.tiles_m) * p.tiles_n;
  BX_CHECK(tiles < (int64_t{1} << 31), "gemm_bf16: too many tiles");
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(tiles, sm_count()));
  // Small M: launched with programmatic stream serialization, so the kernel may begin (barriers,
  // tensor-map prefetch, zeroing) while the previous kernel on the stream drains; every global
  // access waits for it (griddepcontrol.wait). Measured 1-3 us faster per GEMM at M <= 32, but
  // 7-10% slower at M = 128 and 512 on 12288 -> 4096 (bench/cuda/GEMM_NOTES.md, v9), so larger
  // M launches plainly (the waits are then no-ops). Either way the arithmetic is the same.
  const bool early_start = kGrouped ? groups->early_start : args.M <= 64;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(grid);
  config.blockDim = dim3(S::kThreads);
  config.dynamicSmemBytes = S::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = early_start ? 1 : 0;
  check_cuda(cudaLaunchKernelEx(&config, kernel, x_map, w_map, u_map, p),
             "gemm_bf16: cudaLaunchKernelEx");
  check_launch("gemm_wgmma_kernel");
}

// <instruction N = BN, consumer warpgroups, pipeline stages>
template <bool kGated>
void launch_tile(GemmTile tile, const GemmArgs& args, cudaStream_t stream) {
  switch (tile) {
    case GemmTile::w64x16:
      launch<16, 1, 16, kGated>(args, stream);
      break;
    case GemmTile::w64x32:
      launch<32, 1, 16, kGated>(args, stream);
      break;
    case GemmTile::w64x64:
      launch<64, 1, 12, kGated>(args, stream);
      break;
    case GemmTile::w128x64:
      launch<64, 2, 8, kGated>(args, stream);
      break;
    case GemmTile::w128x128:
      launch<128, 2, 6, kGated>(args, stream);
      break;
    case GemmTile::w128x192:
      launch<192, 2, 5, kGated>(args, stream);
      break;
    default:
      launch<256, 2, 4, kGated>(args, stream);
      break;
  }
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

}  // namespace

void check_gemm_args(const GemmArgs& a, const char* who) {
  const std::string w = who;
  BX_CHECK(a.M >= 0 && a.N >= 0 && a.K >= 0, w + ": M, N, K must be >= 0, got " +
                                                 std::to_string(a.M) + ", " + std::to_string(a.N) +
                                                 ", " + std::to_string(a.K));
  BX_CHECK(a.K % 8 == 0,
           w + ": K = " + std::to_string(a.K) + " must be a multiple of 8 (pad rows with zeros)");
  // y holds columns [0, N), or [0, parts[0].first_col) with output parts.
  const int64_t y_cols =
      a.n_parts > 0 && a.n_parts <= GemmArgs::kMaxParts ? a.parts[0].first_col : a.N;
  BX_CHECK(a.x_stride >= a.K && a.w_stride >= a.K && a.y_stride >= y_cols,
           w + ": a row stride is below its row length");
  BX_CHECK(a.x_stride % 8 == 0 && a.w_stride % 8 == 0,
           w + ": x and W row strides must be multiples of 8 elements, got " +
               std::to_string(a.x_stride) + " and " + std::to_string(a.w_stride));
  BX_CHECK(aligned16(a.x) && aligned16(a.w), w + ": x and W must be 16-byte aligned");
  BX_CHECK(a.M == 0 || a.N == 0 || a.y != nullptr || a.y_bf16 != nullptr, w + ": y is null");
  BX_CHECK(a.M == 0 || a.N == 0 || a.K == 0 || (a.x != nullptr && a.w != nullptr),
           w + ": x or W is null");
  BX_CHECK(a.n_parts >= 0 && a.n_parts <= GemmArgs::kMaxParts,
           w + ": n_parts = " + std::to_string(a.n_parts) + " must be in [0, " +
               std::to_string(GemmArgs::kMaxParts) + "]");
  int64_t previous = 0;
  for (int i = 0; i < a.n_parts; ++i) {
    const GemmOutputPart& part = a.parts[i];
    const int64_t end = i + 1 < a.n_parts ? a.parts[i + 1].first_col : a.N;
    BX_CHECK(part.first_col % 8 == 0 && part.first_col > previous && part.first_col < a.N,
             w + ": output part " + std::to_string(i) + " starts at column " +
                 std::to_string(part.first_col) +
                 "; expected a multiple of 8 after the previous part's start and below N");
    BX_CHECK(part.y != nullptr && part.stride >= end - part.first_col,
             w + ": output part " + std::to_string(i) + " has no y or a stride below its width");
    previous = part.first_col;
  }
  if (a.y_bf16 != nullptr) {
    BX_CHECK(a.w_up != nullptr, w + ": bf16 outputs (y_bf16) need the gated epilogue (w_up)");
    BX_CHECK(aligned16(a.y_bf16) && a.y_stride % 8 == 0 && a.y_stride >= (a.N + 7) / 8 * 8,
             w +
                 ": y_bf16 must be 16-byte aligned with a row stride that is a multiple of 8 and "
                 "at least N rounded up to 8, got stride " +
                 std::to_string(a.y_stride));
  }
  if (a.w_up != nullptr) {
    BX_CHECK(aligned16(a.w_up), w + ": w_up must be 16-byte aligned");
    BX_CHECK(!a.accumulate && a.n_parts == 0,
             w + ": the gated epilogue takes neither accumulate nor output parts");
  }
}

const char* gemm_tile_name(GemmTile tile) {
  switch (tile) {
    case GemmTile::w64x16:
      return "64x16";
    case GemmTile::w64x32:
      return "64x32";
    case GemmTile::w64x64:
      return "64x64";
    case GemmTile::w128x64:
      return "128x64";
    case GemmTile::w128x128:
      return "128x128";
    case GemmTile::w128x192:
      return "128x192";
    case GemmTile::w128x256:
      return "128x256";
    default:
      return "automatic";
  }
}

GemmTile gemm_pick_tile(int64_t M, int64_t N, int sms) {
  // Small M streams W: narrow tiles, enough of them to keep every SM loading.
  // Each block streams ceil(tiles / sms) tiles of BN rows of W: take the narrower of 64x32 and
  // 64x64 only when it streams fewer rows per block (64x64 loads twice the W bytes per stage).
  if (M <= 64) {
    const int64_t rows32 = ((N + 31) / 32 + sms - 1) / sms * 32;
    const int64_t rows64 = ((N + 63) / 64 + sms - 1) / sms * 64;
    return rows32 < rows64 ? GemmTile::w64x32 : GemmTile::w64x64;
  }
  // Otherwise the fewest waves of tiles, each tile weighted by its area over the rate it reaches
  // on 8192^3 (fraction of the best tile, bench/cuda/GEMM_NOTES.md).
  struct Candidate {
    GemmTile tile;
    int64_t bm, bn;
    double rate;
  };
  constexpr Candidate candidates[] = {{GemmTile::w64x64, 64, 64, 0.36},
                                      {GemmTile::w128x64, 128, 64, 0.6},
                                      {GemmTile::w128x128, 128, 128, 0.87},
                                      {GemmTile::w128x192, 128, 192, 0.97},
                                      {GemmTile::w128x256, 128, 256, 1.0}};
  GemmTile best = GemmTile::w128x256;
  double best_cost = 1e300;
  for (const Candidate& c : candidates) {
    const int64_t tiles = (M + c.bm - 1) / c.bm * ((N + c.bn - 1) / c.bn);
    const int64_t waves = (tiles + sms - 1) / sms;
    const double cost = static_cast<double>(waves * c.bm * c.bn) / c.rate;
    if (cost < best_cost) {
      best_cost = cost;
      best = c.tile;
    }
  }
  return best;
}

void gemm_bf16_grouped(const GemmArgs& args, const GemmGroups& groups, cudaStream_t stream) {
  check_gemm_args(args, "gemm_bf16_grouped");
  BX_CHECK(args.n_parts == 0 && !args.accumulate,
           "gemm_bf16_grouped: no output parts, no accumulate");
  BX_CHECK(groups.count > 0 && groups.tile_group != nullptr && groups.tile_row0 != nullptr &&
               groups.n_tiles != nullptr && groups.offsets != nullptr && groups.max_tiles >= 0,
           "gemm_bf16_grouped: the tile list is incomplete");
  BX_CHECK(groups.tile_rows == 64 || groups.tile_rows == 128, "gemm_bf16_grouped: tiles of " +
                                                                  std::to_string(groups.tile_rows) +
                                                                  " rows; expected 64 or 128");
  if (args.M == 0 || args.N == 0 || groups.max_tiles == 0) return;
  BX_CHECK(args.K > 0, "gemm_bf16_grouped: K must be positive");
  BX_CHECK(groups.x_rows == nullptr || (groups.tile_rows == 128 && groups.x_count > 0),
           "gemm_bf16_grouped: gathered x rows need 128-row tiles and x_count > 0");
  const bool gated = args.w_up != nullptr;
  if (groups.tile_rows == 128) {
    if (groups.x_rows != nullptr) {
      gated ? launch<256, 2, 4, true, true, true>(args, stream, &groups)
            : launch<256, 2, 4, false, true, true>(args, stream, &groups);
    } else {
      gated ? launch<256, 2, 4, true, true>(args, stream, &groups)
            : launch<256, 2, 4, false, true>(args, stream, &groups);
    }
    return;
  }
  // 64-row tiles stream W (few rows per group): 64x32 or 64x64, whichever streams fewer W rows
  // per block over the most tiles there can be (gemm_pick_tile's rule for M <= 64).
  const int64_t chains = gated ? 2 * args.N : args.N, sms = sm_count();
  const int64_t rows32 = (groups.max_tiles * ((chains + 31) / 32) + sms - 1) / sms * 32;
  const int64_t rows64 = (groups.max_tiles * ((chains + 63) / 64) + sms - 1) / sms * 64;
  if (rows32 < rows64) {
    gated ? launch<32, 1, 16, true, true>(args, stream, &groups)
          : launch<32, 1, 16, false, true>(args, stream, &groups);
  } else {
    gated ? launch<64, 1, 12, true, true>(args, stream, &groups)
          : launch<64, 1, 12, false, true>(args, stream, &groups);
  }
}

void gemm_bf16(const GemmArgs& args, cudaStream_t stream, GemmTile tile) {
  check_gemm_args(args, "gemm_bf16");
  if (args.M == 0 || args.N == 0) return;
  if (args.K == 0) {  // no K block: y = 0 (or y unchanged); the reference writes exactly that
    BX_CHECK(args.n_parts == 0 && args.w_up == nullptr,
             "gemm_bf16: output parts and the gated epilogue need K > 0");
    gemm_bf16_reference(args, stream);
    return;
  }
  const bool gated = args.w_up != nullptr;
  // A gated tile of BN outputs of the accumulator makes BN/2 outputs: pick on the 2N chains.
  if (tile == GemmTile::automatic) {
    tile = gemm_pick_tile(args.M, gated ? 2 * args.N : args.N, sm_count());
  }
  if (gated) {
    launch_tile<true>(tile, args, stream);
  } else {
    launch_tile<false>(tile, args, stream);
  }
}

}  // namespace bx::cuda
