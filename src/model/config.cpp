#include "model/config.h"

#include <cmath>

#include "core/error.h"
#include "kernels/moe_routing.h"

namespace bx {
namespace {

void check_positive(int value, const char* field) {
  check(value > 0, std::string("model config: ") + field + " is " + std::to_string(value) +
                       ", expected a positive number");
}

}  // namespace

float ModelConfig::attention_scale_or_default() const {
  return attention_scale > 0.0f ? attention_scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

void ModelConfig::validate() const {
  check_positive(vocab_size, "vocab_size");
  check_positive(dim, "dim (embedding_length)");
  check_positive(n_layers, "n_layers (block_count)");
  check_positive(n_heads, "n_heads (attention.head_count)");
  check_positive(n_kv_heads, "n_kv_heads (attention.head_count_kv)");
  check_positive(head_dim, "head_dim");
  check_positive(ffn_dim, "ffn_dim (feed_forward_length)");
  check_positive(context_length, "context_length");
  check(n_heads % n_kv_heads == 0,
        "model config: head_count " + std::to_string(n_heads) +
            " is not a multiple of head_count_kv " + std::to_string(n_kv_heads));
  check(head_dim % 2 == 0,
        "model config: head_dim " + std::to_string(head_dim) + " is odd, expected an even number");
  check(rms_eps > 0.0f, "model config: layer_norm_rms_epsilon must be positive");
  check(rope_theta > 0.0, "model config: rope freq_base must be positive");
  check(std::isfinite(embed_scale) && embed_scale > 0.0f,
        "model config: the embedding scale must be a finite number > 0");
  check(std::isfinite(attention_scale) && attention_scale >= 0.0f,
        "model config: the attention scale must be a finite number >= 0");
  if (!windowed.empty()) {
    check(windowed.size() == static_cast<size_t>(n_layers),
          "model config: the sliding-window layer pattern has " + std::to_string(windowed.size()) +
              " entries, expected one per layer (" + std::to_string(n_layers) + ")");
    check(sliding_window > 0, "model config: sliding_window is " + std::to_string(sliding_window) +
                                  ", expected a positive window");
    check(rope_local_theta > 0.0, "model config: the local RoPE base of the sliding-window " +
                                      std::string("layers must be positive"));
  }
  if (n_experts != 0) {
    check(n_experts >= 1 && n_experts <= kMaxExperts,
          "model config: expert_count " + std::to_string(n_experts) + ", expected 1 to " +
              std::to_string(kMaxExperts));
    check(n_experts_used >= 1 && n_experts_used <= n_experts,
          "model config: expert_used_count " + std::to_string(n_experts_used) + ", expected 1 to " +
              "expert_count " + std::to_string(n_experts));
    check_positive(expert_ffn_dim, "expert_ffn_dim (expert_feed_forward_length)");
  }
}

}  // namespace bx
