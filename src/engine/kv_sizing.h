// How many tokens the KV pool holds when the user does not say (--kv-cache-tokens 0).
//
// On a device with its own memory (Backend::kv_memory_available() >= 0: a GPU), the pool takes
// a fraction (0.9 by default) of what is left after the weights and the work buffers, rounded
// down to whole blocks: throughput needs many sequences in flight. It never takes more than
// max_seqs full contexts (rounded up to whole blocks), which is all the sequences of one step
// can ever hold: a small model does not claim the whole GPU. On the CPU, where memory is
// shared with everything else, it holds max_seqs full contexts, at most 1 GiB (but at least one
// full context).
//
// bytes per token = 2 (K and V) * layers * KV heads * head dim * element bytes.
// The pool size never changes an output bit (INVARIANCE.md promise 2).
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace bx {

int64_t kv_bytes_per_token(const KvCacheShape& shape, int element_bytes);

// min(floor(fraction * available_bytes / bytes_per_token) rounded down to a multiple of
// block_size, context * max_seqs rounded up to one). Throws bx::Error if that is less than one
// context (a request of one full context must fit), naming the memory and the need.
// fraction in (0, 1].
int64_t kv_tokens_for_memory(int64_t available_bytes, double fraction, int64_t bytes_per_token,
                             int block_size, int64_t context, int max_seqs);

// max(context, min(context * max_seqs, 1 GiB / bytes_per_token)).
int64_t kv_tokens_for_host(int64_t context, int max_seqs, int64_t bytes_per_token);

}  // namespace bx
