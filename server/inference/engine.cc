#include "server/inference/engine.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/status_macros.h"
#include "server/model/worker_pool.h"

namespace slq::inference {
namespace {

// log softmax(row)[id] in fp64 with max-subtraction.
float LogProb(std::span<const float> row, int32_t id) {
  double mx = row[0];
  for (float v : row) mx = std::max<double>(mx, v);
  double sum = 0;
  for (float v : row) sum += std::exp(static_cast<double>(v) - mx);
  return static_cast<float>(static_cast<double>(row[id]) - mx - std::log(sum));
}

double Seconds(absl::Time a, absl::Time b) { return absl::ToDoubleSeconds(b - a); }

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(std::shared_ptr<const Model> model,
                                                       std::shared_ptr<const TextCodec> codec,
                                                       const EngineOptions& options, Metrics* metrics) {
  if (!model || !codec) return absl::InvalidArgumentError("Engine needs a model and a codec");
  if (options.kv_block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("kv_block_size is ", options.kv_block_size, "; must be >= 1"));
  }
  if (options.max_queue < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_queue is ", options.max_queue, "; must be >= 0"));
  }
  SchedulerOptions so{options.max_running, options.token_budget, options.prefill_chunk, options.admit_headroom,
                      model->config.max_position_embeddings};
  SLQ_RETURN_IF_ERROR(ValidateSchedulerOptions(so));
  BackendOptions bo;
  bo.kv_block_size = options.kv_block_size;
  bo.kv_cache_bytes = options.kv_cache_bytes;
  bo.forward_threads = options.forward_threads;
  bo.cuda_graphs = options.cuda_graphs;
  absl::StatusOr<std::unique_ptr<ForwardBackend>> backend = MakeForwardBackend(options.device, model, bo);
  if (!backend.ok()) {
    return absl::Status(backend.status().code(),
                        absl::StrCat("model '", options.model_name, "': ", backend.status().message()));
  }
  std::unique_ptr<Engine> e(new Engine(std::move(model), std::move(codec), options, metrics, *std::move(backend)));
  e->thread_ = std::thread([p = e.get()] { p->Loop(); });
  return e;
}

Engine::Engine(std::shared_ptr<const Model> model, std::shared_ptr<const TextCodec> codec, const EngineOptions& options,
               Metrics* metrics, std::unique_ptr<ForwardBackend> backend)
    : model_(std::move(model)),
      codec_(std::move(codec)),
      opt_(options),
      metrics_(metrics),
      backend_(std::move(backend)),
      scheduler_(&backend_->allocator(),
                 SchedulerOptions{options.max_running, options.token_budget, options.prefill_chunk,
                                  options.admit_headroom, model_->config.max_position_embeddings}) {}

Engine::~Engine() { Shutdown(/*drain=*/false); }

void Engine::SetFinishHook(FinishHook hook) {
  absl::MutexLock lock(&mu_);
  hook_ = std::move(hook);
}

EngineStats Engine::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::StatusOr<std::vector<int32_t>> Engine::ResolvePrompt(const GenerationRequest& r) const {
  if (r.prompt_text.has_value() && !r.prompt_ids.empty()) {
    return absl::InvalidArgumentError("give either prompt (text) or prompt_ids, not both");
  }
  if (!r.prompt_text.has_value()) return r.prompt_ids;
  SLQ_ASSIGN_OR_RETURN(std::vector<int32_t> ids, codec_->Encode(*r.prompt_text, /*add_special=*/true));
  const int32_t bos = codec_->bos_id();
  if (r.add_bos && bos >= 0 && (ids.empty() || ids[0] != bos)) ids.insert(ids.begin(), bos);
  return ids;
}

absl::Status Engine::Validate(const GenerationRequest& r, const std::vector<int32_t>& prompt) const {
  const ModelConfig& c = model_->config;
  const int64_t ctx = c.max_position_embeddings;
  if (prompt.empty()) return absl::InvalidArgumentError("prompt is empty: give a prompt or prompt_ids");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt_ids[", i, "] = ", prompt[i], " is outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  if (static_cast<int64_t>(prompt.size()) > ctx) {
    return absl::InvalidArgumentError(absl::StrCat("prompt has ", prompt.size(), " tokens; model '", opt_.model_name,
                                                   "' has a context length of ", ctx));
  }
  if (r.max_tokens < 1 || r.max_tokens > ctx) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens is ", r.max_tokens, "; allowed 1..", ctx, " (the context length)"));
  }
  if (static_cast<int64_t>(r.stop.size()) > opt_.max_stop_strings) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop has ", r.stop.size(), " strings; at most ", opt_.max_stop_strings, " allowed"));
  }
  for (size_t i = 0; i < r.stop.size(); ++i) {
    if (r.stop[i].empty() || static_cast<int64_t>(r.stop[i].size()) > opt_.max_stop_length) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "] has ", r.stop[i].size(), " bytes; allowed 1..", opt_.max_stop_length));
    }
  }
  SLQ_RETURN_IF_ERROR(ValidateSamplingParams(r.sampling, c.vocab_size));
  if (r.deadline <= absl::Now()) return absl::DeadlineExceededError("the request's deadline already passed");
  const int64_t need =
      backend_->allocator().BlocksFor(std::min<int64_t>(static_cast<int64_t>(prompt.size()) + r.max_tokens, ctx));
  if (need > backend_->allocator().num_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("prompt + max_tokens needs ", need, " KV blocks; the KV cache of model '", opt_.model_name,
                     "' has ", backend_->allocator().num_blocks(), " (raise --kv-cache-bytes or lower max_tokens)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<RequestStream>> Engine::Submit(GenerationRequest request) {
  absl::StatusOr<std::vector<int32_t>> prompt = ResolvePrompt(request);
  absl::Status st = prompt.ok() ? Validate(request, *prompt) : prompt.status();
  if (!st.ok()) {
    CountRequest(st);
    return st;
  }
  const ModelConfig& c = model_->config;
  for (int32_t eos : c.eos_token_ids) request.sampling.stop_token_ids.push_back(eos);
  if (codec_->eos_id() >= 0) request.sampling.stop_token_ids.push_back(codec_->eos_id());
  auto stream = std::make_shared<RequestStream>();
  absl::MutexLock lock(&mu_);
  if (!accepting_) {
    st = absl::UnavailableError(absl::StrCat("model '", opt_.model_name, "' is shutting down"));
  } else if (waiting_count_ >= opt_.max_queue) {
    st =
        absl::ResourceExhaustedError(absl::StrCat("model '", opt_.model_name, "' has ", waiting_count_,
                                                  " requests waiting (queue limit ", opt_.max_queue, "); retry later"));
  }
  if (!st.ok()) {
    CountRequest(st);
    return st;
  }
  auto seq =
      std::make_unique<Sequence>(next_id_++, std::move(request), *std::move(prompt), codec_->NewTextStream(), stream);
  seq->submitted = absl::Now();
  incoming_.push_back(std::move(seq));
  ++waiting_count_;
  return stream;
}

void Engine::Shutdown(bool drain) {
  absl::MutexLock serial(&shutdown_mu_);
  {
    absl::MutexLock lock(&mu_);
    accepting_ = false;
    stop_ = true;
    drain_ = drain;
  }
  if (thread_.joinable()) thread_.join();
}

bool Engine::WaitForWork() {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !incoming_.empty() || stop_; };
  if (scheduler_.num_running() == 0) {
    // Idle, or only waiting requests (whose cancel/deadline must still be noticed).
    const absl::Duration wait = scheduler_.empty() ? absl::InfiniteDuration() : absl::Milliseconds(5);
    mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
  }
  for (auto& s : incoming_) scheduler_.Enqueue(std::move(s));
  incoming_.clear();
  waiting_count_ = scheduler_.num_waiting();
  if (stop_ && !drain_) return false;
  return !(stop_ && scheduler_.empty());
}

