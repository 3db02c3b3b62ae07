// The paged KV cache's block allocator, with reference counts and a prefix cache.
//
// The backend's KV cache is n_blocks blocks of block_size positions each; a sequence's block
// table lists the blocks that hold its positions [b * block_size, (b + 1) * block_size). This pool
// only hands out block ids: the KV values themselves live in the backend.
//
// Prefix cache. A block whose block_size positions are all computed can be published under the
// key (key of the previous block of the sequence, the block's token ids): a hash chain, so a key
// names a whole prefix. Another sequence whose tokens start with the same prefix takes the
// published blocks instead of recomputing them. Lookups compare the stored token ids and parent
// key, never the hash alone, so a hash collision can cost a miss, never a wrong block.
//
// Sharing cached KV cannot change any output bit: the kernels compute every K and V row from its
// own token and position alone, in an order fixed by the shapes (INVARIANCE.md R1-R5), so a block
// computed by one sequence holds exactly the bits another sequence would have computed.
//
// States of a block: free (on the free list), held (reference count > 0), cached and idle
// (published, count 0: kept for reuse, evicted least recently released first when the free
// list is empty). free_blocks() counts free plus idle blocks: everything allocate() can return.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace bx {

// Identity of a full block within a sequence's prefix: 128 bits of XXH3 over
// (parent key, token ids). The root (before the first block) is {0, 0}.
struct BlockKey {
  uint64_t low = 0;
  uint64_t high = 0;
  bool operator==(const BlockKey&) const = default;
};

BlockKey block_key(const BlockKey& parent, std::span<const int32_t> tokens);

class BlockPool {
 public:
  BlockPool(int64_t n_blocks, int block_size);

  int64_t total_blocks() const { return static_cast<int64_t>(refs_.size()); }
  int block_size() const { return block_size_; }
  int64_t free_blocks() const;    // free + cached idle
  int64_t held_blocks() const { return held_; }
  int64_t cached_blocks() const;  // published blocks, held or idle

  // A block with reference count 1, or nullopt when every block is held.
  std::optional<int32_t> allocate();
  // Adds a reference to a held or idle block (an idle block leaves the eviction order).
  void retain(int32_t block);
  // Drops one reference; at 0 the block becomes idle if published, free otherwise.
  void release(int32_t block);

  // Publishes a held, full block under `key` (tokens are its block_size token ids). Returns
  // false, publishing nothing, if another block already holds this key.
  bool publish(int32_t block, const BlockKey& key, const BlockKey& parent,
               std::span<const int32_t> tokens);
  // The published block for (key, parent, tokens), or nullopt.
  std::optional<int32_t> find(const BlockKey& key, const BlockKey& parent,
                              std::span<const int32_t> tokens) const;

  // Forgets every published block (after a weight update their K and V are stale): idle ones
  // become free, held ones stay with their holders and are freed on release. Nothing is found
  // afterwards until new blocks are published.
  void drop_prefix_cache();

  // Lookups that found a block / all lookups, since construction (for metrics).
  uint64_t prefix_hits() const { return hits_; }
  uint64_t prefix_lookups() const { return lookups_; }
  void count_lookup(bool hit) const;

 private:
  struct Entry {
    int32_t block;
    BlockKey parent;
    std::vector<int32_t> tokens;
  };
  struct KeyHash {
    size_t operator()(const BlockKey& k) const { return static_cast<size_t>(k.low); }
  };

  void unpublish(int32_t block);

  int block_size_;
  std::vector<int32_t> refs_;            // [n_blocks] reference counts
  std::vector<int32_t> free_;            // stack of free block ids
  std::list<int32_t> idle_;              // published blocks with count 0, oldest release first
  // [n_blocks] position in idle_; valid while the block is idle (count 0 and published)
  std::vector<std::list<int32_t>::iterator> idle_pos_;
  std::vector<std::optional<BlockKey>> key_of_;         // [n_blocks] published key
  std::unordered_map<BlockKey, Entry, KeyHash> published_;
  int64_t held_ = 0;
  mutable uint64_t hits_ = 0;
  mutable uint64_t lookups_ = 0;
};

}  // namespace bx
