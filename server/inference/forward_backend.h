// ForwardBackend: where an Engine runs its steps. "cpu" = slq::Forward over a KvBlockPool;
// "cuda" = server/gpu's GpuForward over a GpuKvCache (built only with SLQ_HAVE_CUDA).
//
//   SLQ_ASSIGN_OR_RETURN(auto b, MakeForwardBackend("cuda", model, opts));
//   Scheduler s(&b->allocator(), ...);                        // admission sees the same blocks
//   SLQ_RETURN_IF_ERROR(b->Run(chunks, need_logits, &out));  // one logits row per chunk
//
// Both keep the engine's admission accounting unchanged: the BlockAllocator hands out block
// ids, the backend stores K/V for them (host fp32 or device fp16). The GPU backend also
// returns each row's greedy argmax and its logprob, and copies logits rows to the host only
// where need_logits says so (seeded sampling then runs on the host with the same Sampler).
// Thread safety: a backend is used by one (the engine's) thread.
#ifndef SLQ_SERVER_INFERENCE_FORWARD_BACKEND_H_
#define SLQ_SERVER_INFERENCE_FORWARD_BACKEND_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/forward.h"
#include "server/model/kv_cache.h"
#include "server/model/model.h"

namespace slq::inference {

struct BackendOptions {
  int64_t kv_block_size = 16;
  size_t kv_cache_bytes = 64ull << 20;
  int forward_threads = 0;  // CPU attention threads
  bool cuda_graphs = true;  // GPU decode steps replayed from CUDA graphs
};

struct StepOutput {
  std::vector<float> logits;          // [R, vocab]; rows with need_logits == 0 may be stale
  bool has_argmax = false;            // argmax/argmax_logprob filled (GPU)
  std::vector<int32_t> argmax;        // [R]
  std::vector<float> argmax_logprob;  // [R]
};

class ForwardBackend {
 public:
  virtual ~ForwardBackend() = default;
  virtual BlockAllocator& allocator() = 0;
  virtual const BlockAllocator& allocator() const = 0;
  // Runs the chunks (slq::Forward's contract). need_logits[r] != 0: row r's logits are
  // wanted on the host (size R, or empty for all).
  [[nodiscard]] virtual absl::Status Run(std::span<const ForwardChunk> chunks, const std::vector<uint8_t>& need_logits,
                                         StepOutput* out) = 0;
  virtual std::string device() const = 0;
  virtual std::string Describe() const = 0;
};

// "cpu" or "cuda". "cuda" fails with FailedPrecondition "built without CUDA" in CPU-only
// builds and "no GPU: <why>" when no device is usable.
[[nodiscard]] absl::StatusOr<std::unique_ptr<ForwardBackend>> MakeForwardBackend(const std::string& device,
                                                                                 std::shared_ptr<const Model> model,
                                                                                 const BackendOptions& options);

// True when "cuda" can be used in this build on this machine; else *why says why not.
bool CudaBackendAvailable(std::string* why);

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_FORWARD_BACKEND_H_
