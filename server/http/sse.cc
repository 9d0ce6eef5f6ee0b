#include "server/http/sse.h"

namespace slq::http {

std::string SseEvent(const nlohmann::json& data) { return "data: " + data.dump() + "\n\n"; }
std::string SseDone() { return "data: [DONE]\n\n"; }

bool EventBody::Next(std::string* out, absl::Duration wait) {
  if (done_) return false;
  inference::GenerationEvent first;
  if (!stream_->Next(&first, wait)) return true;  // timed out: the transport probes the connection
  // Merge whatever else is already queued, so a fast engine does not cost one write per token.
  inference::GenerationEvent e = std::move(first);
  if (!e.final) {
    if (std::optional<inference::GenerationEvent> more = stream_->TryPopMerged()) {
      e.token_ids.insert(e.token_ids.end(), more->token_ids.begin(), more->token_ids.end());
      e.text += more->text;
      e.logprobs.insert(e.logprobs.end(), more->logprobs.begin(), more->logprobs.end());
      e.final = more->final;
      e.finish = more->finish;
      e.usage = more->usage;
      e.status = more->status;
    }
  }
  format_(e, out);
  if (e.final) done_ = true;
  return !done_;
}

}  // namespace slq::http
