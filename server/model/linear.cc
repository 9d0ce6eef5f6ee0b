#include "server/model/linear.h"

#include <cblas.h>

#include <cassert>
#include <utility>

namespace slq {

DenseLinear::DenseLinear(int64_t out, int64_t in, std::vector<float> weight)
    : out_(out), in_(in), weight_(std::move(weight)) {
  assert(static_cast<int64_t>(weight_.size()) == out_ * in_);
}

// y = x W^T. For one row OpenBLAS's sgemv is markedly faster than sgemm's packing path.
void DenseLinear::Forward(const float* x, int64_t n, float* y) const {
  if (n <= 0) return;
  const blasint out = static_cast<blasint>(out_), in = static_cast<blasint>(in_);
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, weight_.data(), in, x, 1, 0.0f, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n), out, in, 1.0f, x,
              in, weight_.data(), in, 0.0f, y, out);
}

}  // namespace slq
