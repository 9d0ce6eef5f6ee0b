// Single-sequence generation loop (CLI, benchmarks, tests): prefill the prompt in one chunk,
// then decode one token per step with its own KV pool.
//
//   GenerateOptions o; o.max_new_tokens = 64; o.sampling.temperature = 0;
//   SLQ_ASSIGN_OR_RETURN(GenerateResult r, Generate(model, prompt, o, [](int32_t id) {
//     return true;  // false stops early
//   }));
//
// Thread safety: may run concurrently on a shared read-only Model.
#ifndef SLQ_SERVER_MODEL_GENERATE_H_
#define SLQ_SERVER_MODEL_GENERATE_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/model.h"
#include "server/model/sampler.h"

namespace slq {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingParams sampling;    // stop_token_ids empty -> the model's EOS ids
  bool use_model_eos = true;  // add the config's eos ids to the stop set
  int64_t kv_block_size = 16;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // new tokens (a stop token, if hit, is included)
  std::string finish_reason;    // "stop" (stop token), "length", "callback" or "context"
  double prefill_seconds = 0;
  double decode_seconds = 0;  // all decode steps (excluding the prefill's first token)
};

// Callback per new token; returning false ends generation ("callback").
using TokenCallback = std::function<bool(int32_t)>;

// InvalidArgument for an empty prompt, bad ids or bad sampling params.
[[nodiscard]] absl::StatusOr<GenerateResult> Generate(const Model& model, std::span<const int32_t> prompt,
                                                      const GenerateOptions& options,
                                                      const TokenCallback& on_token = nullptr);

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_GENERATE_H_
