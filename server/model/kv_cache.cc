#include "server/model/kv_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace slq {

BlockAllocator::BlockAllocator(int64_t num_blocks, int64_t block_size)
    : num_blocks_(std::max<int64_t>(num_blocks, 0)), block_size_(std::max<int64_t>(block_size, 1)) {
  free_.reserve(static_cast<size_t>(num_blocks_));
  // Stack with block 0 on top, so allocation order is 0, 1, 2, ...
  for (int64_t b = num_blocks_ - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int64_t BlockAllocator::num_free() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(free_.size());
}

double BlockAllocator::usage() const {
  if (num_blocks_ == 0) return 1.0;
  return 1.0 - static_cast<double>(num_free()) / static_cast<double>(num_blocks_);
}

absl::Status BlockAllocator::Reserve(BlockTable* table, int64_t tokens) {
  const int64_t need = BlocksFor(tokens) - static_cast<int64_t>(table->blocks.size());
  if (need <= 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (need > static_cast<int64_t>(free_.size())) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache full: ", tokens, " positions need ", need,
                                                     " more blocks of ", block_size_, " tokens, only ", free_.size(),
                                                     " of ", num_blocks_, " are free"));
  }
  for (int64_t i = 0; i < need; ++i) {
    table->blocks.push_back(free_.back());
    free_.pop_back();
  }
  return absl::OkStatus();
}

void BlockAllocator::Truncate(BlockTable* table, int64_t tokens) {
  tokens = std::max<int64_t>(tokens, 0);
  const size_t keep = static_cast<size_t>(BlocksFor(tokens));
  absl::MutexLock lock(&mu_);
  while (table->blocks.size() > keep) {
    free_.push_back(table->blocks.back());
    table->blocks.pop_back();
  }
  table->num_tokens = std::min(table->num_tokens, tokens);
}

void BlockAllocator::Release(BlockTable* table) { Truncate(table, 0); }

KvStorage::KvStorage(int64_t num_blocks, int64_t block_size, int64_t num_layers, int64_t kv_dim)
    : num_layers_(num_layers),
      kv_dim_(kv_dim),
      slab_(static_cast<size_t>(block_size * kv_dim)),
      data_(static_cast<size_t>(std::max<int64_t>(num_blocks, 0)) * num_layers * 2 * slab_) {}

size_t KvBlockPool::BytesPerToken(const ModelConfig& c) {
  return static_cast<size_t>(2 * c.num_layers * c.kv_dim()) * sizeof(float);
}

int64_t KvBlockPool::BlocksForBudget(const ModelConfig& c, int64_t block_size, size_t max_bytes) {
  const size_t per_block = BytesPerToken(c) * static_cast<size_t>(std::max<int64_t>(block_size, 1));
  return std::max<int64_t>(1, static_cast<int64_t>(max_bytes / std::max<size_t>(per_block, 1)));
}

KvBlockPool::KvBlockPool(const ModelConfig& c, int64_t block_size, int64_t num_blocks)
    : allocator_(num_blocks, block_size), storage_(num_blocks, allocator_.block_size(), c.num_layers, c.kv_dim()) {}

}  // namespace slq