void Engine::Loop() {
  while (WaitForWork()) {
    ReapCancelled();
    scheduler_.Admit();
    std::vector<Scheduler::Planned> plan = scheduler_.PlanStep();
    if (!plan.empty()) RunStep(plan);
    UpdateGauges();
  }
  FailAll(absl::UnavailableError(absl::StrCat("model '", opt_.model_name, "' was shut down")));
  UpdateGauges();
}

void Engine::ReapCancelled() {
  const absl::Time now = absl::Now();
  auto dead =
      scheduler_.RemoveIf([now](const Sequence& s) { return s.stream->cancelled() || s.request.deadline <= now; });
  for (auto& s : dead) {
    absl::Status st = s->stream->cancelled() ? absl::CancelledError("cancelled by the client")
                                             : absl::DeadlineExceededError("deadline passed");
    Complete(std::move(s), FinishReason::kCancelled, st);
  }
}

void Engine::FailAll(const absl::Status& status) {
  auto all = scheduler_.RemoveIf([](const Sequence&) { return true; });
  for (auto& s : all) Complete(std::move(s), FinishReason::kCancelled, status);
  std::vector<std::unique_ptr<Sequence>> late;
  {
    absl::MutexLock lock(&mu_);
    late.swap(incoming_);
  }
  for (auto& s : late) Complete(std::move(s), FinishReason::kCancelled, status);
}

