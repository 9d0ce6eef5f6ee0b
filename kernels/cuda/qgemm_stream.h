// Internal interface between qgemm.cu (QGemm: validation and kernel choice) and
// qgemm_stream.cu (the streaming small-batch kernel). Not part of the public API (qgemm.h).
#ifndef SLQ_KERNELS_CUDA_QGEMM_STREAM_H_
#define SLQ_KERNELS_CUDA_QGEMM_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda/qgemm.h"

namespace slq::kernels::internal {

// SM count of the current device (cached; 132 when it cannot be read).
int CudaSmCount();

// Launches the streaming kernel for arguments QGemm has already validated. splits <= 0 picks
// the split-K factor from the shape and the SM count.
std::string QGemmStream(const DeviceMatrix& w, const void* x, int64_t n, void* y, ActType act, void* workspace,
                        size_t workspace_bytes, void* stream, const QGemmOptions& opt);

// Launches the streaming kernel with the shared-memory weight ring (qgemm_stream_smem.cu;
// QKernel::kStreamSmem), same contract as QGemmStream.
std::string QGemmStreamSmem(const DeviceMatrix& w, const void* x, int64_t n, void* y, ActType act, void* workspace,
                            size_t workspace_bytes, void* stream, const QGemmOptions& opt);

}  // namespace slq::kernels::internal

#endif  // SLQ_KERNELS_CUDA_QGEMM_STREAM_H_
