#include "server/api/job_service.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/api/job_convert.h"
#include "server/api/status_map.h"
#include "server/common/status_macros.h"
#include "server/metrics/metrics.h"
#include "spdlog/spdlog.h"

namespace slq::api {
namespace {

grpc::Status Invalid(const std::string& msg) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, BoundedMessage(msg));
}

// `s` with the request field it is about in front of its message (same code, bounded).
grpc::Status FieldError(absl::string_view field, const absl::Status& s) {
  return ToGrpcStatus(absl::Status(s.code(), absl::StrCat(field, ": ", s.message())));
}

double Eta(const std::vector<JobEvent>& events, double progress) {
  if (events.empty() || progress < 0.02 || progress >= 1) return 0;
  double elapsed = absl::ToDoubleSeconds(absl::Now() - events.front().time);
  return elapsed * (1 - progress) / progress;
}

}  // namespace

JobServiceImpl::JobServiceImpl(JobStore* store, ArtifactStore* artifacts, Scheduler* scheduler, Metrics* metrics,
                               JobServiceOptions options)
    : store_(store), artifacts_(artifacts), scheduler_(scheduler), metrics_(metrics), options_(std::move(options)) {}

void JobServiceImpl::NotifyJobEvent(const std::string&) {
  absl::MutexLock l(&mu_);
  ++event_epoch_;
}

void JobServiceImpl::Shutdown() {
  absl::MutexLock l(&mu_);
  shutdown_ = true;
}

bool JobServiceImpl::WaitForEvent(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  int64_t epoch = event_epoch_;
  auto changed = [this, epoch]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return event_epoch_ != epoch || shutdown_; };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return !shutdown_;
}

