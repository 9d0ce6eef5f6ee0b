#include "server/scheduler/scheduler.h"

#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/status_macros.h"
#include "server/jobs/test_pause.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/task_payload.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

using json = nlohmann::json;

// Where each stage sits in the job's overall progress, [begin, end).
struct StageSpan {
  double begin, end;
};
StageSpan Span(JobStage s) {
  switch (s) {
    case JobStage::kFetch:
      return {0.00, 0.05};
    case JobStage::kProfile:
      return {0.05, 0.60};
    case JobStage::kSearch:
      return {0.60, 0.80};
    case JobStage::kPack:
      return {0.80, 0.90};
    case JobStage::kVerify:
      return {0.90, 0.98};
    case JobStage::kPublish:
      return {0.98, 1.00};
  }
  return {0, 1};
}

bool AllDone(const std::vector<Task>& tasks) {
  if (tasks.empty()) return false;
  for (const Task& t : tasks) {
    if (t.state != TaskState::kDone) return false;
  }
  return true;
}

int64_t CountDone(const std::vector<Task>& tasks) {
  int64_t n = 0;
  for (const Task& t : tasks) n += t.state == TaskState::kDone;
  return n;
}

// A stored payload or result that does not decode: the store is corrupt.
template <typename M>
absl::StatusOr<M> Decode(const std::string& text, const std::string& what) {
  auto m = DecodeTask<M>(text, what);
  if (!m.ok()) return absl::DataLossError(absl::StrCat("corrupt ", m.status().message()));
  return m;
}

// The job's options (job_convert.cc writes them from the JobSpec) as the tasks carry them.
absl::StatusOr<v1::QuantOptions> JobQuantOptions(const Job& job) {
  json o = json::parse(job.request.options_json, nullptr, /*allow_exceptions=*/false);
  if (o.is_discarded() || !o.is_object()) return absl::DataLossError("corrupt JSON in job options");
  v1::QuantOptions q;
  q.set_model_uri(o.value("model_uri", job.request.model_uri));
  q.set_calibration_data(o.value("data_ref", job.request.calibration_data));
  q.set_eval_data(o.value("eval_ref", job.request.eval_data));
  q.set_target(o.value("target", job.request.target));
  q.set_formats(o.value("formats", job.request.formats));
  q.set_group_size(static_cast<int32_t>(o.value("group_size", int64_t{job.request.group_size})));
  q.set_symmetric(o.value("symmetric", false));
  q.set_mse_clip(o.value("mse_clip", false));
  q.set_hadamard(o.value("rotate", false));
  q.set_quantize_lm_head(o.value("quantize_lm_head", false));
  q.set_temperature(o.value("temperature", 1.0));
  q.set_seed(o.value("seed", uint64_t{0}));
  q.set_quantizers(o.value("quantizers", ""));
  q.set_symmetry(o.value("symmetry", ""));
  q.set_group_sizes(o.value("group_sizes", ""));
  q.set_grids(o.value("grids", ""));
  if (o.contains("cloze_items")) q.set_cloze_items(o.value("cloze_items", int64_t{0}));
  q.set_scales(o.value("scales", ""));
  return q;
}

}  // namespace

Scheduler::Scheduler(JobStore* store, ArtifactStore* artifacts, Metrics* metrics, SchedulerOptions options)
    : store_(store), artifacts_(artifacts), metrics_(metrics), options_(options) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::ObserveStageEnd(const Job& job, JobStage next) {
  if (!metrics_ || next == job.stage) return;
  auto events = store_->ListEvents(job.id, 0, 1000);
  if (!events.ok()) return;
  for (const JobEvent& e : *events) {
    if (e.stage == job.stage) {
      metrics_->stage_duration(std::string(JobStageName(job.stage)))
          .Observe(absl::ToDoubleSeconds(absl::Now() - e.time));
      return;
    }
  }
}

absl::Status Scheduler::Event(const Job& job, JobStage stage, double progress, const std::string& msg) {
  ObserveStageEnd(job, stage);
  StageSpan span = Span(stage);
  double overall = span.begin + (span.end - span.begin) * std::clamp(progress, 0.0, 1.0);
  JobUpdate u;
  u.stage = stage;
  u.progress = overall;
  SLQ_RETURN_IF_ERROR(store_->UpdateJob(job.id, u).status());
  SLQ_RETURN_IF_ERROR(store_->AppendEvent(job.id, stage, overall, msg).status());
  if (on_event_) on_event_(job.id);
  return absl::OkStatus();
}

