// Token sampling: greedy, temperature, top-k, top-p (nucleus), repetition penalty, seeded.
//
//   SamplingParams sp{.temperature = 0.8f, .top_p = 0.95f, .seed = 42};
//   SLQ_RETURN_IF_ERROR(ValidateSamplingParams(sp, vocab));
//   Sampler sampler(sp);
//   int32_t next = sampler.Sample(logits_row, history);
//
// Order of operations (as Hugging Face's generate): repetition penalty on the raw logits, then
// temperature (0 = greedy argmax, ties -> lowest id), then top-k, then top-p, then one draw.
// Determinism: the same params (seed included), logits and history give the same tokens on
// every platform: the generator is std::mt19937_64 and uniforms are built from its raw bits.
// Thread safety: a Sampler holds RNG state; use one per sequence.
#ifndef SLQ_SERVER_MODEL_SAMPLER_H_
#define SLQ_SERVER_MODEL_SAMPLER_H_

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace slq {

struct SamplingParams {
  float temperature = 1.0f;         // >= 0; 0 = greedy
  int32_t top_k = 0;                // >= 0; 0 = no limit
  float top_p = 1.0f;               // in (0, 1]
  float repetition_penalty = 1.0f;  // > 0; 1 = off (CTRL: divide positive, multiply negative)
  uint64_t seed = 0;
  std::vector<int32_t> stop_token_ids;  // generation ends after emitting one of these
};

// InvalidArgument naming the bad field and its allowed range.
[[nodiscard]] absl::Status ValidateSamplingParams(const SamplingParams& p, int64_t vocab_size);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks a token from one row of logits [vocab]. `history` (prompt + generated ids) feeds the
  // repetition penalty. Ids in history outside the vocab are ignored.
  int32_t Sample(std::span<const float> logits, std::span<const int32_t> history);
  bool IsStop(int32_t token) const;
  const SamplingParams& params() const { return params_; }

 private:
  double Uniform();  // [0, 1) with 53 random bits

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> work_;    // [vocab] adjusted logits
  std::vector<int32_t> idx_;   // candidate ids
  std::vector<double> probs_;  // candidate probabilities
  std::vector<uint8_t> seen_;  // [vocab] ids already penalised
};

// If `text` ends with (or contains, starting in its last `new_chars` characters) one of
// `stops`, returns the position where the earliest such match starts; else npos. Callers check
// decoded text after each token and cut it at the returned position.
size_t FindStopString(std::string_view text, const std::vector<std::string>& stops, size_t new_chars);

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_SAMPLER_H_
