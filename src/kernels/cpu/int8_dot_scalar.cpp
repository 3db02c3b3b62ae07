// Scalar path of the int8-activation dot (kernel version cpu-k2; the arithmetic is in
// int8_dot_isa.h), and the one activation quantizer every path uses.
//
// Per output and block: the weight codes c[e] into a local array, the exact integer sums S (and
// Z), then the block's one or two fmas. Plain loops, written to be read against the contract.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/int8_dot_isa.h"
#include "kernels/q8_0_tiles.h"

namespace bx::cpu {
namespace {

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return f16_to_f32(h);
}

// The 4-bit field of element e of a 32-element block with 16 bytes qs (Q4_0 .. Q5_1).
int nibble32(const uint8_t* qs, int e) {
  return (qs[e % 16] >> (4 * (e / 16))) & 15;
}

// Bit e of the little-endian 32-bit qh (Q5_0, Q5_1).
int high_bit32(const uint8_t* qh, int e) {
  return (qh[e / 8] >> (e % 8)) & 1;
}

// y for one weight row and one activation row: the blocks of step 4 in order.
float dot_row(int format, const uint8_t* w, const int8_t* q, const float* dx, const int32_t* sum32,
              int64_t K) {
  const int64_t E = quant::kBlockElements[format];
  const int64_t bytes = quant::kBlockBytes[format];
  float acc = 0.0f;
  for (int64_t b = 0; b < K / E; ++b) {
    const uint8_t* blk = w + b * bytes;
    const int8_t* qb = q + b * E;
    const float dxb = dx[b];
    int32_t S = 0;
    switch (format) {
      case quant::kQ8_0: {
        for (int e = 0; e < 32; ++e) S += int32_t{static_cast<int8_t>(blk[2 + e])} * qb[e];
        acc = std::fma(f16_at(blk) * dxb, static_cast<float>(S), acc);
        break;
      }
      case quant::kQ4_0:
      case quant::kQ4_1: {
        const bool min = format == quant::kQ4_1;
        const uint8_t* qs = blk + (min ? 4 : 2);
        for (int e = 0; e < 32; ++e) S += (nibble32(qs, e) - (min ? 0 : 8)) * qb[e];
        acc = std::fma(f16_at(blk) * dxb, static_cast<float>(S), acc);
        if (min) acc = std::fma(f16_at(blk + 2) * dxb, static_cast<float>(sum32[b]), acc);
        break;
      }
      case quant::kQ5_0:
      case quant::kQ5_1: {
        const bool min = format == quant::kQ5_1;
        const uint8_t* qh = blk + (min ? 4 : 2);
        const uint8_t* qs = qh + 4;
        for (int e = 0; e < 32; ++e) {
          const int c = (nibble32(qs, e) | high_bit32(qh, e) << 4) - (min ? 0 : 16);
          S += c * qb[e];
        }
        acc = std::fma(f16_at(blk) * dxb, static_cast<float>(S), acc);
        if (min) acc = std::fma(f16_at(blk + 2) * dxb, static_cast<float>(sum32[b]), acc);
        break;
      }
      case quant::kQ4_K: {
        const uint8_t* scales = blk + 4;
        const uint8_t* qs = blk + 16;
        int32_t Z = 0;
        for (int j = 0; j < 8; ++j) {
          int sc, mn;
          q4k_scale_min(scales, j, sc, mn);
          int32_t s = 0;
          for (int i = 0; i < 32; ++i) {
            const int c = (qs[32 * (j / 2) + i] >> (4 * (j % 2))) & 15;
            s += c * qb[32 * j + i];
          }
          S += sc * s;
          Z += mn * sum32[b * 8 + j];
        }
        acc = std::fma(f16_at(blk) * dxb, static_cast<float>(S), acc);
        acc = std::fma(-(f16_at(blk + 2) * dxb), static_cast<float>(Z), acc);
        break;
      }
      case quant::kQ6_K: {
        const uint8_t* ql = blk;
        const uint8_t* qh = blk + 128;
        const auto* scales = reinterpret_cast<const int8_t*>(blk + 192);
        for (int i = 0; i < 16; ++i) {
          int32_t s = 0;
          for (int t = 0; t < 16; ++t) {
            const int e = 16 * i + t;
            const int low = (ql[64 * (e / 128) + e % 64] >> (4 * (e % 128 / 64))) & 15;
            const int high = (qh[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
            s += ((low | high << 4) - 32) * qb[e];
          }
          S += scales[i] * s;
        }
        acc = std::fma(f16_at(blk + 208) * dxb, static_cast<float>(S), acc);
        break;
      }
      default:
        break;  // not has_int8_dot: the dispatcher never sends it here
    }
  }
  return acc;
}

}  // namespace

void quantize_rows_int8(const float* x, int64_t x_stride, int64_t M, int64_t K, int64_t block,
                        int8_t* q, float* scale, int32_t* sum32) {
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * x_stride;
    int8_t* qr = q + m * K;
    for (int64_t b = 0; b < K / block; ++b) {
      const float* xb = xr + b * block;
      int8_t* qb = qr + b * block;
      float amax = 0.0f;
      bool finite = true;
      for (int64_t e = 0; e < block; ++e) {
        finite = finite && std::isfinite(xb[e]);
        const float a = std::fabs(xb[e]);
        if (a > amax) amax = a;
      }
      float dx = 0.0f;
      if (!finite) {
        dx = std::nanf("");
        std::memset(qb, 0, static_cast<size_t>(block));
      } else if (amax == 0.0f) {
        std::memset(qb, 0, static_cast<size_t>(block));
      } else {
        dx = amax / 127.0f;
        const float inv = 127.0f / amax;
        for (int64_t e = 0; e < block; ++e) {
          float v = std::nearbyint(xb[e] * inv);
          v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
          qb[e] = static_cast<int8_t>(v);
        }
      }
      scale[m * (K / block) + b] = dx;
    }
    for (int64_t g = 0; g < K / 32; ++g) {
      int32_t s = 0;
      for (int e = 0; e < 32; ++e) s += qr[32 * g + e];
      sum32[m * (K / 32) + g] = s;
    }
  }
}

void int8_dot_scalar(const Int8DotTask* t) {
  const int64_t K = t->x.K;
  const int64_t blocks = K / t->x.block;
  std::vector<uint8_t> tiled_row;  // row n gathered from its tile (kernels/q8_0_tiles.h)
  if (t->q8_0_tiles) tiled_row.resize(static_cast<size_t>(blocks * 34));
  for (int64_t n = t->n_begin; n < t->n_end; ++n) {
    const uint8_t* w = t->w + n * t->w_row_bytes;
    if (t->q8_0_tiles) {
      quant::q8_0_tiled_row(t->w, t->w_row_bytes / 34 * 32, n, K, tiled_row.data());
      w = tiled_row.data();
    }
    for (int64_t m = 0; m < t->M; ++m) {
      t->y[m * t->y_stride + n] = dot_row(t->format, w, t->x.q + m * K, t->x.scale + m * blocks,
                                          t->x.sum32 + m * (K / 32), K);
    }
  }
}

}  // namespace bx::cpu
