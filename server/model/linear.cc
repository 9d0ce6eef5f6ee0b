#include "server/model/linear.h"

#include <cblas.h>

#include <algorithm>
#include <cassert>
#include <utility>

#include "server/model/worker_pool.h"

namespace slq {
namespace {

// Multiply-adds below which a GEMM runs on the caller's thread alone (pool sync costs ~us).
constexpr int64_t kParallelWork = 1 << 16;
// Output rows per slice are a multiple of this (keeps OpenBLAS's micro-kernels on full tiles).
constexpr int64_t kRowAlign = 16;

// y[:, r0:r1] = x W[r0:r1, :]^T; y has row stride `out`.
void GemmRows(const float* w, int64_t out, int64_t in, const float* x, int64_t n, float* y, int64_t r0, int64_t r1) {
  const blasint rows = static_cast<blasint>(r1 - r0), k = static_cast<blasint>(in);
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, k, 1.0f, w + r0 * in, k, x, 1, 0.0f, y + r0, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n), rows, k, 1.0f, x, k, w + r0 * in, k,
              0.0f, y + r0, static_cast<blasint>(out));
}

}  // namespace

DenseLinear::DenseLinear(int64_t out, int64_t in, std::vector<float> weight)
    : out_(out), in_(in), weight_(std::move(weight)) {
  assert(static_cast<int64_t>(weight_.size()) == out_ * in_);
}

// y = x W^T, split by output rows over the runtime's worker pool (OpenBLAS runs one thread
// per slice; see worker_pool.h). For one row this is sgemv, markedly faster than sgemm.
void DenseLinear::Forward(const float* x, int64_t n, float* y) const {
  if (n <= 0 || out_ == 0) return;
  WorkerPool& pool = WorkerPool::Default();
  const int64_t blocks = (out_ + kRowAlign - 1) / kRowAlign;
  if (n * out_ * in_ < kParallelWork || blocks < 2 || pool.threads() < 2) {
    GemmRows(weight_.data(), out_, in_, x, n, y, 0, out_);
    return;
  }
  pool.Run(blocks, [&](int64_t b0, int64_t b1) {
    GemmRows(weight_.data(), out_, in_, x, n, y, b0 * kRowAlign, std::min(out_, b1 * kRowAlign));
  });
}

}  // namespace slq
