#include "engine/kv_sizing.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace bx {

int64_t kv_bytes_per_token(const KvCacheShape& shape, int element_bytes) {
  return int64_t{2} * shape.n_layers * shape.n_kv_heads * shape.head_dim * element_bytes;
}

int64_t kv_tokens_for_memory(int64_t available_bytes, double fraction, int64_t bytes_per_token,
                             int block_size, int64_t context, int max_seqs) {
  check(fraction > 0.0 && fraction <= 1.0,
        "KV memory fraction is " + std::to_string(fraction) + ", expected (0, 1]");
  check(bytes_per_token > 0 && block_size > 0, "KV sizing: bytes per token and block size > 0");
  const auto usable = static_cast<int64_t>(
      std::floor(static_cast<double>(std::max<int64_t>(available_bytes, 0)) * fraction));
  const int64_t fits = usable / bytes_per_token / block_size * block_size;
  const int64_t wanted =
      (context * std::max(max_seqs, 1) + block_size - 1) / block_size * block_size;
  const int64_t tokens = std::min(fits, wanted);
  check(tokens >= context, "the KV cache would get " + std::to_string(usable >> 20) +
                               " MiB of device memory (" + std::to_string(tokens) + " tokens of " +
                               std::to_string(bytes_per_token) +
                               " bytes) but one full context needs " + std::to_string(context) +
                               " tokens: free memory, or set --kv-cache-tokens");
  return tokens;
}

int64_t kv_tokens_for_host(int64_t context, int max_seqs, int64_t bytes_per_token) {
  const int64_t cap = (int64_t{1} << 30) / bytes_per_token;
  return std::max(context, std::min(context * max_seqs, cap));
}

}  // namespace bx
