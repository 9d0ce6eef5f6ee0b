// Internal to server/gpu: the device-side structures behind GpuModel (CUDA types allowed).
#ifndef SLQ_SERVER_GPU_GPU_MODEL_IMPL_H_
#define SLQ_SERVER_GPU_GPU_MODEL_IMPL_H_

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/gpu/gpu_model.h"

namespace slq::gpu {

// One linear on the GPU: quantized (QGemm) or dense act [out, in] (cuBLAS).
struct GpuLinear {
  int64_t out = 0, in = 0;
  bool quant = false;
  kernels::DeviceMatrix qm;  // quant
  void* w = nullptr;         // dense
  int bits = 16;
  int64_t group_size = 0;
  std::string desc;  // "q4 g128 (QGemm)", "dense f16 (cuBLAS)", ...
  bool empty() const { return out == 0; }
  int64_t Bytes(ActType) const { return quant ? qm.Bytes() : out * in * 2; }
};

struct GpuLayer {
  float* attn_norm = nullptr;
  float* mlp_norm = nullptr;
  float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr;  // null when absent
  float *q_norm = nullptr, *k_norm = nullptr;
  GpuLinear qkv;  // fused [q_dim + 2 kv_dim, hidden] when set; else q, k, v
  GpuLinear q, k, v, o;
  GpuLinear gate_up;  // fused [2 intermediate, hidden] when set; else gate, up
  GpuLinear gate, up, down;
};

struct GpuModel::Impl {
  ModelConfig config;
  ActType act = ActType::kF16;
  float* embed = nullptr;       // fp32 [vocab, hidden]
  float* final_norm = nullptr;  // [hidden]
  float* inv_freq = nullptr;    // [head_dim / 2]
  std::vector<GpuLayer> layers;
  GpuLinear lm_head;
  std::vector<void*> allocations;  // everything above, freed by ~Impl
  int64_t max_rows = 0;            // largest `out` of a quantized linear (QGemm workspace)
  ~Impl();
  // cudaMalloc tracked in `allocations`.
  absl::Status Alloc(size_t bytes, void** p);
  template <typename T>
  absl::Status AllocT(int64_t n, T** p) {
    void* v = nullptr;
    absl::Status s = Alloc(static_cast<size_t>(n) * sizeof(T), &v);
    *p = static_cast<T*>(v);
    return s;
  }
};

// y [n, out] = x [n, in] W^T. y_f32: write fp32 (dense only) instead of act.
// qgemm_ws: QGemm workspace (zeroed), blas: a handle bound to `stream`. pdl: a quantized linear
// launches with programmatic dependent launch (kernels::QGemmOptions::pdl: it streams its
// weights while the kernel before it drains, and reads x only after that kernel completed).
absl::Status RunLinear(const GpuLinear& l, ActType act, const void* x, int64_t n, void* y, bool y_f32,
                       cublasHandle_t blas, void* qgemm_ws, size_t qgemm_ws_bytes, cudaStream_t stream,
                       bool pdl = false);

absl::Status CudaStatus(cudaError_t e, const char* what);

}  // namespace slq::gpu

#endif  // SLQ_SERVER_GPU_GPU_MODEL_IMPL_H_
