// Matmul and dot dispatch: y[M,N] = x[M,K] @ W[N,K]^T on the chosen ISA path, threads over N.
//
// The ISA kernels live in kernels/cpu/matmul_{scalar,avx2,avx512}.cpp behind the plain entry
// points of kernels/cpu/matmul_isa.h. This file validates arguments, hands chunks of output
// columns to the pool's threads (each output is computed whole by one thread, so the split
// changes no bits) and holds the scalar reference and the split_k_by_m order (fast mode and
// negative control).
#include "kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/cpu/int8_dot_isa.h"
#include "kernels/cpu/matmul_isa.h"
#include "kernels/lanes.h"
#include "kernels/q8_0_tiles.h"
#include "kernels/quant.h"

namespace bx {
namespace {

// Output columns per unit of work handed to a thread (a multiple of every ISA's tile width).
constexpr int64_t kColumnChunk = 48;

// Block-quantized weights: below this M the ISA's fused kernel dequantizes as it goes; from it
// on, a chunk's rows are dequantized once into a panel that the f32 kernel then reads M times.
// Either way each output is the canonical dot of the same f32 values, so the choice is speed only.
// The formats with register kernels (Q8_0 / Q4_0 / Q4_1) dequantize cheaply per row tile; the
// others (dequantized through an L1 buffer) would repeat that work for each tile of x rows, so
// they take the panel from M = 2 on.
constexpr int64_t kPanelMinM = 16;
constexpr int64_t kBufferedPanelMinM = 2;

struct Dense {
  int64_t x_stride, w_stride, y_stride;
};

Dense checked(const MatmulArgs& a) {
  BX_CHECK(a.M >= 0 && a.N >= 0 && a.K >= 0, "matmul: negative size M=" + std::to_string(a.M) + " N=" +
                                              std::to_string(a.N) + " K=" + std::to_string(a.K));
  BX_CHECK(a.w_dtype == DType::f32 || a.w_dtype == DType::bf16 || quant::is_block_format(a.w_dtype),
        "matmul: weight dtype " + std::string(dtype_name(a.w_dtype)) +
            " not supported: expected F32, BF16, " + quant::block_format_names());
  const Dense d{a.x_stride == 0 ? a.K : a.x_stride, a.w_stride == 0 ? a.K : a.w_stride,
                a.y_stride == 0 ? a.N : a.y_stride};
  if (quant::is_block_format(a.w_dtype)) {
    const int64_t block = quant::block_elements(a.w_dtype);
    BX_CHECK(a.K % block == 0 && d.w_stride % block == 0,
             "matmul: " + std::string(dtype_name(a.w_dtype)) + " weights need K (" +
                 std::to_string(a.K) + ") and the row stride (" + std::to_string(d.w_stride) +
                 ") to be multiples of the block size " + std::to_string(block));
  }
  if (a.w_layout == WeightLayout::q8_0_tiles) {
    BX_CHECK(a.w_dtype == DType::q8_0 && a.quant_dot == QuantDot::int8_activations &&
                 a.N % quant::kQ8TileRows == 0,
             "matmul: the q8_0_tiles layout takes Q8_0 weights with the int8-activation "
             "arithmetic and N a multiple of 8, got " +
                 std::string(dtype_name(a.w_dtype)) + " weights, N = " + std::to_string(a.N));
  }
  BX_CHECK(d.x_stride >= a.K && d.w_stride >= a.K && d.y_stride >= a.N,
        "matmul: row stride below row length (x_stride=" + std::to_string(d.x_stride) +
            ", w_stride=" + std::to_string(d.w_stride) + " for K=" + std::to_string(a.K) +
            ", y_stride=" + std::to_string(d.y_stride) + " for N=" + std::to_string(a.N) + ")");
  const bool empty = a.M == 0 || a.N == 0;
  BX_CHECK(empty || (a.y != nullptr && (a.K == 0 || (a.x != nullptr && a.w != nullptr))),
        "matmul: null x, w or y pointer");
  return d;
}

// Bytes from one row of W to the next.
int64_t w_row_bytes(const MatmulArgs& a, const Dense& d) {
  switch (a.w_dtype) {
    case DType::f32: return d.w_stride * 4;
    case DType::bf16: return d.w_stride * 2;
    default: return quant::bytes_for(a.w_dtype, d.w_stride);
  }
}

// Row n of W as f32 (bf16 widened exactly, blocks dequantized) into out[0 .. K).
void weight_row(const MatmulArgs& a, const Dense& d, int64_t n, float* out) {
  if (a.w_layout == WeightLayout::q8_0_tiles) {
    std::vector<uint8_t> row(static_cast<size_t>(quant::bytes_for(a.w_dtype, a.K)));
    quant::q8_0_tiled_row(static_cast<const uint8_t*>(a.w), d.w_stride, n, a.K, row.data());
    quant::dequantize_row(a.w_dtype, row.data(), a.K, out);
  } else if (quant::is_block_format(a.w_dtype)) {
    quant::dequantize_row(a.w_dtype, static_cast<const std::byte*>(a.w) + n * w_row_bytes(a, d),
                          a.K, out);
  } else if (a.w_dtype == DType::bf16) {
    const uint16_t* row = static_cast<const uint16_t*>(a.w) + n * d.w_stride;
    for (int64_t k = 0; k < a.K; ++k) out[k] = bf16_to_f32(row[k]);
  } else {
    const float* row = static_cast<const float*>(a.w) + n * d.w_stride;
    std::copy(row, row + a.K, out);
  }
}

// Number of K parts the negative control uses for a batch of M rows.
int64_t split_parts(int64_t M) {
  return 1 + M % 3;
}

// y[m, n] for the columns [n0, n1), scalar, in the order args.order asks for.
void reference_columns(const MatmulArgs& a, const Dense& d, int64_t n0, int64_t n1) {
  std::vector<float> w(static_cast<size_t>(a.K));
  const int64_t parts = a.order == ReductionOrder::split_k_by_m ? split_parts(a.M) : 1;
  const int64_t part_len = parts > 1 ? (a.K + parts - 1) / parts : a.K;
  for (int64_t n = n0; n < n1; ++n) {
    weight_row(a, d, n, w.data());
    for (int64_t m = 0; m < a.M; ++m) {
      const float* x = a.x + m * d.x_stride;
      float y = lanes::dot_reference(x, w.data(), std::min(part_len, a.K));
      for (int64_t p = 1; p < parts; ++p) {
        const int64_t begin = std::min(p * part_len, a.K);
        const int64_t end = std::min(begin + part_len, a.K);
        y = y + lanes::dot_reference(x + begin, w.data() + begin, end - begin);
      }
      a.y[m * d.y_stride + n] = y;
    }
  }
}

// 64-byte aligned work space of one thread, allocated on its first matmul.
float* thread_scratch() {
  struct Buffer {
    float* data;
    Buffer()
        : data(static_cast<float*>(
              ::operator new (static_cast<size_t>(cpu::kMatmulScratchFloats) * sizeof(float),
                              std::align_val_t{64}))) {}
    ~Buffer() { ::operator delete (data, std::align_val_t{64}); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
  };
  thread_local Buffer buffer;
  return buffer.data;
}

// The dequantized panel of one thread: kColumnChunk rows of K floats, grown on first use.
float* thread_panel(int64_t K) {
  thread_local std::vector<float> panel;
  const size_t need = static_cast<size_t>(kColumnChunk * K);
  if (panel.size() < need) panel.resize(need);
  return panel.data();
}

cpu::QuantFormat quant_format(DType t) {
  return quant::block_format(t).id;
}

// Columns [n0, n1) of a matmul with block-quantized weights on the calling thread.
void quant_columns(const MatmulArgs& a, const Dense& d, Isa isa, int64_t n0, int64_t n1) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const int64_t row_bytes = w_row_bytes(a, d);
  const int format = quant_format(a.w_dtype);
  if (a.M < (cpu::has_register_kernel(format) ? kPanelMinM : kBufferedPanelMinM)) {
    const cpu::QuantMatmulTask task{a.x, d.x_stride, w,   row_bytes, format, a.y,
                                    d.y_stride, a.M, a.K, n0,        n1};
    switch (isa) {
      case Isa::scalar:
        cpu::qmatmul_scalar(&task);
        break;
      case Isa::avx2:
        cpu::qmatmul_avx2(&task);
        break;
      case Isa::avx512:
        cpu::qmatmul_avx512(&task);
        break;
    }
    return;
  }
  // For each kColumnChunk rows: panel [nc, K] = dequant(W[nb .. nb+nc)), then
  // y[:, nb .. nb+nc) = x @ panel^T in f32.
  float* panel = thread_panel(a.K);
  for (int64_t nb = n0; nb < n1; nb += kColumnChunk) {
    const int64_t nc = std::min(kColumnChunk, n1 - nb);
    const uint8_t* rows = w + nb * row_bytes;
    const cpu::MatmulTask task{a.x, d.x_stride, panel, a.K, 0,  a.y + nb, d.y_stride,
                               a.M, a.K,        0,     nc,  thread_scratch()};
    switch (isa) {
      case Isa::scalar:
        cpu::dequant_rows_scalar(rows, row_bytes, format, nc, a.K, panel);
        cpu::matmul_scalar(&task);
        break;
      case Isa::avx2:
        cpu::dequant_rows_avx2(rows, row_bytes, format, nc, a.K, panel);
        cpu::matmul_avx2(&task);
        break;
      case Isa::avx512:
        cpu::dequant_rows_avx512(rows, row_bytes, format, nc, a.K, panel);
        cpu::matmul_avx512(&task);
        break;
    }
  }
}

// split_k_by_m at the speed of the canonical kernels (CPU fast mode, R8): part p is an ordinary
// matmul over the contiguous slice [p * part_len, min((p + 1) * part_len, K)) of K, whose
// canonical dot is exactly the reference's dot of that part, and the parts are added left to
// right as reference_columns adds them, so the bits are the reference's. Block-quantized slices
// must start on a block boundary: returns false (the caller takes the scalar reference) when a
// part length is not a multiple of the block size. run_piece(piece) computes one part.
template <typename RunPiece>
bool split_k_in_parts(const MatmulArgs& a, const Dense& d, const RunPiece& run_piece) {
  const int64_t parts = split_parts(a.M);
  const int64_t part_len = parts > 1 ? (a.K + parts - 1) / parts : a.K;
  const bool blocks = quant::is_block_format(a.w_dtype);
  if (blocks && part_len % quant::block_elements(a.w_dtype) != 0) return false;
  thread_local std::vector<float> partial;  // [M, N] of one part, grown once
  partial.resize(static_cast<size_t>(a.M * a.N));
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t begin = std::min(p * part_len, a.K);
    const int64_t end = std::min(begin + part_len, a.K);
    MatmulArgs piece = a;
    piece.order = ReductionOrder::canonical;
    piece.x = a.x + begin;
    piece.x_stride = d.x_stride;
    piece.w_stride = d.w_stride;
    if (blocks) {
      // a tile holds 8 rows' blocks side by side (kernels/q8_0_tiles.h)
      const int64_t rows_side_by_side =
          a.w_layout == WeightLayout::q8_0_tiles ? quant::kQ8TileRows : 1;
      piece.w = static_cast<const std::byte*>(a.w) +
                rows_side_by_side * quant::bytes_for(a.w_dtype, begin);
    } else if (a.w_dtype == DType::bf16) {
      piece.w = static_cast<const uint16_t*>(a.w) + begin;
    } else {
      piece.w = static_cast<const float*>(a.w) + begin;
    }
    piece.K = end - begin;
    piece.y = p == 0 ? a.y : partial.data();
    piece.y_stride = p == 0 ? d.y_stride : a.N;
    run_piece(piece);
    if (p == 0) continue;
    for (int64_t m = 0; m < a.M; ++m) {
      float* y = a.y + m * d.y_stride;
      const float* part = partial.data() + m * a.N;
      for (int64_t n = 0; n < a.N; ++n) y[n] = y[n] + part[n];
    }
  }
  return true;
}

// True when args takes the int8-activation arithmetic (QuantDot::int8_activations).
bool uses_int8_dot(const MatmulArgs& a) {
  return a.quant_dot == QuantDot::int8_activations && quant::is_block_format(a.w_dtype) &&
         cpu::has_int8_dot(quant_format(a.w_dtype));
}

// The rows of x quantized per weight block (step 1 of kernels/cpu/int8_dot_isa.h), in buffers
// of the calling thread, rows spread over the pool (each row is one worker's: no bits depend
// on the split).
cpu::Int8Rows quantize_activations(const MatmulArgs& a, const Dense& d, ThreadPool* pool) {
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> scale;
  thread_local std::vector<int32_t> sum32;
  const int64_t E = quant::block_elements(a.w_dtype);
  q.resize(static_cast<size_t>(a.M * a.K));
  scale.resize(static_cast<size_t>(a.M * (a.K / E)));
  sum32.resize(static_cast<size_t>(a.M * (a.K / 32)));
  // Plain pointers: inside the workers, the names q, scale, sum32 are their own thread_locals.
  int8_t* const q_data = q.data();
  float* const scale_data = scale.data();
  int32_t* const sum32_data = sum32.data();
  auto rows = [&](int64_t m0, int64_t m1) {
    cpu::quantize_rows_int8(a.x + m0 * d.x_stride, d.x_stride, m1 - m0, a.K, E, q_data + m0 * a.K,
                            scale_data + m0 * (a.K / E), sum32_data + m0 * (a.K / 32));
  };
  if (pool == nullptr || pool->size() == 1 || a.M < 8) {
    rows(0, a.M);
  } else {
    pool->parallel_for(a.M, 4, rows);
  }
  return {q_data, scale_data, sum32_data, a.K, E};
}

// The int8-activation matmul, columns [n0, n1) on the calling thread.
void int8_columns(const MatmulArgs& a, const Dense& d, const cpu::Int8Rows& xq, Isa isa, int64_t n0,
                  int64_t n1) {
  cpu::Int8DotTask task{};
  task.x = xq;
  task.M = a.M;
  task.w = static_cast<const uint8_t*>(a.w);
  task.w_row_bytes = w_row_bytes(a, d);
  task.format = quant_format(a.w_dtype);
  task.q8_0_tiles = a.w_layout == WeightLayout::q8_0_tiles;
  task.y = a.y;
  task.y_stride = d.y_stride;
  task.n_begin = n0;
  task.n_end = n1;
  if (isa == Isa::scalar) {
    cpu::int8_dot_scalar(&task);
  } else {
    cpu::int8_dot_avx2(&task);  // AVX-512 CPUs have AVX2; the bits are the same
  }
}

}  // namespace

