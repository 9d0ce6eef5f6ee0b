// QuantizedLinear: a LinearOp over packed low-bit weights (slq-packed-v1) that dequantizes on
// the fly. Never keeps a full dequantized copy.
//
//   SLQ_ASSIGN_OR_RETURN(QuantizedMatrix q, QuantizeMatrix(w, out, in, cfg));
//   *slot.op = std::make_unique<QuantizedLinear>(std::move(q));
//
// Forward: if the matrix carries a Hadamard rotation, x is first rotated (R x, in a per-call
// buffer). n == 1: direct unpack-dot per output row (parallel over rows). n > 1: row tiles of
// kTileRows rows are dequantized into a per-thread scratch [kTileRows, in] and multiplied with
// OpenBLAS sgemm into y's columns. Thread safety: Forward is const and reentrant.
#ifndef SLQ_SERVER_QUANT_QUANTIZED_LINEAR_H_
#define SLQ_SERVER_QUANT_QUANTIZED_LINEAR_H_

#include <string>

#include "server/model/linear.h"
#include "server/quant/quantizer.h"

namespace slq::quant {

class QuantizedLinear final : public LinearOp {
 public:
  static constexpr int64_t kTileRows = 64;
  explicit QuantizedLinear(QuantizedMatrix q);
  int64_t in_features() const override { return q_.cols; }
  int64_t out_features() const override { return q_.rows; }
  void Forward(const float* x, int64_t n, float* y) const override;
  size_t MemoryBytes() const override;
  std::string Describe() const override { return q_.Describe(); }
  const PackedLinear* packed() const override { return &packed_; }
  std::vector<float> WeightF32() const override { return DequantizeOriginalBasis(q_); }
  const QuantizedMatrix& matrix() const { return q_; }

 private:
  QuantizedMatrix q_;
  PackedLinear packed_;  // views q_'s vectors
};

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_QUANTIZED_LINEAR_H_
