// GpuModel: a Model's weights on the GPU, plus the paged KV cache storage (GpuKvCache).
//
//   SLQ_ASSIGN_OR_RETURN(std::unique_ptr<GpuModel> g, GpuModel::Upload(model, {}));
//
// Upload copies embeddings (fp32), norms and biases (fp32) and every LinearOp:
//   - QuantizedLinear with bits 2..8, group 32/64/128, in % 8 == 0 and no rotation: repacked to
//     "slq-gpu-v1" (kernels/repack.h) and run by the fused dequant+matmul (kernels QGemm);
//   - any other QuantizedLinear (rotated, other group sizes, ragged shapes): dequantized once
//     at load into a dense matrix of the activation type (Describe() says so);
//   - DenseLinear: converted to the activation type and run by cuBLAS (fp32 accumulation).
// q/k/v (and gate/up) are fused into one matrix when they are all dense, or all quantized
// with the same bits and group and rows % 16 == 0 (one GEMM instead of three).
// Activations are fp16 by default (more mantissa than bf16: closer to the fp32 CPU path);
// bf16 on request. The residual stream, norms, RoPE and softmax are fp32.
// CreateRandom builds a model of any shape directly on the GPU (benchmarks; no host weights).
//
// CUDA types stay behind this header (Impl). Thread safety: a GpuModel is read-only after
// creation and may be shared by several GpuWorkspaces (on one device).
#ifndef SLQ_SERVER_GPU_GPU_MODEL_H_
#define SLQ_SERVER_GPU_GPU_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/cuda/qgemm.h"
#include "server/model/config.h"
#include "server/model/model.h"

namespace slq::gpu {

using kernels::ActType;

struct GpuModelOptions {
  ActType act = ActType::kF16;
};

// True when a CUDA device can be used; else *why says what is missing.
bool GpuAvailable(std::string* why);

// How one linear of a random model is stored: bits 0 = dense (activation type), else 2..8;
// grids: a quantized linear also carries random per-group grid ids (kernels/grids.h).
struct RandomLinearSpec {
  int bits = 0;
  int64_t group_size = 128;
  bool grids = false;
};
// Called with the HF slot name ("model.layers.3.self_attn.qkv_proj" for a fused q/k/v,
// ".mlp.gate_up_proj" for gate/up, "lm_head") and the layer (-1 for the head).
using RandomSpecFn = std::function<RandomLinearSpec(const std::string& name, int layer)>;

class GpuModel {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<GpuModel>> Upload(const Model& model,
                                                                        const GpuModelOptions& options = {});
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<GpuModel>> CreateRandom(const ModelConfig& config,
                                                                              const RandomSpecFn& spec,
                                                                              const GpuModelOptions& options,
                                                                              uint64_t seed);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  const ModelConfig& config() const;
  ActType act() const;
  // Bytes of linear weights (codes + scale/zero, or dense) read by one token's forward pass.
  int64_t LinearBytes() const;
  // Parameters of the linears (for bits per parameter).
  int64_t LinearParams() const;
  // One line per distinct linear kind, e.g. "qkv: q4 g128 (QGemm) x32".
  std::string Describe() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit GpuModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// K/V storage for `num_blocks` blocks of `block_size` positions, all layers, in the model's
// activation type. Block ids come from a BlockAllocator (server/model/kv_cache.h) of the
// same shape: the allocator is the bookkeeping, this is the storage.
class GpuKvCache {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<GpuKvCache>> Create(const ModelConfig& config, ActType act,
                                                                          int64_t block_size, int64_t num_blocks);
  // Bytes one token position takes (K and V, all layers).
  static size_t BytesPerToken(const ModelConfig& config, ActType act);
  // The most blocks that fit in max_bytes (at least 1).
  static int64_t BlocksForBudget(const ModelConfig& config, ActType act, int64_t block_size, size_t max_bytes);
  ~GpuKvCache();
  GpuKvCache(const GpuKvCache&) = delete;
  GpuKvCache& operator=(const GpuKvCache&) = delete;

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_layers() const { return num_layers_; }
  int64_t kv_dim() const { return kv_dim_; }
  ActType act() const { return act_; }
  void* data() const { return data_; }
  size_t MemoryBytes() const { return bytes_; }

 private:
  GpuKvCache() = default;
  ActType act_ = ActType::kF16;
  int64_t block_size_ = 0, num_blocks_ = 0, num_layers_ = 0, kv_dim_ = 0;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace slq::gpu

#endif  // SLQ_SERVER_GPU_GPU_MODEL_H_
