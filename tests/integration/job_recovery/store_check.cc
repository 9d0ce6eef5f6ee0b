// slq_store_check: offline consistency check of a job store and its artifact directory, run by
// the crash-recovery tests after the server is stopped (or killed).
//
//   slq_store_check --store sqlite:///tmp/x/jobs.db --artifact-dir /tmp/x/artifacts [--expect-terminal]
//
// Checks: JobStore::IntegrityCheck (SQLite PRAGMA integrity_check + row consistency); every
// SUCCEEDED job has an artifact row and its artifact directory re-hashes clean; every FAILED job
// has an error; no ended job has a PENDING/LEASED task and no SUCCEEDED job a task that is not
// DONE; every directory in objects/ is a
// complete artifact (manifest sha256 = its name, every file verifies); with --expect-terminal,
// no job is QUEUED or RUNNING. Prints one JSON line (jobs per state, artifacts, problems) and
// exits 0 when there is no problem, 1 otherwise, 2 on usage errors.
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/jobs/artifact_store.h"
#include "server/jobs/open_job_store.h"

int main(int argc, char** argv) {
  std::string store_spec, artifact_dir;
  bool expect_terminal = false;
  CLI::App app{"Offline consistency check of a slq job store and artifact directory"};
  app.add_option("--store", store_spec, "sqlite:///path/jobs.db or postgres://...")->required();
  app.add_option("--artifact-dir", artifact_dir, "Artifact store root (objects/, tmp/)");
  app.add_flag("--expect-terminal", expect_terminal, "Every job must have ended");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> problems;
  auto store = slq::OpenJobStore(store_spec);
  if (!store.ok()) {
    std::cerr << "cannot open " << store_spec << ": " << store.status() << "\n";
    return 2;
  }
  std::unique_ptr<slq::LocalArtifactStore> artifacts;
  if (!artifact_dir.empty()) {
    auto a = slq::LocalArtifactStore::Open(artifact_dir);
    if (!a.ok()) {
      std::cerr << "cannot open " << artifact_dir << ": " << a.status() << "\n";
      return 2;
    }
    artifacts = std::move(*a);
  }
  if (absl::Status s = (*store)->IntegrityCheck(); !s.ok()) problems.push_back(std::string(s.message()));

  std::map<std::string, int> per_state;
  slq::ListJobsOptions opts;
  opts.page_size = 1000;
  do {
    auto page = (*store)->ListJobs(opts);
    if (!page.ok()) {
      problems.push_back(absl::StrCat("ListJobs: ", page.status().message()));
      break;
    }
    for (const slq::Job& j : page->jobs) {
      per_state[slq::JobStateName(j.state)]++;
      if (expect_terminal && !slq::IsTerminal(j.state)) {
        problems.push_back(absl::StrCat(j.id, " is still ", slq::JobStateName(j.state)));
      }
      if (j.state == slq::JobState::kFailed && j.error.empty()) {
        problems.push_back(absl::StrCat(j.id, " is FAILED without an error message"));
      }
      if (!slq::IsTerminal(j.state)) continue;
      auto tasks = (*store)->ListTasks(j.id);
      if (!tasks.ok()) {
        problems.push_back(absl::StrCat(j.id, " ListTasks: ", tasks.status().message()));
        continue;
      }
      for (const slq::Task& t : *tasks) {  // an ended job has no runnable task left
        const bool runnable = t.state == slq::TaskState::kPending || t.state == slq::TaskState::kLeased;
        if (runnable || (j.state == slq::JobState::kSucceeded && t.state != slq::TaskState::kDone)) {
          problems.push_back(absl::StrCat(j.id, " is ", slq::JobStateName(j.state), " but task ", t.id, " (", t.kind,
                                          ") is ", slq::TaskStateName(t.state)));
        }
      }
      if (j.state != slq::JobState::kSucceeded) continue;
      auto a = (*store)->GetArtifact(j.artifact_id);
      if (!a.ok()) problems.push_back(absl::StrCat(j.id, " SUCCEEDED but artifact row: ", a.status().message()));
      if (artifacts) {
        if (absl::Status v = artifacts->Verify(j.artifact_id); !v.ok()) {
          problems.push_back(absl::StrCat(j.id, " artifact ", j.artifact_id, ": ", v.message()));
        }
      }
    }
    opts.page_token = page->next_page_token;
  } while (!opts.page_token.empty());

  int objects = 0;
  if (artifacts) {
    auto ids = artifacts->List();
    if (!ids.ok()) problems.push_back(std::string(ids.status().message()));
    for (const std::string& id : ids.ok() ? *ids : std::vector<std::string>{}) {
      ++objects;
      if (absl::Status v = artifacts->Verify(id); !v.ok()) {
        problems.push_back(absl::StrCat("objects/", id, " is not a complete artifact: ", v.message()));
      }
    }
  }
  nlohmann::json out = {{"jobs", per_state}, {"artifacts", objects}, {"problems", problems}};
  std::cout << out.dump() << std::endl;
  return problems.empty() ? 0 : 1;
}
