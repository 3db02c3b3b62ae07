// Scalar path of the matmul and dot: the canonical lane layout (kernels/lanes.h) in plain C++.
//
// Each output keeps 16 lane accumulators acc[j]; step t adds fma(x[16t+j], w[16t+j], acc[j])
// (zero padding past K), then the tree h = 8, 4, 2, 1 folds the lanes. A 2 x 2 output tile
// shares the loads; the order inside each output is untouched by the tiling.
//
// Block-quantized weights (kernels/quant.h): each block of E weights (32 or 256) is dequantized
// into a local array by quant.h's scalar reference, and its E / 16 steps follow in order.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/matmul_isa.h"

namespace bx::cpu {
namespace {

constexpr int kLanes = 16;

float fold(float acc[kLanes]) {
  for (int h = kLanes / 2; h >= 1; h /= 2) {
    for (int j = 0; j < h; ++j) acc[j] = acc[j] + acc[j + h];
  }
  return acc[0];
}

// Loads 16 weights of step t (zero past K) as f32.
void load_w(const void* w_row, bool bf16, int64_t t, int64_t K, float out[kLanes]) {
  for (int j = 0; j < kLanes; ++j) {
    const int64_t i = t * kLanes + j;
    if (i >= K) {
      out[j] = 0.0f;
    } else if (bf16) {
      const uint32_t bits = uint32_t{static_cast<const uint16_t*>(w_row)[i]} << 16;
      std::memcpy(&out[j], &bits, sizeof(float));
    } else {
      out[j] = static_cast<const float*>(w_row)[i];
    }
  }
}

void load_x(const float* x_row, int64_t t, int64_t K, float out[kLanes]) {
  for (int j = 0; j < kLanes; ++j) {
    const int64_t i = t * kLanes + j;
    out[j] = i < K ? x_row[i] : 0.0f;
  }
}

const void* w_row_ptr(const MatmulTask& task, int64_t n) {
  const int64_t offset = n * task.w_stride;
  if (task.w_bf16) return static_cast<const uint16_t*>(task.w) + offset;
  return static_cast<const float*>(task.w) + offset;
}

// y[m0 .. m0+mr, n0 .. n0+nr] with mr, nr <= 2.
void tile(const MatmulTask& task, int64_t m0, int mr, int64_t n0, int nr) {
  float acc[2][2][kLanes] = {};
  float xv[2][kLanes];
  float wv[2][kLanes];
  const int64_t steps = (task.K + kLanes - 1) / kLanes;
  for (int64_t t = 0; t < steps; ++t) {
    for (int r = 0; r < mr; ++r) load_x(task.x + (m0 + r) * task.x_stride, t, task.K, xv[r]);
    for (int c = 0; c < nr; ++c)
      load_w(w_row_ptr(task, n0 + c), task.w_bf16 != 0, t, task.K, wv[c]);
    for (int r = 0; r < mr; ++r) {
      for (int c = 0; c < nr; ++c) {
        for (int j = 0; j < kLanes; ++j) acc[r][c][j] = std::fma(xv[r][j], wv[c][j], acc[r][c][j]);
      }
    }
  }
  for (int r = 0; r < mr; ++r) {
    for (int c = 0; c < nr; ++c) task.y[(m0 + r) * task.y_stride + n0 + c] = fold(acc[r][c]);
  }
}

// ---------------------------------------------------------------------------------------------
// Block-quantized weights.

int64_t block_bytes(int format) {
  return quant::kBlockBytes[format];
}

int64_t block_elements(int format) {
  return quant::kBlockElements[format];
}

// y[m0 .. m0+mr, n] with mr <= 4: one row of W, dequantized a block at a time into wv by
// kernels/quant.h's scalar reference; block b of E elements is steps [b E / 16, (b + 1) E / 16).
void quant_column(const QuantMatmulTask& task, int64_t m0, int mr, int64_t n) {
  float acc[4][kLanes] = {};
  float wv[quant::kMaxBlockElements];
  const int64_t bytes = block_bytes(task.format);
  const int64_t elements = block_elements(task.format);
  const uint8_t* row = task.w + n * task.w_row_bytes;
  for (int64_t b = 0; b < task.K / elements; ++b) {
    quant::dequantize_block(task.format, row + b * bytes, wv);
    for (int r = 0; r < mr; ++r) {
      const float* x = task.x + (m0 + r) * task.x_stride + b * elements;
      for (int64_t s = 0; s < elements; s += kLanes) {
        for (int j = 0; j < kLanes; ++j) acc[r][j] = std::fma(x[s + j], wv[s + j], acc[r][j]);
      }
    }
  }
  for (int r = 0; r < mr; ++r) task.y[(m0 + r) * task.y_stride + n] = fold(acc[r]);
}

}  // namespace

void qmatmul_scalar(const QuantMatmulTask* task) {
  for (int64_t n = task->n_begin; n < task->n_end; ++n) {
    for (int64_t m = 0; m < task->M; m += 4) {
      quant_column(*task, m, task->M - m >= 4 ? 4 : static_cast<int>(task->M - m), n);
    }
  }
}

void dequant_rows_scalar(const uint8_t* w, int64_t w_row_bytes, int format, int64_t rows, int64_t K,
                         float* out) {
  const int64_t bytes = block_bytes(format);
  const int64_t elements = block_elements(format);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < K / elements; ++b) {
      quant::dequantize_block(format, w + r * w_row_bytes + b * bytes, out + r * K + b * elements);
    }
  }
}

void matmul_scalar(const MatmulTask* task) {
  for (int64_t n = task->n_begin; n < task->n_end; n += 2) {
    const int nr = task->n_end - n >= 2 ? 2 : 1;
    for (int64_t m = 0; m < task->M; m += 2) {
      const int mr = task->M - m >= 2 ? 2 : 1;
      tile(*task, m, mr, n, nr);
    }
  }
}

float dot_scalar(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  float av[kLanes];
  float bv[kLanes];
  const int64_t steps = (n + kLanes - 1) / kLanes;
  for (int64_t t = 0; t < steps; ++t) {
    load_x(a, t, n, av);
    load_x(b, t, n, bv);
    for (int j = 0; j < kLanes; ++j) acc[j] = std::fma(av[j], bv[j], acc[j]);
  }
  return fold(acc);
}

}  // namespace bx::cpu
