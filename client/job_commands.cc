// slqctl: submit, watch, list, get, cancel, artifacts, artifact, download, health.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/output.h"
#include "client/target_flag.h"
#include "server/common/sha256.h"
#include "server/spec/job_spec.h"

namespace slq::client {
namespace {

using JobStub = slq::v1::JobService::Stub;

using slq::v1::JobState;

int ExitForFinishedJob(const slq::v1::Job& job) {
  switch (job.state()) {
    case slq::v1::JOB_STATE_FAILED:
      return kExitJobFailed;
    case slq::v1::JOB_STATE_CANCELLED:
      return kExitJobCancelled;
    case slq::v1::JOB_STATE_SUCCEEDED:
      return job.has_certificate() && !job.certificate().target_met() ? kExitTargetNotMet : kExitOk;
    default:
      return kExitOk;
  }
}

bool Terminal(JobState s) {
  return s == slq::v1::JOB_STATE_SUCCEEDED || s == slq::v1::JOB_STATE_FAILED || s == slq::v1::JOB_STATE_CANCELLED;
}

// Streams WatchJob until the job ends; reconnects (resuming from the last sequence) if the
// stream breaks while the server is still reachable.
int Watch(Client& c, const std::string& job_id, bool json, int64_t after) {
  bool tty = isatty(STDOUT_FILENO) && !json;
  std::string last_line;
  for (int attempt = 0; attempt < 30; ++attempt) {
    grpc::ClientContext ctx;
    c.Prepare(&ctx, /*with_deadline=*/false);
    slq::v1::WatchJobRequest req;
    req.set_job_id(job_id);
    req.set_after_sequence(after);
    auto reader = c.jobs().WatchJob(&ctx, req);
    slq::v1::WatchJobResponse ev;
    while (reader->Read(&ev)) {
      after = ev.sequence();
      if (json) {
        std::cout << ToJson(ev) << std::endl;
      } else {
        std::string line = ProgressBar(ev.progress(), JobStageName(ev.stage()), ev.eta_seconds());
        if (!ev.message().empty()) line += "  " + ev.message();
        if (tty) {
          std::cout << "\r\033[K" << line << std::flush;
        } else if (line != last_line) {
          std::cout << line << "\n";
        }
        last_line = line;
      }
      if (Terminal(ev.state())) break;
    }
    grpc::Status s = reader->Finish();
    if (tty) std::cout << "\n";
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE) return ReportRpcError(s, "watch");
    // Read the final state: the stream ends when the job does.
    grpc::ClientContext gctx;
    c.Prepare(&gctx);
    slq::v1::GetJobRequest greq;
    greq.set_job_id(job_id);
    slq::v1::GetJobResponse gresp;
    grpc::Status gs = c.jobs().GetJob(&gctx, greq, &gresp);
    if (!gs.ok()) {
      if (gs.error_code() == grpc::StatusCode::UNAVAILABLE) {
        sleep(1);
        continue;
      }
      return ReportRpcError(gs, "get job");
    }
    if (Terminal(gresp.job().state())) {
      if (json) {
        std::cout << ToJson(gresp.job()) << std::endl;
      } else {
        PrintJob(gresp.job());
      }
      return ExitForFinishedJob(gresp.job());
    }
    sleep(1);
  }
  std::cerr << "error: lost the watch stream of " << job_id << " too many times\n";
  return kExitUnavailable;
}

void AddSubmit(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  struct Opts {
    std::string model, target = "ear>=0.99", formats = "4-5-6-7-8", calib, eval, key, quantizers, symmetry, group_sizes,
                       grids, scales;
    int group_size = 128;
    int64_t cloze_items = 2000;
    CLI::Option* cloze_flag = nullptr;
    bool watch = false, symmetric = false, mse_clip = false, hadamard = false, quantize_head = false;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("submit", "Submit a quantization job");
  cmd->add_option("model", o->model, "Model URI: file:///path, hf://org/name[@rev], https://...")->required();
  cmd->add_option("--target", o->target, "ear>=X, kl<=X, bits<=X, tl or tl<=X")->capture_default_str();
  cmd->add_option("--formats", o->formats, "Allowed bitwidths: 4-8, 4-5-6-7-8, 2..8, 4,6,8")->capture_default_str();
  cmd->add_option("--group-size", o->group_size, "32, 64, 128 or -1 (per row)")->capture_default_str();
  cmd->add_option("--calibration", o->calib, "Calibration text: file:// URI or bundled name");
  cmd->add_option("--eval", o->eval, "Held-out text: file:// URI or bundled name");
  cmd->add_option("--idempotency-key", o->key, "A retried submit with this key returns the same job");
  cmd->add_flag("--symmetric", o->symmetric, "Symmetric quantization (for comparison)");
  cmd->add_flag("--mse-clip", o->mse_clip, "MSE-optimal clipping per group");
  cmd->add_flag("--hadamard", o->hadamard, "Randomized Hadamard rotation (HIGGS)");
  cmd->add_option("--quantizers", o->quantizers,
                  "Roundings the search may choose per layer: rtn, mse, gptq (comma list; default: the "
                  "server's, rtn,gptq, or rtn with --hadamard)");
  cmd->add_option("--symmetry", o->symmetry,
                  "Scales the search may choose per layer: asym, sym (= --symmetric) or both (default: the base only)");
  cmd->add_option("--group-sizes", o->group_sizes,
                  "Group sizes the search may choose per layer, a comma list containing --group-size, e.g. 64,128");
  cmd->add_option("--grids", o->grids,
                  "Grid Games: per-group non-uniform grids (asymmetric only, + 2 bits per group): off, on or both "
                  "(the search chooses per layer); default off");
  cmd->add_option("--scales", o->scales,
                  "Group scales: fp16 (fp16 scale + zero per group), s8 (8-bit scale code + integer zero-point per "
                  "group, one fp32 base per matrix) or both (the search chooses per layer); default fp16; not with "
                  "--hadamard");
  o->cloze_flag = cmd->add_option("--cloze-items", o->cloze_items,
                                  "TL cloze items wanted from the held-out text (capped by the text; 0 = no TL check; "
                                  "default: the server's, 2000)");
  cmd->add_flag("--quantize-head", o->quantize_head, "Quantize the LM head too (default: kept at 16 bits)");
  cmd->add_option("--seed", o->seed, "Seed for data splits and bootstrap");
  cmd->add_flag("--watch,-w", o->watch, "Watch the job until it ends");
  cmd->callback([&g, o, selected] {
    *selected = [&g, o](Client& c) {
      // The server's validator (server/spec/job_spec.h): bad input fails here, with the server's text.
      absl::Status valid =
          ValidateSubmitFlags(o->target, o->formats, o->group_size, o->symmetric,
                              o->quantizers.empty() ? slq::spec::DefaultQuantizers(o->hadamard) : o->quantizers,
                              o->hadamard, o->symmetry, o->group_sizes, o->grids, o->cloze_items, o->scales);
      auto target = ParseTargetFlag(o->target);
      if (!valid.ok() || !target.ok()) {
        std::cerr << "error: " << (valid.ok() ? target.status() : valid).message() << "\n";
        return int{kExitUsage};
      }
      slq::v1::SubmitJobRequest req;
      auto* spec = req.mutable_spec();
      spec->set_model_uri(o->model);
      *spec->mutable_target() = *target;
      spec->set_formats(o->formats);
      spec->set_group_size(o->group_size);
      spec->set_calibration_data(o->calib);
      spec->set_eval_data(o->eval);
      spec->set_symmetric(o->symmetric);
      spec->set_mse_clip(o->mse_clip);
      spec->set_hadamard(o->hadamard);
      spec->set_quantizers(o->quantizers);
      spec->set_symmetry(o->symmetry);
      spec->set_group_sizes(o->group_sizes);
      spec->set_grids(o->grids);
      if (o->cloze_flag->count() > 0) spec->set_cloze_items(o->cloze_items);
      spec->set_scales(o->scales);
      spec->set_keep_head_fp16(!o->quantize_head);
      spec->set_seed(o->seed);
      req.set_idempotency_key(o->key);
      slq::v1::SubmitJobResponse resp;
      grpc::Status s = c.Call(c.jobs(), &JobStub::SubmitJob, req, &resp);
      if (!s.ok()) return ReportRpcError(s, "submit");
      if (g.json) {
        std::cout << ToJson(resp) << std::endl;
      } else {
        std::cout << (resp.created() ? "submitted " : "existing job ") << resp.job().id() << "\n";
      }
      return o->watch ? Watch(c, resp.job().id(), g.json, 0) : int{kExitOk};
    };
  });
}

void AddWatchGetCancel(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  auto id = std::make_shared<std::string>();
  auto after = std::make_shared<int64_t>(0);
  CLI::App* w = app.add_subcommand("watch", "Stream a job's progress until it ends");
  w->add_option("job", *id, "Job id")->required();
  w->add_option("--after", *after, "Resume after this event sequence number");
  w->callback(
      [&g, id, after, selected] { *selected = [&g, id, after](Client& c) { return Watch(c, *id, g.json, *after); }; });

  auto gid = std::make_shared<std::string>();
  CLI::App* get = app.add_subcommand("get", "Show a job (and its certificate once verified)");
  get->add_option("job", *gid, "Job id")->required();
  get->callback([&g, gid, selected] {
    *selected = [&g, gid](Client& c) {
      slq::v1::GetJobRequest req;
      req.set_job_id(*gid);
      slq::v1::GetJobResponse resp;
      grpc::Status s = c.Call(c.jobs(), &JobStub::GetJob, req, &resp);
      if (!s.ok()) return ReportRpcError(s, "get");
      if (g.json) {
        std::cout << ToJson(resp.job()) << std::endl;
      } else {
        PrintJob(resp.job());
      }
      return int{kExitOk};
    };
  });

  auto cid = std::make_shared<std::string>();
  CLI::App* cancel = app.add_subcommand("cancel", "Cancel a job");
  cancel->add_option("job", *cid, "Job id")->required();
  cancel->callback([&g, cid, selected] {
    *selected = [&g, cid](Client& c) {
      slq::v1::CancelJobRequest req;
      req.set_job_id(*cid);
      slq::v1::CancelJobResponse resp;
      grpc::Status s = c.Call(c.jobs(), &JobStub::CancelJob, req, &resp);
      if (!s.ok()) return ReportRpcError(s, "cancel");
      if (g.json) {
        std::cout << ToJson(resp.job()) << std::endl;
      } else {
        std::cout << resp.job().id() << " " << JobStateName(resp.job().state()) << "\n";
      }
      return int{kExitOk};
    };
  });
}

void AddList(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  struct Opts {
    std::string state;
    int page_size = 50;
    bool all = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("list", "List jobs (oldest first, paged)");
  cmd->add_option("--state", o->state, "queued, running, succeeded, failed or cancelled");
  cmd->add_option("--page-size", o->page_size, "Jobs per page");
  cmd->add_flag("--all", o->all, "Follow page tokens to the end");
  cmd->callback([&g, o, selected] {
    *selected = [&g, o](Client& c) {
      slq::v1::ListJobsRequest req;
      req.set_page_size(o->page_size);
      if (!o->state.empty()) {
        slq::v1::JobState st;
        std::string upper = "JOB_STATE_" + absl::AsciiStrToUpper(o->state);
        if (!slq::v1::JobState_Parse(upper, &st)) {
          std::cerr << "error: --state must be queued, running, succeeded, failed or cancelled\n";
          return int{kExitUsage};
        }
        req.set_state(st);
      }
      if (!g.json) {
        std::cout << absl::StrFormat("%-21s %-10s %-8s %5s  %-12s %s\n", "JOB", "STATE", "STAGE", "PROG", "TARGET",
                                     "MODEL");
      }
      do {
        slq::v1::ListJobsResponse resp;
        grpc::Status s = c.Call(c.jobs(), &JobStub::ListJobs, req, &resp);
        if (!s.ok()) return ReportRpcError(s, "list");
        for (const auto& j : resp.jobs()) {
          if (g.json) {
            std::cout << ToJson(j) << std::endl;
          } else {
            std::cout << absl::StrFormat("%-21s %-10s %-8s %4.0f%%  %-12s %s\n", j.id(), JobStateName(j.state()),
                                         JobStageName(j.stage()), j.progress() * 100, FormatTarget(j.spec().target()),
                                         j.spec().model_uri());
          }
        }
        req.set_page_token(resp.next_page_token());
      } while (o->all && !req.page_token().empty());
      return int{kExitOk};
    };
  });
}

int Download(Client& c, const std::string& id, const std::string& out_dir, bool json) {
  namespace fs = std::filesystem;
  fs::create_directories(out_dir);
  grpc::ClientContext ctx;
  c.Prepare(&ctx, false);
  slq::v1::DownloadArtifactRequest req;
  req.set_artifact_id(id);
  auto reader = c.jobs().DownloadArtifact(&ctx, req);
  slq::v1::DownloadArtifactResponse chunk;
  std::ofstream out;
  std::unique_ptr<Sha256Hasher> hasher;
  std::string current;
  int64_t total = 0;
  int files = 0;
  while (reader->Read(&chunk)) {
    if (chunk.file_name() != current) {
      current = chunk.file_name();
      if (current.find("..") != std::string::npos || current.empty() || current[0] == '/') {
        std::cerr << "error: server sent an unsafe file name '" << current << "'\n";
        return kExitError;
      }
      fs::create_directories((fs::path(out_dir) / current).parent_path());
      out = std::ofstream(fs::path(out_dir) / current, std::ios::binary | std::ios::trunc);
      hasher = std::make_unique<Sha256Hasher>();
    }
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    hasher->Update(chunk.data());
    total += static_cast<int64_t>(chunk.data().size());
    if (chunk.last_chunk_of_file()) {
      out.close();
      std::string got = hasher->FinishHex();
      if (got != chunk.file_sha256()) {
        std::cerr << "error: sha256 mismatch for " << current << ": got " << got << ", server says "
                  << chunk.file_sha256() << "\n";
        return kExitError;
      }
      ++files;
      current.clear();
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return ReportRpcError(s, "download");
  if (json) {
    std::cout << absl::StrFormat("{\"artifact_id\":\"%s\",\"files\":%d,\"bytes\":%d,\"dir\":\"%s\"}\n", id, files,
                                 total, out_dir);
  } else {
    std::cout << absl::StrFormat("downloaded %s: %d files, %.1f MiB, sha256 verified -> %s\n", id, files,
                                 total / 1048576.0, out_dir);
  }
  return kExitOk;
}

void AddArtifacts(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  CLI::App* list = app.add_subcommand("artifacts", "List artifacts");
  list->callback([&g, selected] {
    *selected = [&g](Client& c) {
      slq::v1::ListArtifactsRequest req;
      slq::v1::ListArtifactsResponse resp;
      grpc::Status s = c.Call(c.jobs(), &JobStub::ListArtifacts, req, &resp);
      if (!s.ok()) return ReportRpcError(s, "artifacts");
      if (!g.json)
        std::cout << absl::StrFormat("%-16s %-21s %6s %-6s %9s  %s\n", "ARTIFACT", "JOB", "BITS", "MET", "MiB",
                                     "MODEL");
      for (const auto& a : resp.artifacts()) {
        if (g.json) {
          std::cout << ToJson(a) << std::endl;
        } else {
          std::cout << absl::StrFormat("%-16s %-21s %6.3f %-6s %9.2f  %s\n", a.id().substr(0, 16), a.job_id(),
                                       a.avg_bits(), a.target_met() ? "yes" : "NO", a.size_bytes() / 1048576.0,
                                       a.source_model());
        }
      }
      return int{kExitOk};
    };
  });

  auto id = std::make_shared<std::string>();
  CLI::App* get = app.add_subcommand("artifact", "Show an artifact and its fidelity certificate");
  get->add_option("id", *id, "Artifact id")->required();
  get->callback([&g, id, selected] {
    *selected = [&g, id](Client& c) {
      slq::v1::GetArtifactRequest req;
      req.set_artifact_id(*id);
      slq::v1::GetArtifactResponse resp;
      grpc::Status s = c.Call(c.jobs(), &JobStub::GetArtifact, req, &resp);
      if (!s.ok()) return ReportRpcError(s, "artifact");
      if (g.json) {
        std::cout << ToJson(resp) << std::endl;
      } else {
        std::cout << "artifact " << resp.artifact().id() << " (job " << resp.artifact().job_id() << ")\n";
        for (const auto& f : resp.artifact().files()) {
          std::cout << absl::StrFormat("  %-24s %12d bytes  sha256 %s\n", f.name(), f.size_bytes(), f.sha256());
        }
        PrintCertificate(resp.certificate());
      }
      return resp.certificate().target_met() ? int{kExitOk} : int{kExitTargetNotMet};
    };
  });

  auto did = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* dl = app.add_subcommand("download", "Download an artifact (sha256-checked)");
  dl->add_option("id", *did, "Artifact id")->required();
  dl->add_option("--out,-o", *out, "Output directory")->required();
  dl->callback(
      [&g, did, out, selected] { *selected = [&g, did, out](Client& c) { return Download(c, *did, *out, g.json); }; });
}

}  // namespace

void RegisterJobCommands(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  AddSubmit(app, g, selected);
  AddWatchGetCancel(app, g, selected);
  AddList(app, g, selected);
  AddArtifacts(app, g, selected);
  CLI::App* health = app.add_subcommand("health", "Check that the server is SERVING (grpc.health.v1)");
  health->callback([selected] {
    *selected = [](Client& c) {
      absl::Status s = c.CheckHealth();
      if (!s.ok()) {
        std::cerr << "error: " << s.message() << "\n";
        return int{kExitUnavailable};
      }
      std::cout << "SERVING\n";
      return int{kExitOk};
    };
  });
}

}  // namespace slq::client
