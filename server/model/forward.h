// fp32 CPU forward pass over a paged KV cache, batched across sequences.
//
// One call runs a list of chunks. Each chunk appends `tokens` to one sequence (its BlockTable
// says how many positions are already cached) and asks for logits of every new position or
// only the last. All chunks' tokens are stacked into one [T, hidden] activation so each linear
// is one GEMM for the whole batch (what makes continuous batching cheap); attention then runs
// per sequence over its cached K/V (GQA), parallel over (token, kv head) tasks.
//
//   KvBlockPool pool(model.config, 16, 256);
//   BlockTable a, b;
//   ForwardWorkspace ws;
//   std::vector<float> logits;
//   ForwardChunk chunks[] = {{&a, prompt_a, false}, {&b, prompt_b, false}};
//   SLQ_RETURN_IF_ERROR(Forward(model, pool, chunks, &ws, &logits));  // logits: [2, vocab]
//
// Thread safety: Forward may run concurrently on different workspaces and disjoint tables of
// the same pool (the pool's allocator is locked). The Model is only read.
#ifndef SLQ_SERVER_MODEL_FORWARD_H_
#define SLQ_SERVER_MODEL_FORWARD_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/kv_cache.h"
#include "server/model/model.h"

namespace slq {

struct ForwardChunk {
  BlockTable* table = nullptr;      // the sequence; its num_tokens positions are cached
  std::span<const int32_t> tokens;  // new tokens, at positions num_tokens, num_tokens + 1, ...
  bool all_logits = false;          // logits for every new position, else only the last
};

// Scratch memory reused across calls (grown, never shrunk). One per calling thread.
struct ForwardWorkspace {
  std::vector<float> x, xn, q, k, v, att, tmp, gate, up;  // activations [T, *]
  std::vector<float> cos, sin;                            // [T, head_dim / 2]
  std::vector<float> scores;                              // [workers, max context]
  std::vector<float> rows;                                // [R, hidden] rows that want logits
  std::vector<int64_t> pos;                               // [T] position of each token
  std::vector<int32_t> chunk_of;                          // [T] chunk index of each token
  std::vector<float> inv_freq;                            // [head_dim / 2]
};

struct ForwardOptions {
  int threads = 0;  // attention threads; <= 0: DefaultThreads()
};

// Runs the chunks. On success every chunk's K/V are cached, table->num_tokens advanced, and
// *logits holds [R, vocab] fp32 rows: for each chunk in order, all its new positions
// (all_logits) or its last one. Errors (InvalidArgument: empty chunk, token id outside the vocab,
// positions beyond max_position_embeddings, one table twice; ResourceExhausted: KV pool full)
// leave every table as it was.
[[nodiscard]] absl::Status Forward(const Model& model, KvBlockPool& pool, std::span<const ForwardChunk> chunks,
                                   ForwardWorkspace* ws, std::vector<float>* logits,
                                   const ForwardOptions& options = {});

// The chunk contract shared by Forward and the GPU forward pass (server/gpu): every chunk has a
// table and tokens, no table appears twice, positions stay within max_position_embeddings and
// token ids inside the vocabulary. InvalidArgument naming the chunk otherwise.
[[nodiscard]] absl::Status ValidateForwardChunks(const ModelConfig& config, std::span<const ForwardChunk> chunks);
// Reserves KV blocks for every chunk's new tokens; on failure gives back what this call took
// (ResourceExhausted from the allocator).
[[nodiscard]] absl::Status ReserveForwardChunks(BlockAllocator& alloc, std::span<const ForwardChunk> chunks);
// Gives back the blocks reserved beyond the cached positions of the first n chunks.
void ReleaseForwardChunks(BlockAllocator& alloc, std::span<const ForwardChunk> chunks, size_t n);

// Logits [tokens.size(), vocab] of every position of `tokens` run as one fresh sequence. Used by
// the quantization metrics (thousands of calls): one GEMM per linear for the whole sequence, a
// per-thread reused workspace, one KV allocation per call.
[[nodiscard]] absl::StatusOr<std::vector<float>> TeacherForcedLogits(const Model& model,
                                                                     std::span<const int32_t> tokens);

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_FORWARD_H_