absl::Status Scheduler::Fail(const Job& job, const std::string& error) {
  spdlog::warn("job {}: failed: {}", job.id, error);
  AbortStaging(job);
  JobUpdate u;
  u.state = JobState::kFailed;
  u.error = error;
  SLQ_RETURN_IF_ERROR(store_->UpdateJob(job.id, u).status());
  SLQ_RETURN_IF_ERROR(store_->AppendEvent(job.id, job.stage, job.progress, "failed: " + error).status());
  if (metrics_) metrics_->jobs_finished("FAILED").Increment();
  if (on_event_) on_event_(job.id);
  return absl::OkStatus();
}

void Scheduler::AbortStaging(const Job& job) {
  auto tasks = store_->ListTasks(job.id);
  if (!tasks.ok()) return;
  for (const Task& t : *tasks) {
    if (t.kind != "pack") continue;
    auto p = DecodeTask<v1::TaskPayload>(t.payload_json, "pack payload");
    if (!p.ok() || !p->has_pack() || !p->pack().has_staging()) continue;
    StagedArtifact staged;
    staged.job_id = job.id;
    staged.container = p->pack().staging().container();
    staged.dir = p->pack().staging().dir();
    absl::Status s = artifacts_->Abort(staged);  // frees the space a failed write took
    if (!s.ok()) spdlog::warn("job {}: {}", job.id, s.ToString());
  }
}

absl::Status Scheduler::StartJob(const Job& job) {
  if (job.request.options_json.empty()) return Fail(job, "job has no quantization options (store corrupt?)");
  v1::TaskPayload payload;
  SLQ_ASSIGN_OR_RETURN(*payload.mutable_fetch()->mutable_options(), JobQuantOptions(job));
  SLQ_RETURN_IF_ERROR(store_->AddTasks(job.id, {{"fetch", EncodeTaskMessage(payload)}}).status());
  JobUpdate u;
  u.state = JobState::kRunning;
  SLQ_RETURN_IF_ERROR(store_->UpdateJob(job.id, u).status());
  spdlog::info("job {}: started ({} -> {})", job.id, job.request.model_uri, job.request.target);
  return Event(job, JobStage::kFetch, 0, "fetching " + job.request.model_uri);
}

absl::Status Scheduler::Advance(const Job& job, const std::vector<Task>& tasks) {
  std::map<std::string, std::vector<Task>> by_kind;
  for (const Task& t : tasks) {
    if (t.state == TaskState::kFailed) {
      return Fail(job, absl::StrCat(t.kind, " task failed after ", t.attempts, " attempt(s): ", t.error));
    }
    by_kind[t.kind].push_back(t);
  }
  const auto& fetch = by_kind["fetch"];
  if (!AllDone(fetch)) return absl::OkStatus();
  SLQ_ASSIGN_OR_RETURN(v1::TaskResult fetch_result, Decode<v1::TaskResult>(fetch.front().result_json, "fetch result"));
  const v1::FetchResult& fetched = fetch_result.fetch();
  const v1::QuantOptions& options = fetched.options();

  const auto& profile = by_kind["profile"];
  if (profile.empty()) {
    std::vector<TaskSpec> specs;
    for (const v1::SlotGroup& group : fetched.layers()) {
      v1::TaskPayload p;
      *p.mutable_profile()->mutable_options() = options;
      *p.mutable_profile()->mutable_layer() = group;
      specs.push_back({"profile", EncodeTaskMessage(p), 3});
    }
    if (specs.empty()) return Fail(job, "the model has no quantizable layers");
    SLQ_RETURN_IF_ERROR(store_->AddTasks(job.id, specs).status());
    return Event(job, JobStage::kProfile, 0, absl::StrCat("profiling ", specs.size(), " layer groups"));
  }
  if (!AllDone(profile)) {
    double f = static_cast<double>(CountDone(profile)) / static_cast<double>(profile.size());
    if (job.stage == JobStage::kProfile &&
        std::abs(job.progress - (Span(JobStage::kProfile).begin +
                                 f * (Span(JobStage::kProfile).end - Span(JobStage::kProfile).begin))) > 1e-9) {
      return Event(job, JobStage::kProfile, f,
                   absl::StrCat(CountDone(profile), "/", profile.size(), " layer groups profiled"));
    }
    return absl::OkStatus();
  }

  const auto& search = by_kind["search"];
  if (search.empty()) {
    v1::TaskPayload p;
    *p.mutable_search()->mutable_options() = options;
    for (const Task& t : profile) {
      SLQ_ASSIGN_OR_RETURN(v1::TaskResult share, Decode<v1::TaskResult>(t.result_json, "profile result " + t.id));
      *p.mutable_search()->add_profiles() = share.profile();
    }
    SLQ_RETURN_IF_ERROR(store_->AddTasks(job.id, {{"search", EncodeTaskMessage(p), 3}}).status());
    return Event(job, JobStage::kSearch, 0, "searching per-layer bitwidths");
  }
  if (!AllDone(search)) return absl::OkStatus();

  const auto& pack = by_kind["pack"];
  if (pack.empty()) {
    SLQ_ASSIGN_OR_RETURN(v1::TaskResult s, Decode<v1::TaskResult>(search.front().result_json, "search result"));
    absl::StatusOr<StagedArtifact> staging = artifacts_->BeginStaging(job.id);
    // A full or read-only artifact volume will not heal by retrying every tick: fail the job
    // with the store's message (it names the path and the errno text).
    if (!staging.ok()) return Fail(job, absl::StrCat("cannot stage the artifact: ", staging.status().message()));
    const StagedArtifact& staged = *staging;
    v1::TaskPayload p;
    *p.mutable_pack()->mutable_options() = options;
    *p.mutable_pack()->mutable_search() = s.search();
    p.mutable_pack()->mutable_staging()->set_container(staged.container);
    p.mutable_pack()->mutable_staging()->set_dir(staged.dir);
    SLQ_RETURN_IF_ERROR(store_->AddTasks(job.id, {{"pack", EncodeTaskMessage(p), 3}}).status());
    json outcome = json::parse(s.search().search_outcome_json(), nullptr, /*allow_exceptions=*/false);
    const double bits = outcome.is_object() ? outcome.value("avg_bits", 0.0) : 0.0;
    return Event(job, JobStage::kPack, 0, absl::StrCat("packing at ", bits, " bits/param"));
  }
  if (!AllDone(pack)) return absl::OkStatus();
  return Publish(job, pack.front());
}

