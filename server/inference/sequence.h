// Sequence: the engine's per-request state (internal to server/inference).
//
// tokens = prompt + generated tokens; the first table.num_tokens of them have K/V cached. A
// step feeds tokens[num_tokens, ...): a prompt chunk while prefilling, or the one token just
// sampled while decoding. When a step caches the last known token, its logits row is sampled.
// A preempted sequence loses its blocks (num_tokens = 0) and recomputes them on re-admission;
// its sampler keeps its RNG state, so the tokens do not change.
// Thread safety: owned and touched only by the engine thread (the stream is thread-safe).
#ifndef SLQ_SERVER_INFERENCE_SEQUENCE_H_
#define SLQ_SERVER_INFERENCE_SEQUENCE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "server/inference/request.h"
#include "server/inference/request_stream.h"
#include "server/inference/stop_filter.h"
#include "server/inference/text_codec.h"
#include "server/model/kv_cache.h"
#include "server/model/sampler.h"

namespace slq::inference {

struct Sequence {
  Sequence(uint64_t id_, GenerationRequest req, std::vector<int32_t> prompt, std::unique_ptr<TextStream> text_,
           std::shared_ptr<RequestStream> stream_)
      : id(id_),
        request(std::move(req)),
        tokens(std::move(prompt)),
        prompt_len(static_cast<int64_t>(tokens.size())),
        sampler(request.sampling),
        text(std::move(text_)),
        stop(request.stop),
        stream(std::move(stream_)) {}

  int64_t cached() const { return table.num_tokens; }
  int64_t remaining() const { return static_cast<int64_t>(tokens.size()) - table.num_tokens; }
  int64_t generated() const { return static_cast<int64_t>(tokens.size()) - prompt_len; }

  const uint64_t id;  // submission order: lower = older
  GenerationRequest request;
  std::vector<int32_t> tokens;  // [prompt_len + generated]
  const int64_t prompt_len;
  BlockTable table;
  Sampler sampler;
  std::unique_ptr<TextStream> text;
  StopFilter stop;
  std::shared_ptr<RequestStream> stream;
  absl::Time submitted;
  absl::Time first_token = absl::InfinitePast();  // InfinitePast until the first token
  absl::Time last_token;
  bool prompt_counted = false;  // prompt tokens added to the metric once (not on recompute)
};

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_SEQUENCE_H_
