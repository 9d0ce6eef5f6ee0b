// The Gram matrices H = X^T X of linear layers' inputs on calibration text, for the roundings
// that use activations (rounding.h: mse, gptq).
//
//   SLQ_ASSIGN_OR_RETURN(auto grams, CaptureInputGrams(model, {"model.layers.0.mlp.up_proj"}, calib));
//
// Each named slot's op is wrapped for the duration of the call by an op that accumulates its
// inputs' Gram (fp64, under a lock) and then runs the original; every sequence is run
// teacher-forced once; the original ops are back in place when the call returns (also on
// error). Nothing in the forward pass changes when no capture runs. The inputs are those of the
// model as it is (call it on the dense model). Thread safety: no other forward pass on `model`
// during the call.
#ifndef SLQ_SERVER_QUANT_INPUT_GRAM_H_
#define SLQ_SERVER_QUANT_INPUT_GRAM_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/model.h"
#include "server/quant/rounding.h"

namespace slq::quant {

[[nodiscard]] absl::StatusOr<std::map<std::string, InputGram>> CaptureInputGrams(
    Model& model, const std::vector<std::string>& slots, const std::vector<std::vector<int32_t>>& seqs);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_INPUT_GRAM_H_
