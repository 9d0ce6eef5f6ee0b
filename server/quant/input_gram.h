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

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/model.h"
#include "server/quant/rounding.h"

namespace slq::quant {

[[nodiscard]] absl::StatusOr<std::map<std::string, InputGram>> CaptureInputGrams(
    Model& model, const std::vector<std::string>& slots, const std::vector<std::vector<int32_t>>& seqs);

// CaptureInputGrams through a file cache in `cache_dir` (none when it or model_key is empty): the file
// grams-<sha256>.bin is keyed by `model_key` (the model's identity), the slot names and the token
// ids of `seqs`, and holds every slot's Gram in fp64, so a cached run rounds exactly like a fresh
// one. A file that does not match (truncated, other slots or shapes) is captured again and
// replaced; failing to write the cache is logged, not an error. The capture costs one CPU
// forward pass with fp64 Gram updates per window (~48 s for docs-19m's 128 windows on a 16-core
// host, session 8), so repeated GPTQ runs of one model and text skip it.
[[nodiscard]] absl::StatusOr<std::map<std::string, InputGram>> CachedInputGrams(
    Model& model, const std::vector<std::string>& slots, const std::vector<std::vector<int32_t>>& seqs,
    const std::string& cache_dir, const std::string& model_key);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_INPUT_GRAM_H_
