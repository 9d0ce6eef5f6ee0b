#include "server/inference/forward_backend.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

#if SLQ_HAVE_CUDA
#include "server/gpu/gpu_forward.h"
#include "server/gpu/gpu_model.h"
#endif

namespace slq::inference {
namespace {

class CpuBackend final : public ForwardBackend {
 public:
  CpuBackend(std::shared_ptr<const Model> model, const BackendOptions& o)
      : model_(std::move(model)),
        pool_(model_->config, o.kv_block_size,
              KvBlockPool::BlocksForBudget(model_->config, o.kv_block_size, o.kv_cache_bytes)) {
    fo_.threads = o.forward_threads;
  }
  BlockAllocator& allocator() override { return pool_.allocator(); }
  const BlockAllocator& allocator() const override { return pool_.allocator(); }
  absl::Status Run(std::span<const ForwardChunk> chunks, const std::vector<uint8_t>&, StepOutput* out) override {
    out->has_argmax = false;
    return Forward(*model_, pool_, chunks, &ws_, &out->logits, fo_);
  }
  std::string device() const override { return "cpu"; }
  std::string Describe() const override { return "cpu fp32"; }

 private:
  std::shared_ptr<const Model> model_;
  KvBlockPool pool_;
  ForwardWorkspace ws_;
  ForwardOptions fo_;
};

#if SLQ_HAVE_CUDA
class GpuBackend final : public ForwardBackend {
 public:
  static absl::StatusOr<std::unique_ptr<ForwardBackend>> Create(std::shared_ptr<const Model> model,
                                                                const BackendOptions& o) {
    std::unique_ptr<GpuBackend> b(new GpuBackend());
    b->model_ = std::move(model);
    SLQ_ASSIGN_OR_RETURN(b->gm_, gpu::GpuModel::Upload(*b->model_));
    const ModelConfig& c = b->model_->config;
    const int64_t blocks = gpu::GpuKvCache::BlocksForBudget(c, b->gm_->act(), o.kv_block_size, o.kv_cache_bytes);
    SLQ_ASSIGN_OR_RETURN(b->kv_, gpu::GpuKvCache::Create(c, b->gm_->act(), o.kv_block_size, blocks));
    b->alloc_ = std::make_unique<BlockAllocator>(blocks, o.kv_block_size);
    gpu::GpuWorkspaceOptions wo;
    wo.cuda_graphs = o.cuda_graphs;
    SLQ_ASSIGN_OR_RETURN(b->ws_, gpu::GpuWorkspace::Create(*b->gm_, wo));
    return std::unique_ptr<ForwardBackend>(std::move(b));
  }
  BlockAllocator& allocator() override { return *alloc_; }
  const BlockAllocator& allocator() const override { return *alloc_; }
  absl::Status Run(std::span<const ForwardChunk> chunks, const std::vector<uint8_t>& need_logits,
                   StepOutput* out) override {
    gpu::GpuForwardOptions fo;
    fo.host_rows = need_logits;
    SLQ_RETURN_IF_ERROR(gpu::GpuForward(*gm_, *kv_, *alloc_, chunks, ws_.get(), fo, &r_));
    out->logits.swap(r_.logits);
    out->argmax.swap(r_.argmax);
    out->argmax_logprob.swap(r_.argmax_logprob);
    out->has_argmax = true;
    return absl::OkStatus();
  }
  std::string device() const override { return "cuda"; }
  std::string Describe() const override { return absl::StrCat("cuda: ", gm_->Describe()); }

 private:
  GpuBackend() = default;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<gpu::GpuModel> gm_;
  std::unique_ptr<gpu::GpuKvCache> kv_;
  std::unique_ptr<BlockAllocator> alloc_;
  std::unique_ptr<gpu::GpuWorkspace> ws_;
  gpu::GpuForwardResult r_;
};
#endif

}  // namespace

bool CudaBackendAvailable(std::string* why) {
#if SLQ_HAVE_CUDA
  return gpu::GpuAvailable(why);
#else
  *why = "built without CUDA (configure with -DSLQ_CUDA=ON on a machine with nvcc)";
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<ForwardBackend>> MakeForwardBackend(const std::string& device,
                                                                   std::shared_ptr<const Model> model,
                                                                   const BackendOptions& options) {
  if (!model) return absl::InvalidArgumentError("MakeForwardBackend needs a model");
  if (options.kv_block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("kv_block_size is ", options.kv_block_size, "; must be >= 1"));
  }
  if (device == "cpu") return std::unique_ptr<ForwardBackend>(new CpuBackend(std::move(model), options));
  if (device == "cuda") {
    std::string why;
    if (!CudaBackendAvailable(&why)) {
#if SLQ_HAVE_CUDA
      return absl::FailedPreconditionError(absl::StrCat("device 'cuda': no GPU: ", why));
#else
      return absl::FailedPreconditionError(absl::StrCat("device 'cuda': ", why));
#endif
    }
#if SLQ_HAVE_CUDA
    return GpuBackend::Create(std::move(model), options);
#endif
  }
  return absl::InvalidArgumentError(absl::StrCat("device is '", device, "'; must be cpu or cuda"));
}

}  // namespace slq::inference
