// The static shape of a decoder model, read and validated at load time.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/rope.h"

namespace bx {

struct ModelConfig {
  std::string architecture;  // "llama"
  int vocab_size = 0;        // V
  int dim = 0;               // D, the residual stream width
  int n_layers = 0;          // L
  int n_heads = 0;           // H query heads
  int n_kv_heads = 0;        // Hkv key/value heads (GQA: H % Hkv == 0)
  int head_dim = 0;          // Dh; H * Dh is the width of q, Hkv * Dh of k and v
  int ffn_dim = 0;           // F, the SwiGLU hidden width
  int context_length = 0;    // the longest sequence the model was trained for
  float rms_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeLayout rope_layout = RopeLayout::adjacent_pairs;
  bool tied_output = false;  // output projection is the token embedding

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Checks every field against the others; throws bx::Error naming the first bad one.
  void validate() const;
};

}  // namespace bx
