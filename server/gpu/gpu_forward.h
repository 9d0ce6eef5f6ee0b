// GpuForward: the batched, paged forward pass of server/model/forward.h on the GPU.
//
//   SLQ_ASSIGN_OR_RETURN(auto gm, GpuModel::Upload(model));
//   SLQ_ASSIGN_OR_RETURN(auto kv, GpuKvCache::Create(model.config, gm->act(), 16, 256));
//   BlockAllocator alloc(256, 16);                    // the same block ids as the storage
//   SLQ_ASSIGN_OR_RETURN(auto ws, GpuWorkspace::Create(*gm));
//   ForwardChunk chunks[] = {{&a, prompt_a, false}, {&b, prompt_b, false}};
//   SLQ_RETURN_IF_ERROR(GpuForward(*gm, *kv, alloc, chunks, ws.get(), &logits));  // [2, vocab]
//
// Contract as slq::Forward: chunks append tokens to sequences (BlockTable), logits rows are
// each chunk's new positions (all_logits) or its last one, tables are advanced on success and
// left unchanged on any error (InvalidArgument, ResourceExhausted when the allocator is full,
// Internal on a CUDA failure). The allocator hands out the block ids; the GpuKvCache holds
// their K/V (so the CPU-side admission accounting of the engine is unchanged).
//
// Every step reads its per-token data (ids, positions, block tables, logits rows) from one
// device buffer, so the launch sequence depends only on (tokens T, logits rows R, attention
// splits S; S is chosen from the step's longest context, see gpu_ops.h AttentionSplits): with
// cuda_graphs on, the second step of a given (T, R, S) (T <= max_graph_tokens) is captured
// into a CUDA graph and later steps replay it (decode steps of a steady batch are all the same
// shape until the context crosses a split threshold). Greedy argmax and its logprob are
// computed on the GPU for every row; the fp32 logits rows are copied to the host only where
// asked (GpuForwardOptions::host_rows).
// Thread safety: one GpuWorkspace per thread; the GpuModel is shared read-only.
#ifndef SLQ_SERVER_GPU_GPU_FORWARD_H_
#define SLQ_SERVER_GPU_GPU_FORWARD_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/gpu/gpu_model.h"
#include "server/model/forward.h"
#include "server/model/kv_cache.h"

namespace slq::gpu {

struct GpuWorkspaceOptions {
  bool cuda_graphs = true;
  int64_t max_graph_tokens = 64;  // steps of more tokens always run eagerly
  int64_t max_graphs = 64;        // distinct (T, R, S) shapes kept; later new shapes run eagerly
  // Launch the step's own kernels (norms, RoPE/KV write, attention, SwiGLU, argmax) with
  // programmatic dependent launch, so each is scheduled while the kernel before it drains.
  bool pdl = false;
  // Launch the quantized linears (kernels::QGemm) with programmatic dependent launch: each
  // streams its weights while the kernel before it drains. On by default: Llama-3-8B-shape
  // decode at 4.25 bits 383 -> 399 tok/s on the H200 (bench/results/gpu-session6-2026-12-01.md).
  bool linear_pdl = true;
};

// Stream, cuBLAS handle, activation buffers and captured graphs for one model.
class GpuWorkspace {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<GpuWorkspace>> Create(const GpuModel& model,
                                                                            const GpuWorkspaceOptions& options = {});
  ~GpuWorkspace();
  GpuWorkspace(const GpuWorkspace&) = delete;
  GpuWorkspace& operator=(const GpuWorkspace&) = delete;
  void set_cuda_graphs(bool on);
  void set_pdl(bool on);         // drops the captured graphs when it changes
  void set_linear_pdl(bool on);  // likewise
  int64_t graphs_captured() const;
  int64_t graph_launches() const;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit GpuWorkspace(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// GPU time of one step by kernel group ("attention", "qkv", ...), summed over the layers, in
// the order the groups first run. Measured with the step's launches queued up behind a GPU
// busy-wait, so the figures are kernel time without the host's launch gaps, plus the cost of the
// event recorded after each group (about 3 us per event on an H200).
struct StepBreakdown {
  std::vector<std::pair<std::string, double>> ms;
  double total_ms = 0;  // sum of ms
};

struct GpuForwardOptions {
  // host_rows[r] != 0: copy logits row r to the host. Empty: every row.
  std::vector<uint8_t> host_rows;
  // When set: the fp32 logits [R, vocab] are also copied here (device memory of the same
  // device; the evaluator keeps base logits and compares on the GPU).
  float* device_logits = nullptr;
  // When set: this step runs eagerly (no graph) with a CUDA event after each kernel group and
  // its breakdown is written here (benchmarks; slower than a plain step).
  StepBreakdown* breakdown = nullptr;
};

struct GpuForwardResult {
  std::vector<float> logits;          // [R, vocab]; rows not asked for are unspecified; empty
                                      // when no row was asked for
  std::vector<int32_t> argmax;        // [R] greedy token (ties -> lowest id)
  std::vector<float> argmax_logprob;  // [R] log softmax of that token
};

[[nodiscard]] absl::Status GpuForward(const GpuModel& model, GpuKvCache& kv, BlockAllocator& alloc,
                                      std::span<const ForwardChunk> chunks, GpuWorkspace* ws,
                                      const GpuForwardOptions& options, GpuForwardResult* out);

// slq::Forward's signature: every logits row copied to *logits.
[[nodiscard]] absl::Status GpuForward(const GpuModel& model, GpuKvCache& kv, BlockAllocator& alloc,
                                      std::span<const ForwardChunk> chunks, GpuWorkspace* ws,
                                      std::vector<float>* logits);

// Greedy decoding of n_steps tokens for each of B sequences with no host round trip per token:
// step i feeds first_tokens[b] (i = 0) or the previous step's argmax, which the step itself
// leaves where the next one reads it (positions advance on the device too; the KV blocks of all
// n_steps are reserved first). With cuda_graphs on, one graph (step + advance) is captured per
// (B, splits) and replayed n_steps times; the ids are read back once at the end.
// out: [n_steps, B], out[i * B + b] = the argmax of step i of sequence b. The same tokens as
// n_steps calls of GpuForward that feed argmax back from the host. Tables advance by n_steps
// on success; errors as GpuForward's.
[[nodiscard]] absl::Status GpuGreedyDecode(const GpuModel& model, GpuKvCache& kv, BlockAllocator& alloc,
                                           std::span<BlockTable* const> tables, std::span<const int32_t> first_tokens,
                                           int64_t n_steps, GpuWorkspace* ws, std::vector<int32_t>* out);

// Logits [tokens.size(), vocab] of every position of `tokens` run as one fresh sequence
// (slq::TeacherForcedLogits on the GPU). The workspace keeps a KV cache for it, grown as needed.
[[nodiscard]] absl::StatusOr<std::vector<float>> GpuTeacherForcedLogits(const GpuModel& model, GpuWorkspace* ws,
                                                                        std::span<const int32_t> tokens);

}  // namespace slq::gpu

#endif  // SLQ_SERVER_GPU_GPU_FORWARD_H_
