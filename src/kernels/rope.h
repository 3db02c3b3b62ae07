// Rotary position embedding (RoPE), applied in place to the heads of q or k.
//
// Pairs: GGUF's llama layout rotates adjacent dimensions (2i, 2i+1); the Hugging Face layout
// rotates (i, i + head_dim/2) ("rotate-half"). Pair i of the token at position p turns by angle
//   p * freq_i,   freq_i = theta^(-2i / head_dim)   (adjusted by the scaling below, if any):
//   x0' = x0 * c - x1 * s,   x1' = x0 * s + x1 * c     (no FMA: two products, then one add)
//
// Llama 3 scaling (rope_scaling {"rope_type": "llama3"}, as transformers computes it), with
// wavelength w_i = 2 pi / freq_i, L = original_max_positions, lo = L / low_freq_factor and
// hi = L / high_freq_factor:
//   w_i > lo  (low frequencies):   freq_i / factor
//   w_i < hi  (high frequencies):  freq_i
//   otherwise:  (1 - s) * freq_i / factor + s * freq_i,   s = (L / w_i - low_freq_factor) /
//                                                            (high_freq_factor - low_freq_factor)
// Linear scaling (rope_scaling {"rope_type": "linear"}, GGUF rope.scaling.type "linear"; Gemma 3's
// full-attention layers): freq_i / factor.
// Frequency factors (GGUF: the tensor rope_freqs.weight [head_dim / 2], which is how llama.cpp's
// converter stores Llama 3 scaling): freq_i / freq_factors[i].
// The cos/sin table is computed once at load time in double precision and rounded to float, so
// the forward pass calls no transcendental function and prefill and decode read the same values.
#pragma once

#include <cstdint>
#include <vector>

namespace bx {

class ThreadPool;

enum class RopeLayout { adjacent_pairs, half_split };

struct RopeScaling {
  enum class Kind { none, llama3, freq_factors, linear };
  Kind kind = Kind::none;
  double factor = 1.0;  // llama3, linear
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_positions = 8192;
  std::vector<float> freq_factors;  // freq_factors: [head_dim / 2], each finite and > 0
};

struct RopeTable {
  int head_dim = 0;  // rotated dims (all of the head)
  int max_positions = 0;
  RopeLayout layout = RopeLayout::adjacent_pairs;
  std::vector<float> cos;  // [max_positions, head_dim / 2]
  std::vector<float> sin;  // [max_positions, head_dim / 2]
};

// Throws bx::Error for a bad head_dim, theta, max_positions or llama3 scaling parameter
// (factor > 0, 0 < low_freq_factor < high_freq_factor, original_max_positions > 0), or frequency
// factors that are not head_dim / 2 finite numbers > 0.
RopeTable make_rope_table(int head_dim, double theta, int max_positions, RopeLayout layout,
                          const RopeScaling& scaling = {});

// freq_i of pair i (0 <= i < head_dim / 2) after scaling, in double: the value the table uses.
double rope_frequency(int i, int head_dim, double theta, const RopeScaling& scaling);

// x [T, n_heads * head_dim] (row stride x_stride); positions [T], each < table.max_positions.
void rope_inplace(float* x, int64_t x_stride, const int32_t* positions, int64_t T, int n_heads,
                  const RopeTable& table, ThreadPool& pool);

}  // namespace bx