absl::Status Scheduler::Publish(const Job& job, const Task& pack) {
  SLQ_ASSIGN_OR_RETURN(v1::TaskResult result, Decode<v1::TaskResult>(pack.result_json, "pack result"));
  SLQ_ASSIGN_OR_RETURN(v1::TaskPayload payload, Decode<v1::TaskPayload>(pack.payload_json, "pack payload"));
  const v1::PackResult& r = result.pack();
  StagedArtifact staged;
  staged.job_id = job.id;
  staged.container = payload.pack().staging().container();
  staged.dir = payload.pack().staging().dir();
  const std::string expected_id = r.manifest_sha256();
  Artifact artifact;
  TestPausePoint("publish");  // test-only crash point (no-op unless SLQ_TEST_PAUSE_AT is set)
  absl::StatusOr<Artifact> published = artifacts_->Publish(staged);
  TestPausePoint("published");
  if (published.ok()) {
    artifact = *published;
  } else {
    // A crash after the rename and before the job row was updated: the staging container is
    // gone but the artifact is already published under the id the worker computed.
    auto path = expected_id.empty() ? absl::StatusOr<std::string>(published.status()) : artifacts_->Path(expected_id);
    if (!path.ok()) return Fail(job, absl::StrCat("publish: ", published.status().message()));
    auto existing = store_->GetArtifact(expected_id);
    if (existing.ok()) {
      artifact = *existing;
    } else {
      artifact.id = expected_id;
      artifact.path = *path;
      artifact.certificate_json = r.certificate_json().empty() ? "{}" : r.certificate_json();
    }
  }
  artifact.job_id = job.id;
  SLQ_RETURN_IF_ERROR(store_->PutArtifact(artifact));
  const bool met = r.target_met();
  const std::string status = r.status().empty() ? (met ? "met" : "target not met") : r.status();
  ObserveStageEnd(job, JobStage::kPublish);
  JobUpdate u;
  u.stage = JobStage::kPublish;
  u.progress = 1.0;
  u.artifact_id = artifact.id;
  u.state = met ? JobState::kSucceeded : JobState::kFailed;
  if (!met) u.error = "target not met: " + status + " (artifact " + artifact.id + " kept, marked failing)";
  SLQ_RETURN_IF_ERROR(store_->UpdateJob(job.id, u).status());
  SLQ_RETURN_IF_ERROR(
      store_
          ->AppendEvent(job.id, JobStage::kPublish, 1.0,
                        absl::StrCat(met ? "published " : "published (target NOT met) ", artifact.id, ": ", status))
          .status());
  if (metrics_) metrics_->jobs_finished(met ? "SUCCEEDED" : "FAILED").Increment();
  spdlog::info("job {}: {} artifact {} ({})", job.id, met ? "succeeded," : "target not met,", artifact.id, status);
  if (on_event_) on_event_(job.id);
  return absl::OkStatus();
}