std::string JobServiceImpl::CertificateOf(const Job& job) {
  if (job.artifact_id.empty()) return "";
  auto a = store_->GetArtifact(job.artifact_id);
  return a.ok() ? a->certificate_json : "";
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext*, const slq::v1::SubmitJobRequest* req,
                                       slq::v1::SubmitJobResponse* resp) {
  auto request = SpecToRequest(req->spec(), req->idempotency_key());
  if (!request.ok()) return ToGrpcStatus(request.status());
  if (options_.validate_model_uri) {
    absl::Status s = options_.validate_model_uri(request->model_uri);
    if (!s.ok()) return FieldError("spec.model_uri", s);
  }
  if (options_.validate_data_ref) {
    for (const auto& [field, ref] :
         {std::pair<const char*, const std::string*>{"spec.calibration_data", &request->calibration_data},
          {"spec.eval_data", &request->eval_data}}) {
      absl::Status s = options_.validate_data_ref(*ref);
      if (!s.ok()) return FieldError(field, s);
    }
  }
  auto created = store_->CreateJob(*request);
  if (!created.ok()) {
    if (created.status().code() == absl::StatusCode::kFailedPrecondition && !req->idempotency_key().empty()) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, BoundedMessage(created.status().message()));
    }
    return ToGrpcStatus(created.status());
  }
  if (created->created) {
    spdlog::info("job {}: submitted {} target {} formats {}", created->job.id, request->model_uri, request->target,
                 request->formats);
    absl::Status s = scheduler_->Reconcile(created->job.id);  // creates the first task now
    if (!s.ok()) spdlog::warn("job {}: first reconcile: {}", created->job.id, s.ToString());
    scheduler_->Poke();
  }
  auto job = store_->GetJob(created->job.id);
  *resp->mutable_job() = JobToProto(job.ok() ? *job : created->job, "");
  resp->set_created(created->created);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext*, const slq::v1::GetJobRequest* req,
                                    slq::v1::GetJobResponse* resp) {
  if (req->job_id().empty()) return Invalid("job_id is required");
  auto job = store_->GetJob(req->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *resp->mutable_job() = JobToProto(*job, CertificateOf(*job));
  auto events = store_->ListEvents(job->id, 0, 1);
  if (events.ok()) resp->mutable_job()->set_eta_seconds(Eta(*events, job->progress));
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext*, const slq::v1::ListJobsRequest* req,
                                      slq::v1::ListJobsResponse* resp) {
  if (req->page_size() < 0 || req->page_size() > 500) {
    return Invalid(absl::StrCat("page_size must be in [0, 500], got ", req->page_size()));
  }
  ListJobsOptions opts;
  opts.page_size = req->page_size() == 0 ? 50 : req->page_size();
  opts.page_token = req->page_token();
  if (req->state() != slq::v1::JOB_STATE_UNSPECIFIED) {
    auto st = FromProto(req->state());
    if (!st.ok()) return Invalid("state: " + std::string(st.status().message()));
    opts.state = *st;
  }
  auto page = store_->ListJobs(opts);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const Job& j : page->jobs) *resp->add_jobs() = JobToProto(j, "");
  resp->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* ctx, const slq::v1::WatchJobRequest* req,
                                      grpc::ServerWriter<slq::v1::WatchJobResponse>* writer) {
  if (req->job_id().empty()) return Invalid("job_id is required");
  if (req->after_sequence() < 0) return Invalid("after_sequence must be >= 0");
  auto first = store_->ListEvents(req->job_id(), 0, 1);
  if (!first.ok()) return ToGrpcStatus(first.status());
  int64_t after = req->after_sequence();
  while (!ctx->IsCancelled()) {
    auto job = store_->GetJob(req->job_id());
    if (!job.ok()) return ToGrpcStatus(job.status());
    auto events = store_->ListEvents(req->job_id(), after, 500);
    if (!events.ok()) return ToGrpcStatus(events.status());
    for (const JobEvent& e : *events) {
      slq::v1::WatchJobResponse out;
      out.set_sequence(e.seq);
      *out.mutable_time() = ToProto(e.time);
      // Intermediate events carry RUNNING; the last event of a finished job carries its state.
      bool last = &e == &events->back() && IsTerminal(job->state);
      out.set_state(last ? ToProto(job->state) : ToProto(JobState::kRunning));
      out.set_stage(ToProto(e.stage));
      out.set_progress(e.progress);
      out.set_message(e.message);
      out.set_eta_seconds(Eta(*first, e.progress));
      if (!writer->Write(out)) return grpc::Status::OK;  // the client left
      after = e.seq;
    }
    if (IsTerminal(job->state) && events->size() < 500) {
      if (events->empty()) {  // nothing new: still tell the client how it ended
        slq::v1::WatchJobResponse out;
        out.set_sequence(after);
        *out.mutable_time() = ToProto(job->updated);
        out.set_state(ToProto(job->state));
        out.set_stage(ToProto(job->stage));
        out.set_progress(job->progress);
        out.set_message(job->error);
        writer->Write(out);
      }
      return grpc::Status::OK;
    }
    if (events->empty() && !WaitForEvent(absl::Milliseconds(500))) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down; resume with after_sequence");
    }
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled by the client");
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext*, const slq::v1::CancelJobRequest* req,
                                       slq::v1::CancelJobResponse* resp) {
  if (req->job_id().empty()) return Invalid("job_id is required");
  auto before = store_->GetJob(req->job_id());
  if (!before.ok()) return ToGrpcStatus(before.status());
  auto job = store_->CancelJob(req->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  if (before->state != JobState::kCancelled) {
    (void)store_->AppendEvent(job->id, job->stage, job->progress, "cancelled by the client");
    if (metrics_) metrics_->jobs_finished("CANCELLED").Increment();
    spdlog::info("job {}: cancelled", job->id);
  }
  NotifyJobEvent(job->id);
  *resp->mutable_job() = JobToProto(*job, "");
  return grpc::Status::OK;
}

absl::StatusOr<slq::v1::Artifact> JobServiceImpl::ArtifactToProto(const Artifact& a) {
  slq::v1::Artifact p;
  p.set_id(a.id);
  p.set_job_id(a.job_id);
  p.set_size_bytes(a.size);
  *p.mutable_create_time() = ToProto(a.created);
  slq::v1::Certificate c = CertificateFromJson(a.certificate_json);
  p.set_source_model(c.source_model());
  p.set_avg_bits(c.avg_bits_quantized());
  p.set_target_met(c.target_met());
  auto files = artifacts_->ListFiles(a.id);
  if (files.ok()) {
    for (const auto& f : *files) {
      auto* pf = p.add_files();
      pf->set_name(f.name);
      pf->set_size_bytes(static_cast<int64_t>(f.bytes));
      pf->set_sha256(f.sha256);
    }
  }
  return p;
}

grpc::Status JobServiceImpl::ListArtifacts(grpc::ServerContext*, const slq::v1::ListArtifactsRequest* req,
                                           slq::v1::ListArtifactsResponse* resp) {
  if (req->page_size() < 0 || req->page_size() > 500) return Invalid("page_size must be in [0, 500]");
  int64_t offset = 0;
  if (!req->page_token().empty() && (!absl::SimpleAtoi(req->page_token(), &offset) || offset < 0)) {
    return Invalid("page_token is not one this server issued");
  }
  auto all = store_->ListArtifacts("");
  if (!all.ok()) return ToGrpcStatus(all.status());
  const int64_t size = req->page_size() == 0 ? 50 : req->page_size();
  const int64_t n = static_cast<int64_t>(all->size());
  for (int64_t i = offset; i < std::min(n, offset + size); ++i) {
    auto p = ArtifactToProto((*all)[static_cast<size_t>(i)]);
    if (p.ok()) *resp->add_artifacts() = *p;
  }
  if (offset + size < n) resp->set_next_page_token(std::to_string(offset + size));
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetArtifact(grpc::ServerContext*, const slq::v1::GetArtifactRequest* req,
                                         slq::v1::GetArtifactResponse* resp) {
  if (req->artifact_id().empty()) return Invalid("artifact_id is required");
  auto a = store_->GetArtifact(req->artifact_id());
  if (!a.ok()) return ToGrpcStatus(a.status());
  auto p = ArtifactToProto(*a);
  if (!p.ok()) return ToGrpcStatus(p.status());
  *resp->mutable_artifact() = *p;
  *resp->mutable_certificate() = CertificateFromJson(a->certificate_json);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::DownloadArtifact(grpc::ServerContext* ctx, const slq::v1::DownloadArtifactRequest* req,
                                              grpc::ServerWriter<slq::v1::DownloadArtifactResponse>* writer) {
  if (req->artifact_id().empty()) return Invalid("artifact_id is required");
  if (req->chunk_bytes() < 0 || req->chunk_bytes() > (4 << 20)) return Invalid("chunk_bytes must be in [0, 4 MiB]");
  const size_t chunk = req->chunk_bytes() == 0 ? (1 << 20) : static_cast<size_t>(req->chunk_bytes());
  auto files = artifacts_->ListFiles(req->artifact_id());
  if (!files.ok()) return ToGrpcStatus(files.status());
  std::vector<ArtifactFile> all = *files;
  ArtifactFile manifest;
  manifest.name = kArtifactManifestName;
  manifest.sha256 = req->artifact_id();  // content address = sha256 of the manifest
  all.push_back(manifest);
  for (const ArtifactFile& f : all) {
    auto reader = artifacts_->OpenRead(req->artifact_id(), f.name);
    if (!reader.ok()) return ToGrpcStatus(reader.status());
    int64_t offset = 0;
    while (true) {
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled");
      auto data = (*reader)->Read(chunk);
      if (!data.ok()) return ToGrpcStatus(data.status());
      bool last = static_cast<uint64_t>(offset) + data->size() >= (*reader)->size();
      slq::v1::DownloadArtifactResponse out;
      out.set_file_name(f.name);
      out.set_offset(offset);
      out.set_data(*data);
      out.set_last_chunk_of_file(last);
      if (last) out.set_file_sha256(f.sha256);
      if (!writer->Write(out)) return grpc::Status::OK;
      offset += static_cast<int64_t>(data->size());
      if (last) break;
    }
  }
  return grpc::Status::OK;
}

}  // namespace slq::api
