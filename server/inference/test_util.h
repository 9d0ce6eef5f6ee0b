// Test helpers for server/inference: a small random model with a byte-level codec, and the
// real tiny models from the shared folder. Test-only.
#ifndef SLQ_SERVER_INFERENCE_TEST_UTIL_H_
#define SLQ_SERVER_INFERENCE_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "server/inference/engine.h"
#include "server/inference/text_codec.h"
#include "server/model/model.h"

namespace slq::inference::testing {

inline constexpr int32_t kByteBos = 256;
inline constexpr int32_t kByteEos = 257;

// A random Llama model with vocab 260 (bytes + BOS 256 + EOS 257 + 2 spare), context
// `max_pos`, written to a temp dir and loaded; EOS 257 in its config unless !eos (then
// generation only ends at max_tokens: for tests that need long-running requests).
std::shared_ptr<const Model> ByteModel(int64_t max_pos = 256, uint64_t seed = 3, bool eos = true);
std::shared_ptr<const TextCodec> ByteCodec(bool eos = true);

// Drains a stream: all token ids, the text and the final event.
struct Collected {
  std::vector<int32_t> ids;
  std::string text;
  std::vector<float> logprobs;
  GenerationEvent final;
  int events = 0;
};
Collected Collect(RequestStream& s);

// Replaces every transformer linear (not the LM head) by a QuantizedLinear of `bits`
// (group 32, asymmetric). False if one failed.
bool QuantizeLinears(Model* model, int bits);

// Path of a shared test model, e.g. Shared("tinystories-656k").
std::string SharedModel(const std::string& rel);

}  // namespace slq::inference::testing

#endif  // SLQ_SERVER_INFERENCE_TEST_UTIL_H_
