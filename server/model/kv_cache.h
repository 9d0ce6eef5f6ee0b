// Paged KV cache (vLLM-style): fixed-size blocks of `block_size` token positions.
//
// Bookkeeping and storage are separate so that other backends (CUDA) reuse the bookkeeping:
//   BlockAllocator  hands out block ids in [0, num_blocks) under a mutex; ResourceExhausted
//                   when none is free.
//   BlockTable      one sequence's blocks, in position order, and its cached token count.
//   KvStorage       fp32 K and V for every layer and block, indexed by block id.
//   KvBlockPool     an allocator + a KvStorage: what the CPU forward pass uses.
//
//   KvBlockPool pool(cfg, /*block_size=*/16, /*num_blocks=*/64);
//   BlockTable seq;
//   SLQ_RETURN_IF_ERROR(pool.allocator().Reserve(&seq, 40));  // 3 blocks
//   ... forward writes positions [0, 40) ...
//   pool.allocator().Release(&seq);                          // blocks go back
//
// Thread safety: BlockAllocator is thread-safe. A BlockTable belongs to one sequence and is
// used by one thread at a time. KvStorage may be written concurrently for distinct blocks.
#ifndef SLQ_SERVER_MODEL_KV_CACHE_H_
#define SLQ_SERVER_MODEL_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/model/config.h"

namespace slq {

struct BlockTable {
  std::vector<int32_t> blocks;  // block ids; position p lives in blocks[p / block_size]
  int64_t num_tokens = 0;       // positions [0, num_tokens) hold valid K/V
};

class BlockAllocator {
 public:
  BlockAllocator(int64_t num_blocks, int64_t block_size);
  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_free() const;
  double usage() const;  // fraction of blocks in use, in [0, 1]
  // Blocks needed to hold `tokens` positions.
  int64_t BlocksFor(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }

  // Grows `table` so it can hold `tokens` positions. All-or-nothing: ResourceExhausted (naming
  // the need and what is free) leaves the table unchanged. Does not change num_tokens.
  [[nodiscard]] absl::Status Reserve(BlockTable* table, int64_t tokens);
  // Frees blocks beyond what `tokens` positions need and clamps num_tokens to `tokens`.
  void Truncate(BlockTable* table, int64_t tokens);
  // Returns all blocks of the table to the pool and resets it.
  void Release(BlockTable* table);

 private:
  const int64_t num_blocks_;
  const int64_t block_size_;
  mutable absl::Mutex mu_;
  std::vector<int32_t> free_ ABSL_GUARDED_BY(mu_);  // stack of free block ids
};

// K and V for all layers: per block, per layer, [block_size, kv_dim] fp32 each.
class KvStorage {
 public:
  KvStorage(int64_t num_blocks, int64_t block_size, int64_t num_layers, int64_t kv_dim);
  // [block_size, kv_dim] slabs of one block and layer.
  float* K(int32_t block, int64_t layer) { return data_.data() + Offset(block, layer, 0); }
  float* V(int32_t block, int64_t layer) { return data_.data() + Offset(block, layer, 1); }
  const float* K(int32_t block, int64_t layer) const { return data_.data() + Offset(block, layer, 0); }
  const float* V(int32_t block, int64_t layer) const { return data_.data() + Offset(block, layer, 1); }
  size_t MemoryBytes() const { return data_.size() * sizeof(float); }
  int64_t kv_dim() const { return kv_dim_; }

 private:
  size_t Offset(int32_t block, int64_t layer, int kv) const {
    return ((static_cast<size_t>(block) * num_layers_ + layer) * 2 + kv) * slab_;
  }
  int64_t num_layers_, kv_dim_;
  size_t slab_;              // block_size * kv_dim
  std::vector<float> data_;  // [num_blocks, num_layers, 2, block_size, kv_dim]
};

class KvBlockPool {
 public:
  KvBlockPool(const ModelConfig& config, int64_t block_size, int64_t num_blocks);
  // The most blocks of `block_size` that fit in `max_bytes` (at least 1).
  static int64_t BlocksForBudget(const ModelConfig& config, int64_t block_size, size_t max_bytes);
  // Bytes one token position takes (K and V, all layers).
  static size_t BytesPerToken(const ModelConfig& config);

  BlockAllocator& allocator() { return allocator_; }
  const BlockAllocator& allocator() const { return allocator_; }
  KvStorage& storage() { return storage_; }
  const KvStorage& storage() const { return storage_; }
  int64_t block_size() const { return allocator_.block_size(); }
  double usage() const { return allocator_.usage(); }

 private:
  BlockAllocator allocator_;
  KvStorage storage_;
};

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_KV_CACHE_H_