void Engine::RunStep(const std::vector<Scheduler::Planned>& plan) {
  std::vector<ForwardChunk> chunks;
  chunks.reserve(plan.size());
  for (const auto& p : plan) {
    Sequence* s = p.seq;
    chunks.push_back({&s->table, std::span<const int32_t>(s->tokens).subspan(s->cached(), p.count), false});
    if (!s->prompt_counted && s->cached() + p.count >= s->prompt_len) {
      s->prompt_counted = true;
      if (metrics_) metrics_->prompt_tokens(opt_.model_name).Increment(static_cast<double>(s->prompt_len));
    }
  }
  // Rows (one per chunk) whose sequence has its whole context cached after this step sample a
  // token (prefill chunks that do not reach the end sample nothing). Greedy rows without a
  // repetition penalty can use the backend's argmax; the others need their logits on the host.
  std::vector<size_t> rows;
  std::vector<uint8_t> need(plan.size(), 0);
  for (size_t i = 0; i < plan.size(); ++i) {
    const Sequence* s = plan[i].seq;
    if (s->cached() + plan[i].count < static_cast<int64_t>(s->tokens.size())) continue;
    rows.push_back(i);
    const SamplingParams& sp = s->sampler.params();
    need[i] = !(sp.temperature == 0.0f && sp.repetition_penalty == 1.0f);
  }
  absl::Status st = backend_->Run(chunks, need, &out_);
  if (metrics_) metrics_->batch_size().Observe(static_cast<double>(plan.size()));
  {
    absl::MutexLock lock(&mu_);
    ++stats_.steps;
    stats_.max_batch_seen = std::max<int64_t>(stats_.max_batch_seen, static_cast<int64_t>(plan.size()));
  }
  if (!st.ok()) {
    absl::Status err = absl::InternalError(absl::StrCat("forward pass failed: ", st.message()));
    for (const auto& p : plan) Complete(scheduler_.Finish(p.seq), FinishReason::kCancelled, err);
    return;
  }
  // Samplers are per sequence, so this runs in parallel.
  const int64_t vocab = model_->config.vocab_size;
  std::vector<int32_t> ids(rows.size());
  std::vector<float> logprobs(rows.size(), 0.0f);
  auto sample = [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      Sequence* s = plan[rows[k]].seq;
      if (out_.has_argmax && !need[rows[k]]) {
        ids[k] = out_.argmax[rows[k]];
        logprobs[k] = out_.argmax_logprob[rows[k]];
        continue;
      }
      const std::span<const float> row = std::span<const float>(out_.logits).subspan(rows[k] * vocab, vocab);
      ids[k] = s->sampler.Sample(row, s->tokens);
      if (s->request.logprobs) logprobs[k] = LogProb(row, ids[k]);
    }
  };
  if (rows.size() >= 8) {
    WorkerPool::Default().Run(static_cast<int64_t>(rows.size()), sample);
  } else {
    sample(0, static_cast<int64_t>(rows.size()));
  }
  for (size_t k = 0; k < rows.size(); ++k) Emit(plan[rows[k]].seq, ids[k], logprobs[k]);
}

