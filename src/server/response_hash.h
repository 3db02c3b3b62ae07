// The determinism hash each choice carries (extension field "bitexact_hash"): XXH3-64 over, for
// each token in order, its id as 4 little-endian bytes then its logprob's IEEE-754 bits as 4
// little-endian bytes; written "bx1-" + 16 lowercase hex digits. Two choices have the same hash
// exactly when (up to hash collisions) their token ids and logprob bits are the same, so a
// replayed request can be checked without comparing floats. /v1/score reports the same hash for
// the continuation it scores, which equals the generation's hash for the same tokens.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace bx::server {

std::string choice_hash(std::span<const int32_t> tokens, std::span<const float> logprobs);

}  // namespace bx::server
