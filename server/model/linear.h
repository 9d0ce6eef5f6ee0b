// LinearOp: the one seam between the model runtime and the quantization engine.
//
// Every projection of a transformer block (q, k, v, o, gate, up, down) and the LM head is a
// LinearOp. The loader creates DenseLinear (fp32 weights); the quantization engine replaces a
// slot with a packed, dequantize-on-the-fly implementation (server/quant) without the model
// knowing. Biases (Qwen2 q/k/v) are not part of the op: the model adds them.
//
// Thread safety: Forward is const and may be called from several threads at once.
#ifndef SLQ_SERVER_MODEL_LINEAR_H_
#define SLQ_SERVER_MODEL_LINEAR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace slq {

class LinearOp {
 public:
  virtual ~LinearOp() = default;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  // y[t, :] = W x[t, :] for t in [0, n). x: [n, in_features], y: [n, out_features], row-major
  // fp32; y is overwritten.
  virtual void Forward(const float* x, int64_t n, float* y) const = 0;
  // Bytes of weight storage this op holds (for metrics and bits accounting).
  virtual size_t MemoryBytes() const = 0;
  // A short description, e.g. "dense f32" or "q4 g128 asym".
  virtual std::string Describe() const = 0;
};

// Unquantized weights, [out, in] row-major fp32.
class DenseLinear final : public LinearOp {
 public:
  DenseLinear(int64_t out, int64_t in, std::vector<float> weight);
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void Forward(const float* x, int64_t n, float* y) const override;
  size_t MemoryBytes() const override { return weight_.size() * sizeof(float); }
  std::string Describe() const override { return "dense f32"; }
  const std::vector<float>& weight() const { return weight_; }  // [out, in]

 private:
  int64_t out_, in_;
  std::vector<float> weight_;  // [out, in]
};

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_LINEAR_H_