void Engine::Emit(Sequence* s, int32_t id, float logprob) {
  const absl::Time now = absl::Now();
  if (s->first_token == absl::InfinitePast()) {
    s->first_token = now;
    if (metrics_) metrics_->inference_ttft(opt_.model_name).Observe(Seconds(s->submitted, now));
  } else if (metrics_) {
    metrics_->inference_itl(opt_.model_name).Observe(Seconds(s->last_token, now));
  }
  s->last_token = now;
  GenerationEvent ev;
  FinishReason finish = FinishReason::kNone;
  if (s->sampler.IsStop(id)) {
    finish = FinishReason::kStop;
  } else {
    s->tokens.push_back(id);
    if (metrics_) metrics_->generated_tokens(opt_.model_name).Increment();
    ev.token_ids.push_back(id);
    if (s->request.logprobs) ev.logprobs.push_back(logprob);
    bool stopped = false;
    ev.text = s->stop.Append(s->text->Push(id), &stopped);
    if (stopped) {
      finish = FinishReason::kStop;
    } else if (s->generated() >= s->request.max_tokens) {
      finish = FinishReason::kLength;
    } else if (static_cast<int64_t>(s->tokens.size()) > model_->config.max_position_embeddings) {
      finish = FinishReason::kContext;  // the new token has no position left to be fed at
    }
  }
  if (finish == FinishReason::kNone) {
    s->stream->Push(std::move(ev));
    return;
  }
  if (!s->stop.stopped()) {
    bool stopped = false;
    ev.text += s->stop.Append(s->text->Finish(), &stopped);
    if (!stopped) ev.text += s->stop.Flush();
  }
  if (!ev.token_ids.empty() || !ev.text.empty()) s->stream->Push(std::move(ev));
  FinishHook hook;
  {
    absl::MutexLock lock(&mu_);
    hook = hook_;
  }
  if (hook) hook(s->tokens, s->prompt_len);
  Complete(scheduler_.Finish(s), finish, absl::OkStatus());
}

void Engine::Complete(std::unique_ptr<Sequence> s, FinishReason reason, const absl::Status& status) {
  if (!s) return;
  const absl::Time now = absl::Now();
  GenerationEvent ev;
  ev.final = true;
  ev.finish = reason;
  ev.status = status;
  ev.usage.prompt_tokens = s->prompt_len;
  ev.usage.generated_tokens = s->generated();
  ev.usage.ttft_seconds = s->first_token == absl::InfinitePast() ? 0 : Seconds(s->submitted, s->first_token);
  ev.usage.total_seconds = Seconds(s->submitted, now);
  s->stream->Push(std::move(ev));
  if (metrics_) metrics_->inference_e2e(opt_.model_name).Observe(Seconds(s->submitted, now));
  CountRequest(status);
}

void Engine::CountRequest(const absl::Status& status) {
  if (metrics_) metrics_->inference_requests(opt_.model_name, absl::StatusCodeToString(status.code())).Increment();
}

void Engine::UpdateGauges() {
  const double running = static_cast<double>(scheduler_.num_running());
  const double waiting = static_cast<double>(scheduler_.num_waiting());
  if (metrics_) {
    metrics_->requests_running().Increment(running - gauge_running_);
    metrics_->requests_waiting().Increment(waiting - gauge_waiting_);
    metrics_->kv_cache_usage(opt_.model_name).Set(backend_->allocator().usage());
  }
  gauge_running_ = running;
  gauge_waiting_ = waiting;
  absl::MutexLock lock(&mu_);
  waiting_count_ = static_cast<int64_t>(incoming_.size()) + scheduler_.num_waiting();
  stats_.running = scheduler_.num_running();
  stats_.waiting = scheduler_.num_waiting();
  stats_.kv_blocks_total = backend_->allocator().num_blocks();
  stats_.kv_blocks_used = stats_.kv_blocks_total - backend_->allocator().num_free();
  stats_.preemptions = scheduler_.preemptions();
}

}  // namespace slq::inference