absl::Status Scheduler::ReconcileLocked(const Job& job) {
  if (IsTerminal(job.state)) return absl::OkStatus();
  SLQ_ASSIGN_OR_RETURN(std::vector<Task> tasks, store_->ListTasks(job.id));
  if (tasks.empty()) return StartJob(job);
  if (job.state == JobState::kQueued) {  // re-queued after a crash: it is running again
    JobUpdate u;
    u.state = JobState::kRunning;
    SLQ_RETURN_IF_ERROR(store_->UpdateJob(job.id, u).status());
  }
  return Advance(job, tasks);
}

absl::Status Scheduler::Reconcile(const std::string& job_id) {
  absl::MutexLock l(&reconcile_mu_);
  SLQ_ASSIGN_OR_RETURN(Job job, store_->GetJob(job_id));
  absl::Status s = ReconcileLocked(job);
  if (!s.ok() && s.code() == absl::StatusCode::kDataLoss) return Fail(job, std::string(s.message()));
  if (!s.ok() && LostRace(job_id, s)) return absl::OkStatus();
  return s;
}

bool Scheduler::LostRace(const std::string& job_id, const absl::Status& s) {
  // Another scheduler on the same store (a second server) took this step first: the store refused
  // the duplicate stage (AddTasks: AlreadyExists) or the job ended meanwhile (published or failed
  // there). The next reconcile starts from what that scheduler wrote.
  bool lost = absl::IsAlreadyExists(s);
  if (!lost) {
    auto now = store_->GetJob(job_id);
    lost = now.ok() && IsTerminal(now->state);
  }
  if (lost) spdlog::info("job {}: another scheduler advanced it first ({})", job_id, std::string(s.message()));
  return lost;
}

absl::Status Scheduler::ReconcileAll() {
  SLQ_ASSIGN_OR_RETURN(ExpireResult expired, store_->ExpireLeases(absl::Now()));
  if (metrics_ && expired.requeued + expired.failed > 0) {
    metrics_->leases_expired().Increment(static_cast<double>(expired.requeued + expired.failed));
  }
  for (JobState state : {JobState::kQueued, JobState::kRunning}) {
    ListJobsOptions opts;
    opts.state = state;
    opts.page_size = 500;
    do {
      SLQ_ASSIGN_OR_RETURN(JobPage page, store_->ListJobs(opts));
      for (const Job& j : page.jobs) {
        absl::Status s = Reconcile(j.id);
        if (!s.ok()) spdlog::error("job {}: reconcile: {}", j.id, s.ToString());
      }
      opts.page_token = page.next_page_token;
    } while (!opts.page_token.empty());
  }
  UpdateGauges();
  return absl::OkStatus();
}

absl::Status Scheduler::TaskProgress(const Task& task, JobStage stage, double progress, const std::string& message) {
  if (task.kind == "profile") return absl::OkStatus();
  absl::MutexLock l(&reconcile_mu_);
  SLQ_ASSIGN_OR_RETURN(Job job, store_->GetJob(task.job_id));
  if (IsTerminal(job.state)) return absl::OkStatus();
  return Event(job, stage, progress, message);
}

void Scheduler::UpdateGauges() {
  if (!metrics_) return;
  auto counts = store_->CountTasks();
  if (counts.ok()) {
    metrics_->task_queue_depth().Set(static_cast<double>((*counts)[TaskState::kPending]));
    metrics_->leases_active().Set(static_cast<double>((*counts)[TaskState::kLeased]));
  }
  auto jobs = store_->CountJobs();  // one GROUP BY query, not a scan of every job
  if (jobs.ok()) {
    for (const auto& [state, n] : *jobs) metrics_->jobs(std::string(JobStateName(state))).Set(static_cast<double>(n));
  }
  auto workers = store_->ListWorkers();
  if (workers.ok()) {
    int64_t live = 0;
    for (const Worker& w : *workers) live += absl::Now() - w.last_heartbeat < absl::Seconds(90);
    metrics_->workers_connected().Set(static_cast<double>(live));
  }
}

void Scheduler::Start() {
  absl::MutexLock l(&loop_mu_);
  if (running_) return;
  running_ = true;
  thread_ = std::make_unique<std::thread>([this] {
    while (true) {
      {
        absl::MutexLock l(&loop_mu_);
        auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_mu_) { return poked_ || !running_; };
        loop_mu_.AwaitWithTimeout(absl::Condition(&wake), options_.tick);
        if (!running_) return;
        poked_ = false;
      }
      absl::Status s = ReconcileAll();
      if (!s.ok()) spdlog::error("scheduler: {}", s.ToString());
    }
  });
}

void Scheduler::Stop() {
  {
    absl::MutexLock l(&loop_mu_);
    if (!running_) return;
    running_ = false;
  }
  thread_->join();
  thread_.reset();
}

void Scheduler::Poke() {
  absl::MutexLock l(&loop_mu_);
  poked_ = true;
}

}  // namespace slq
