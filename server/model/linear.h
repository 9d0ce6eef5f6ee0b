// LinearOp: the one seam between the model runtime and the quantization engine.
//
// Every projection of a transformer block (q, k, v, o, gate, up, down) and the LM head is a
// LinearOp. The loader creates DenseLinear (fp32 weights); the quantization engine replaces a
// slot with a packed, dequantize-on-the-fly implementation (server/quant) without the model
// knowing. Biases (Qwen2 q/k/v) are not part of the op: the model adds them.
//
// Code that needs to know what an op holds (the artifact writer, the GPU runtime's upload, the
// served model's bits) asks the op: packed() is the slq-packed-v1 view of a quantized op (null
// for a dense one), WeightF32() the fp32 matrix any op multiplies by; no dynamic_cast.
//
// Thread safety: Forward is const and may be called from several threads at once.
#ifndef SLQ_SERVER_MODEL_LINEAR_H_
#define SLQ_SERVER_MODEL_LINEAR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/packed_matrix.h"

namespace slq {

// A quantized op's weights as stored (host memory, owned by the op, valid while it lives).
struct PackedLinear {
  kernels::PackedMatrixView view;  // slq-packed-v1 codes, fp16 scales and zeros, bits, group
  bool mse_clip = false;           // how the codes were chosen (recorded in artifacts)
  std::string quantizer = "rtn";   // the rounding that chose them: rtn, mse, gptq (ditto)
  // Randomized Hadamard rotation of the input (server/quant/quantizer.h): the view multiplies
  // R x, not x. rotation_block == 0: none.
  int64_t rotation_block = 0;
  uint64_t rotation_seed = 0;
  double bits_per_param = 0;  // codes + scales (+ zeros when asymmetric) per weight
  // Compact "s8" scales (kernels/scale_codes.h), what artifacts store: one 8-bit code per group
  // and, asymmetric, one zero-point per group (unpacked, uint8), both [rows, groups]; view's
  // fp16 scales/zeros are their expansion under scale_base. Null = fp16 scales.
  const uint8_t* scale_codes = nullptr;
  const uint8_t* zero_points = nullptr;
  float scale_base = 0.0f;
};

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
  // The packed weights of a quantized op; nullptr for an unquantized one.
  virtual const PackedLinear* packed() const { return nullptr; }
  // The fp32 [out, in] matrix the op multiplies its input by (dequantized, rotation undone). A copy.
  virtual std::vector<float> WeightF32() const = 0;
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
  std::vector<float> WeightF32() const override { return weight_; }
  const std::vector<float>& weight() const { return weight_; }  // [out, in]

 private:
  int64_t out_, in_;
  std::vector<float> weight_;  // [out, in]
};

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_LINEAR_H_
