#include "kernels/rope.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"

namespace bx {

double rope_frequency(int i, int head_dim, double theta, const RopeScaling& scaling) {
  // freq_i = theta^(-2i / head_dim), all in double.
  const double freq = std::pow(theta, -2.0 * i / head_dim);
  if (scaling.kind == RopeScaling::Kind::none) return freq;
  if (scaling.kind == RopeScaling::Kind::linear) return freq / scaling.factor;
  if (scaling.kind == RopeScaling::Kind::freq_factors) {
    BX_CHECK(i >= 0 && static_cast<size_t>(i) < scaling.freq_factors.size(),
             "rope frequency factor " + std::to_string(i) +
                 " is missing: " + std::to_string(scaling.freq_factors.size()) + " are given");
    return freq / static_cast<double>(scaling.freq_factors[static_cast<size_t>(i)]);
  }
  const double pi = 3.14159265358979323846;
  const double L = scaling.original_max_positions;
  const double wavelength = 2.0 * pi / freq;
  const double low_freq_wavelength = L / scaling.low_freq_factor;
  const double high_freq_wavelength = L / scaling.high_freq_factor;
  if (wavelength > low_freq_wavelength) return freq / scaling.factor;
  if (wavelength < high_freq_wavelength) return freq;
  const double smooth = (L / wavelength - scaling.low_freq_factor) /
                        (scaling.high_freq_factor - scaling.low_freq_factor);
  return (1.0 - smooth) * freq / scaling.factor + smooth * freq;
}

RopeTable make_rope_table(int head_dim, double theta, int max_positions, RopeLayout layout,
                          const RopeScaling& scaling) {
  BX_CHECK(head_dim > 0 && head_dim % 2 == 0,
        "rope head_dim " + std::to_string(head_dim) + " is invalid: expected an even number > 0");
  BX_CHECK(theta > 0.0 && std::isfinite(theta),
        "rope theta " + std::to_string(theta) + " is invalid: expected a finite number > 0");
  BX_CHECK(max_positions >= 0,
        "rope max_positions " + std::to_string(max_positions) + " is invalid: expected >= 0");
  if (scaling.kind == RopeScaling::Kind::linear) {
    BX_CHECK(scaling.factor > 0.0 && std::isfinite(scaling.factor),
             "rope linear factor " + std::to_string(scaling.factor) +
                 " is invalid: expected a finite number > 0");
  }
  if (scaling.kind == RopeScaling::Kind::llama3) {
    BX_CHECK(scaling.factor > 0.0 && std::isfinite(scaling.factor),
             "rope llama3 factor " + std::to_string(scaling.factor) +
                 " is invalid: expected a finite number > 0");
    BX_CHECK(scaling.low_freq_factor > 0.0 && std::isfinite(scaling.high_freq_factor) &&
                 scaling.low_freq_factor < scaling.high_freq_factor,
             "rope llama3 low_freq_factor " + std::to_string(scaling.low_freq_factor) +
                 " and high_freq_factor " + std::to_string(scaling.high_freq_factor) +
                 " are invalid: expected 0 < low_freq_factor < high_freq_factor");
    BX_CHECK(scaling.original_max_positions > 0,
             "rope llama3 original_max_position_embeddings " +
                 std::to_string(scaling.original_max_positions) + " is invalid: expected > 0");
  }
  if (scaling.kind == RopeScaling::Kind::freq_factors) {
    BX_CHECK(scaling.freq_factors.size() == static_cast<size_t>(head_dim / 2),
             "rope frequency factors: " + std::to_string(scaling.freq_factors.size()) +
                 " values, expected head_dim / 2 = " + std::to_string(head_dim / 2));
    for (size_t i = 0; i < scaling.freq_factors.size(); ++i) {
      const float f = scaling.freq_factors[i];
      BX_CHECK(f > 0.0f && std::isfinite(f), "rope frequency factor " + std::to_string(i) + " is " +
                                                 std::to_string(f) +
                                                 ": expected a finite number > 0");
    }
  }
  RopeTable table;
  table.head_dim = head_dim;
  table.max_positions = max_positions;
  table.layout = layout;
  const int half = head_dim / 2;
  const size_t size = static_cast<size_t>(max_positions) * static_cast<size_t>(half);
  table.cos.resize(size);
  table.sin.resize(size);
  for (int i = 0; i < half; ++i) {
    // angle = p * freq_i, all in double.
    const double freq = rope_frequency(i, head_dim, theta, scaling);
    for (int p = 0; p < max_positions; ++p) {
      const double angle = p * freq;
      const size_t at = static_cast<size_t>(p) * static_cast<size_t>(half) + static_cast<size_t>(i);
      table.cos[at] = static_cast<float>(std::cos(angle));
      table.sin[at] = static_cast<float>(std::sin(angle));
    }
  }
  return table;
}

void rope_inplace(float* x, int64_t x_stride, const int32_t* positions, int64_t T, int n_heads,
                  const RopeTable& table, ThreadPool& pool) {
  // Validate on the calling thread, so a bad position throws here rather than in a worker.
  for (int64_t t = 0; t < T; ++t) {
    BX_CHECK(positions[t] >= 0 && positions[t] < table.max_positions,
          "rope position " + std::to_string(positions[t]) + " of token " + std::to_string(t) +
              " is out of range: expected 0 to " + std::to_string(table.max_positions - 1));
  }
  const int head_dim = table.head_dim;
  const int half = head_dim / 2;
  // Pair i of a head: (2i, 2i+1) in GGUF's llama layout, (i, i + half) in Hugging Face's.
  const bool adjacent = table.layout == RopeLayout::adjacent_pairs;
  const int64_t i0_step = adjacent ? 2 : 1;
  const int64_t i1_offset = adjacent ? 1 : half;
  pool.parallel_for(T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t row = static_cast<int64_t>(positions[t]) * half;
      const float* cs = table.cos.data() + row;
      const float* sn = table.sin.data() + row;
      for (int h = 0; h < n_heads; ++h) {
        float* xh = x + t * x_stride + static_cast<int64_t>(h) * head_dim;
        for (int i = 0; i < half; ++i) {
          float* p0 = xh + i * i0_step;
          float* p1 = p0 + i1_offset;
          const float x0 = *p0;
          const float x1 = *p1;
          // x0' = x0 c - x1 s,  x1' = x0 s + x1 c   (two products, then one add; no fma)
          *p0 = x0 * cs[i] - x1 * sn[i];
          *p1 = x0 * sn[i] + x1 * cs[i];
        }
      }
    }
  });
}

}  // namespace bx