void matmul_reference(const MatmulArgs& args) {
  const Dense d = checked(args);
  if (uses_int8_dot(args) && args.M > 0 && args.N > 0 && args.K > 0) {
    if (args.order == ReductionOrder::split_k_by_m &&
        split_k_in_parts(args, d, [](const MatmulArgs& piece) { matmul_reference(piece); })) {
      return;
    }
    if (args.order == ReductionOrder::canonical) {
      const cpu::Int8Rows xq = quantize_activations(args, d, nullptr);
      int8_columns(args, d, xq, Isa::scalar, 0, args.N);
      return;
    }
  }
  reference_columns(args, d, 0, args.N);
}

void matmul(const MatmulArgs& args, ThreadPool& pool) {
  matmul(args, pool, active_isa());
}

void matmul(const MatmulArgs& args, ThreadPool& pool, Isa isa) {
  const Dense d = checked(args);
  BX_CHECK(isa_supported(isa),
        "matmul: ISA " + std::string(isa_name(isa)) + " is not supported by this CPU");
  if (args.M == 0 || args.N == 0) return;
  if (args.order == ReductionOrder::split_k_by_m) {
    if (split_k_in_parts(args, d, [&](const MatmulArgs& piece) { matmul(piece, pool, isa); })) {
      return;
    }
    pool.parallel_for(args.N, kColumnChunk,
                      [&](int64_t n0, int64_t n1) { reference_columns(args, d, n0, n1); });
    return;
  }
  const bool blocks = quant::is_block_format(args.w_dtype);
  const bool int8 = uses_int8_dot(args) && args.K > 0;
  cpu::Int8Rows xq{};
  if (int8) xq = quantize_activations(args, d, &pool);
  // Columns [n0, n1) on the calling thread.
  auto columns = [&](int64_t n0, int64_t n1) {
    if (int8) {
      int8_columns(args, d, xq, isa, n0, n1);
      return;
    }
    if (blocks) {
      quant_columns(args, d, isa, n0, n1);
      return;
    }
    const cpu::MatmulTask task{
        args.x, d.x_stride,      args.w, d.w_stride, args.w_dtype == DType::bf16 ? 1 : 0,
        args.y, d.y_stride,      args.M, args.K,     n0,
        n1,     thread_scratch()};
    switch (isa) {
      case Isa::scalar:
        cpu::matmul_scalar(&task);
        break;
      case Isa::avx2:
        cpu::matmul_avx2(&task);
        break;
      case Isa::avx512:
        cpu::matmul_avx512(&task);
        break;
    }
  };
  // Threads take chunks of columns from a shared counter until none are left, so a thread that
  // is slowed (another process on its core) simply does fewer chunks. Which thread computes a
  // column never changes its bits: each output is one thread's canonical dot.
  const int64_t chunks = (args.N + kColumnChunk - 1) / kColumnChunk;
  if (pool.size() == 1 || chunks == 1) {
    columns(0, args.N);
    return;
  }
  std::atomic<int64_t> next_chunk{0};
  pool.parallel_for(pool.size(), 1, [&](int64_t, int64_t) {
    for (int64_t c = next_chunk.fetch_add(1); c < chunks; c = next_chunk.fetch_add(1)) {
      columns(c * kColumnChunk, std::min(args.N, (c + 1) * kColumnChunk));
    }
  });
}

float dot(const float* a, const float* b, int64_t n) {
  return dot(a, b, n, active_isa());
}

float dot(const float* a, const float* b, int64_t n, Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return cpu::dot_avx512(a, b, n);
    case Isa::avx2:
      return cpu::dot_avx2(a, b, n);
    case Isa::scalar:
      break;
  }
  return cpu::dot_scalar(a, b, n);
}

}  // namespace bx
