#include "server/model/generate.h"

#include <algorithm>
#include <chrono>

#include "server/common/status_macros.h"
#include "server/model/forward.h"
#include "server/model/kv_cache.h"

namespace slq {
namespace {
double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

absl::StatusOr<GenerateResult> Generate(const Model& model, std::span<const int32_t> prompt,
                                        const GenerateOptions& options, const TokenCallback& on_token) {
  const ModelConfig& c = model.config;
  if (prompt.empty()) return absl::InvalidArgumentError("prompt must have at least one token");
  if (options.max_new_tokens < 0) return absl::InvalidArgumentError("max_new_tokens must be >= 0");
  SamplingParams sp = options.sampling;
  if (options.use_model_eos) {
    sp.stop_token_ids.insert(sp.stop_token_ids.end(), c.eos_token_ids.begin(), c.eos_token_ids.end());
  }
  SLQ_RETURN_IF_ERROR(ValidateSamplingParams(sp, c.vocab_size));
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  const int64_t total = std::min(prompt_len + options.max_new_tokens, c.max_position_embeddings);
  const int64_t bs = std::max<int64_t>(options.kv_block_size, 1);
  KvBlockPool pool(c, bs, std::max<int64_t>(1, (total + bs - 1) / bs));
  BlockTable table;
  ForwardWorkspace ws;
  std::vector<float> logits;
  Sampler sampler(sp);
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  GenerateResult result;
  result.finish_reason = "length";

  auto t0 = std::chrono::steady_clock::now();
  ForwardChunk chunk{&table, prompt, false};
  SLQ_RETURN_IF_ERROR(Forward(model, pool, std::span<const ForwardChunk>(&chunk, 1), &ws, &logits));
  auto t1 = std::chrono::steady_clock::now();
  result.prefill_seconds = Seconds(t0, t1);
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int32_t next = sampler.Sample(logits, history);
    result.tokens.push_back(next);
    history.push_back(next);
    if (on_token && !on_token(next)) {
      result.finish_reason = "callback";
      break;
    }
    if (sampler.IsStop(next)) {
      result.finish_reason = "stop";
      break;
    }
    if (i + 1 == options.max_new_tokens) break;
    if (table.num_tokens >= c.max_position_embeddings) {
      result.finish_reason = "context";
      break;
    }
    chunk = ForwardChunk{&table, std::span<const int32_t>(&history.back(), 1), false};
    SLQ_RETURN_IF_ERROR(Forward(model, pool, std::span<const ForwardChunk>(&chunk, 1), &ws, &logits));
  }
  result.decode_seconds = Seconds(t1, std::chrono::steady_clock::now());
  return result;
}

}  // namespace slq
