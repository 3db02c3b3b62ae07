#include "engine/block_pool.h"

#include <xxhash.h>

#include <algorithm>
#include <string>

#include "core/error.h"

namespace bx {

BlockKey block_key(const BlockKey& parent, std::span<const int32_t> tokens) {
  XXH3_state_t* state = XXH3_createState();
  check(state != nullptr, "out of memory hashing a KV block");
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, &parent.low, sizeof parent.low);
  XXH3_128bits_update(state, &parent.high, sizeof parent.high);
  XXH3_128bits_update(state, tokens.data(), tokens.size_bytes());
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return BlockKey{h.low64, h.high64};
}

BlockPool::BlockPool(int64_t n_blocks, int block_size)
    : block_size_(block_size),
      refs_(static_cast<size_t>(n_blocks), 0),
      idle_pos_(static_cast<size_t>(n_blocks)),
      key_of_(static_cast<size_t>(n_blocks)) {
  check(n_blocks > 0 && n_blocks <= INT32_MAX,
        "KV pool: " + std::to_string(n_blocks) + " blocks, expected 1 to 2^31-1");
  check(block_size > 0, "KV pool: block size must be positive");
  free_.reserve(static_cast<size_t>(n_blocks));
  // Lowest ids on top of the stack, so a fresh pool hands out 0, 1, 2, ...
  for (int64_t b = n_blocks; b-- > 0;) free_.push_back(static_cast<int32_t>(b));
}

int64_t BlockPool::free_blocks() const {
  return static_cast<int64_t>(free_.size() + idle_.size());
}

int64_t BlockPool::cached_blocks() const { return static_cast<int64_t>(published_.size()); }

std::optional<int32_t> BlockPool::allocate() {
  int32_t block = -1;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (!idle_.empty()) {
    block = idle_.front();  // least recently released
    idle_.pop_front();
    unpublish(block);
  } else {
    return std::nullopt;
  }
  refs_[static_cast<size_t>(block)] = 1;
  ++held_;
  return block;
}

void BlockPool::retain(int32_t block) {
  const auto b = static_cast<size_t>(block);
  BX_CHECK(b < refs_.size(), "KV pool: block id out of range");
  if (refs_[b] == 0) {
    BX_CHECK(key_of_[b].has_value(), "KV pool: retain of a free block");
    idle_.erase(idle_pos_[b]);
    ++held_;
  }
  ++refs_[b];
}

void BlockPool::release(int32_t block) {
  const auto b = static_cast<size_t>(block);
  BX_CHECK(b < refs_.size() && refs_[b] > 0, "KV pool: release of a block that is not held");
  if (--refs_[b] > 0) return;
  --held_;
  if (key_of_[b]) {
    idle_pos_[b] = idle_.insert(idle_.end(), block);
  } else {
    free_.push_back(block);
  }
}

bool BlockPool::publish(int32_t block, const BlockKey& key, const BlockKey& parent,
                        std::span<const int32_t> tokens) {
  const auto b = static_cast<size_t>(block);
  BX_CHECK(b < refs_.size() && refs_[b] > 0, "KV pool: publishing a block that is not held");
  BX_CHECK(tokens.size() == static_cast<size_t>(block_size_),
           "KV pool: only full blocks can be published");
  if (key_of_[b] || published_.count(key)) return false;
  published_.emplace(key, Entry{block, parent, std::vector<int32_t>(tokens.begin(), tokens.end())});
  key_of_[b] = key;
  return true;
}

std::optional<int32_t> BlockPool::find(const BlockKey& key, const BlockKey& parent,
                                       std::span<const int32_t> tokens) const {
  const auto it = published_.find(key);
  if (it == published_.end() || !(it->second.parent == parent) ||
      !std::equal(tokens.begin(), tokens.end(), it->second.tokens.begin(),
                  it->second.tokens.end())) {
    return std::nullopt;
  }
  return it->second.block;
}

void BlockPool::drop_prefix_cache() {
  for (const int32_t block : idle_) free_.push_back(block);
  idle_.clear();
  for (std::optional<BlockKey>& key : key_of_) key.reset();
  published_.clear();
}

void BlockPool::count_lookup(bool hit) const {
  ++lookups_;
  hits_ += hit ? 1 : 0;
}

void BlockPool::unpublish(int32_t block) {
  std::optional<BlockKey>& key = key_of_[static_cast<size_t>(block)];
  if (!key) return;
  published_.erase(*key);
  key.reset();
}

}  // namespace bx
