// Matmul: y[M,N] = x[M,K] @ W[N,K]^T, f32 activations, f32 / bf16 / block-quantized (Q8_0, Q4_1,
// Q4_K, ...: kernels/quant.h) weights, f32 output.
//
// Contract (INVARIANCE.md R1-R3, R7):
//   y[m,n] = canonical dot(x[m,:], W[n,:]) over K, in the lane layout of kernels/lanes.h, with
//   bf16 weights widened exactly to f32 first and block-quantized weights dequantized to f32
//   first with the element math of kernels/quant.h (the values gguf::dequantize_to_f32 gives):
//   so a quantized W gives the bits of its dequantized f32 copy, on every path, for every M.
//   So y[m,n] depends only on row m of x, row n of W and K: never on M, on the other rows, on
//   the tile that computed it, on the thread count or on the ISA path. Threads split N (output
//   columns), never K.
//
// K = 0 gives y = +0.0f (the empty canonical dot). Bad arguments (negative sizes, a stride below
// the row length, another weight dtype, a quantized W whose K or row stride is not a multiple of
// its block size, 32 or 256) throw bx::Error.
//
// ReductionOrder::split_k_by_m is the negative control the invariance tests use to show they can
// fail: it splits K into S = 1 + (M % 3) contiguous parts of ceil(K / S) elements (the last one
// shorter), reduces each part canonically and adds the parts left to right, as BLAS libraries
// split K for small M. It is the CPU backend's fast mode (--mode fast, INVARIANCE.md R8): the
// conventional batch-dependent baseline, labelled in the fingerprint, never the default, and not
// faster. matmul() runs each part through the canonical kernels and adds the parts (the
// reference's bits); a block-quantized W whose part length is not a multiple of its block size
// takes the scalar reference instead (slow).
#pragma once

#include <cstdint>

#include "core/cpu_features.h"
#include "core/dtype.h"

namespace bx {

class ThreadPool;

enum class ReductionOrder { canonical, split_k_by_m };

// How block-quantized weights meet the activations.
//   dequantized_f32 (kernel version cpu-k1, the default): the contract above, bit for bit the
//     f32 matmul of the load-time dequantized weights.
//   int8_activations (cpu-k2): for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K weights, each
//     activation row is quantized to int8 per weight block and each block's dot is an exact
//     integer sum, scaled and accumulated in block order (kernels/cpu/int8_dot_isa.h has the
//     arithmetic). Invariant by construction like cpu-k1 (the order is a function of K alone,
//     the same on every ISA, thread count and M) but NOT the f32 bits: an approximation of them,
//     relative error about 1e-2 (llama.cpp's arithmetic for these formats, in a fixed order).
//     Other formats and f32 / bf16 weights keep the cpu-k1 arithmetic.
enum class QuantDot { dequantized_f32, int8_activations };

// Where W's bytes are. rows: row n at w + n * row bytes (GGUF). q8_0_tiles: Q8_0 in tiles of 8
// rows (kernels/q8_0_tiles.h), for the int8-activation arithmetic only, N a multiple of 8; the
// same bits as the rows layout, read as one stream.
enum class WeightLayout { rows, q8_0_tiles };

// Row strides are in elements; 0 means dense (K for x and W, N for y).
struct MatmulArgs {
  const float* x = nullptr;  // [M, K], row stride x_stride (elements)
  int64_t x_stride = 0;
  // [N, K], row stride w_stride (elements): f32, bf16 (uint16_t bits), or rows of ggml blocks
  // (kernels/quant.h; row n starts w_stride / E blocks after row n - 1, E the block size).
  const void* w = nullptr;
  DType w_dtype = DType::f32;
  int64_t w_stride = 0;
  float* y = nullptr;  // [M, N], row stride y_stride (elements); must not overlap x or W
  int64_t y_stride = 0;
  int64_t M = 0, N = 0, K = 0;
  ReductionOrder order = ReductionOrder::canonical;
  QuantDot quant_dot = QuantDot::dequantized_f32;
  WeightLayout w_layout = WeightLayout::rows;
};

// Fast path on the active ISA (or `isa`), threads over N.
void matmul(const MatmulArgs& args, ThreadPool& pool);
void matmul(const MatmulArgs& args, ThreadPool& pool, Isa isa);

// Plain scalar reference, one output at a time through lanes::dot_reference (honours `order`);
// with int8_activations, the scalar int8 path for the formats it covers
// (kernels/cpu/int8_dot_isa.h).
void matmul_reference(const MatmulArgs& args);

// Canonical dot product of n elements on the active ISA (same bits as lanes::dot_reference);
// n = 0 gives +0.0f. The overload taking `isa` does not check it: it must be supported.
float dot(const float* a, const float* b, int64_t n);
float dot(const float* a, const float* b, int64_t n, Isa isa);

}  // namespace bx
