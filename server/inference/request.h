// The engine's request and event types (no gRPC; server/api converts to and from proto).
//
//   GenerationRequest r;
//   r.prompt_text = "Once upon a time";
//   r.max_tokens = 32;
//   r.sampling.temperature = 0.8f; r.sampling.seed = 7;
//   r.stop = {"\n\n"};
//   SLQ_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, engine.Submit(std::move(r)));
#ifndef SLQ_SERVER_INFERENCE_REQUEST_H_
#define SLQ_SERVER_INFERENCE_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/model/sampler.h"

namespace slq::inference {

enum class FinishReason {
  kNone = 0,       // not finished (intermediate events)
  kLength = 1,     // max_tokens reached
  kStop = 2,       // EOS or a stop string
  kContext = 3,    // the model's context length reached
  kCancelled = 4,  // client cancelled, deadline passed, or the engine shut down
};
const char* FinishReasonName(FinishReason r);

struct GenerationRequest {
  // Exactly one of: text (encoded with the model's tokenizer) or ids.
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_ids;
  // Text prompts are encoded with the tokenizer's special tokens (its post-processor decides
  // about BOS); add_bos = true also makes sure the prompt starts with BOS.
  bool add_bos = false;
  SamplingParams sampling;        // stop_token_ids are added to the model's EOS ids
  int64_t max_tokens = 16;        // 1 .. context length
  std::vector<std::string> stop;  // stop strings, cut from the output
  bool logprobs = false;          // log p(sampled token) under the unmodified model distribution
  absl::Time deadline = absl::InfiniteFuture();
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // sampled tokens, the stop token excluded
  double ttft_seconds = 0;       // submit -> first token sampled
  double total_seconds = 0;      // submit -> finish
};

// One streamed event. token_ids are the tokens sampled since the last event (EOS/stop token
// ids excluded); text is the UTF-8-safe text delta (held back while it may be the start of a
// stop string or an incomplete character). The last event has final = true, a finish reason
// and usage; status is non-OK when the request failed (then finish is kCancelled or kNone).
struct GenerationEvent {
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<float> logprobs;  // one per token id when requested
  bool final = false;
  FinishReason finish = FinishReason::kNone;
  Usage usage;
  absl::Status status;
};

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_REQUEST_H_
