// Rotary position embedding (RoPE), applied in place to the heads of q or k.
//
// Pairs: GGUF's llama layout rotates adjacent dimensions (2i, 2i+1); the Hugging Face layout
// rotates (i, i + head_dim/2). Pair i of the token at position p turns by angle
//   p * theta^(-2i / head_dim):
//   x0' = x0 * c - x1 * s,   x1' = x0 * s + x1 * c     (no FMA: two products, then one add)
// The cos/sin table is computed once at load time in double precision and rounded to float, so
// the forward pass calls no transcendental function and prefill and decode read the same values.
#pragma once

#include <cstdint>
#include <vector>

namespace bx {

class ThreadPool;

enum class RopeLayout { adjacent_pairs, half_split };

struct RopeTable {
  int head_dim = 0;  // rotated dims (all of the head)
  int max_positions = 0;
  RopeLayout layout = RopeLayout::adjacent_pairs;
  std::vector<float> cos;  // [max_positions, head_dim / 2]
  std::vector<float> sin;  // [max_positions, head_dim / 2]
};

RopeTable make_rope_table(int head_dim, double theta, int max_positions, RopeLayout layout);

// x [T, n_heads * head_dim] (row stride x_stride); positions [T], each < table.max_positions.
void rope_inplace(float* x, int64_t x_stride, const int32_t* positions, int64_t T, int n_heads,
                  const RopeTable& table, ThreadPool& pool);

}  // namespace bx
