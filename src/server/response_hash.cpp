#include "server/response_hash.h"

#include <bit>
#include <cstdio>
#include <vector>

#include <xxhash.h>

#include "core/error.h"

namespace bx::server {

std::string choice_hash(std::span<const int32_t> tokens, std::span<const float> logprobs) {
  check(tokens.size() == logprobs.size(), "choice_hash: one logprob per token expected");
  std::vector<unsigned char> bytes;
  bytes.reserve(tokens.size() * 8);
  const auto put = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<unsigned char>(v >> (8 * i)));
  };
  for (size_t i = 0; i < tokens.size(); ++i) {
    put(static_cast<uint32_t>(tokens[i]));
    put(std::bit_cast<uint32_t>(logprobs[i]));
  }
  const uint64_t h = XXH3_64bits(bytes.data(), bytes.size());
  char text[24];
  std::snprintf(text, sizeof text, "bx1-%016llx", static_cast<unsigned long long>(h));
  return text;
}

}  // namespace bx::server
