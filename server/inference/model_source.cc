#include "server/inference/model_source.h"

#include <deque>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/allowed_roots.h"
#include "server/common/status_macros.h"
#include "server/inference/tokenizer_codec.h"
#include "server/model/model_loader.h"
#if SLQ_HAVE_ARTIFACTS
#include "server/quant/artifact.h"
#endif

namespace slq::inference {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> LocalPath(const std::string& uri) {
  if (absl::StartsWith(uri, "file://")) return uri.substr(7);
  if (uri.find("://") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("model_uri '", uri,
                                                   "': only local paths and file:// URIs can be served; fetch remote "
                                                   "models (hf://, https://) with a job first"));
  }
  if (uri.empty()) return absl::InvalidArgumentError("model_uri is empty");
  return uri;
}

absl::StatusOr<LoadedModel> LoadArtifactDir(const std::string& dir, const std::string& source) {
#if !SLQ_HAVE_ARTIFACTS
  return absl::UnimplementedError(
      absl::StrCat("cannot load artifact ", source, ": this build has no artifact loader (slq_quant)"));
#else
  SLQ_ASSIGN_OR_RETURN(quant::LoadedArtifact a, quant::LoadArtifact(dir));
  LoadedModel out;
  out.source = source;
  out.quantized = true;
  out.avg_bits = AverageBits(*a.model);
  out.certified_ear_lower = CertifiedEarLower(a.manifest.value("certificate", nlohmann::json::object()));
  SLQ_ASSIGN_OR_RETURN(out.codec, LoadCodecFor(dir, a.model->config.vocab_size));
  out.model = std::move(a.model);
  return out;
#endif
}

// For an untrusted spec: OK only when `path` (symlinks resolved) and, for a folder, every entry
// in it resolve inside one of `roots` (server/common/allowed_roots.h: the same PermissionDenied
// whether or not the path exists outside them). A missing path inside the roots passes here and
// gets the loaders' own error.
absl::Status CheckAllowed(const std::string& path, const std::vector<std::string>& roots) {
  if (roots.empty()) {
    return absl::FailedPreconditionError(
        "loading a model by path is disabled: the server has no --allowed-roots; start it with "
        "--allowed-roots set to the folders models may be loaded from (or name an artifact_id)");
  }
  return AllowedRoots(roots).Confine(path, "model path", {.check_entries = true, .allow_missing = true}).status();
}

}  // namespace

std::string DefaultModelName(const std::string& location) {
  std::string p = location;
  if (absl::StartsWith(p, "file://")) p = p.substr(7);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return fs::path(p).stem().string();
}

absl::StatusOr<LoadedModel> LoadBaseModel(const std::string& uri) {
  SLQ_ASSIGN_OR_RETURN(std::string path, LocalPath(uri));
  SLQ_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, LoadModel(path, {.compute_sha256 = false}));
  LoadedModel out;
  out.source = uri;
  out.avg_bits = AverageBits(*model);
  SLQ_ASSIGN_OR_RETURN(out.codec, LoadCodecFor(path, model->config.vocab_size));
  out.model = std::move(model);
  return out;
}

ModelSourceFn DefaultModelSource(const ModelSourceOptions& options) {
  return [options](const ModelSpec& spec) -> absl::StatusOr<LoadedModel> {
    switch (spec.kind) {
      case ModelSpec::Kind::kModelUri: {
        SLQ_ASSIGN_OR_RETURN(std::string path, LocalPath(spec.location));
        if (!spec.trusted) SLQ_RETURN_IF_ERROR(CheckAllowed(path, options.allowed_roots));
        return LoadBaseModel(spec.location);
      }
      case ModelSpec::Kind::kArtifactPath:
        if (!spec.trusted) SLQ_RETURN_IF_ERROR(CheckAllowed(spec.location, options.allowed_roots));
        return LoadArtifactDir(spec.location, spec.location);
      case ModelSpec::Kind::kArtifactId: {
        if (options.artifact_root.empty()) {
          return absl::FailedPreconditionError(
              "artifact_id needs the server's artifact directory (--artifact-dir); none is set");
        }
        if (spec.location.empty() || spec.location.find('/') != std::string::npos ||
            spec.location.find("..") != std::string::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat("artifact_id '", spec.location, "' is not a plain artifact id"));
        }
        return LoadArtifactDir((fs::path(options.artifact_root) / spec.location).string(), spec.location);
      }
    }
    return absl::InvalidArgumentError("unknown model source kind");
  };
}

double CertifiedEarLower(const nlohmann::json& certificate) {
  std::deque<const nlohmann::json*> queue{&certificate};  // breadth-first: shallowest wins
  while (!queue.empty()) {
    const nlohmann::json* j = queue.front();
    queue.pop_front();
    if (!j->is_object()) continue;
    auto ear = j->find("ear");
    if (ear != j->end() && ear->is_object()) {
      // The engine's certificate writes the interval as {mean, lo95, hi95}.
      for (const char* key : {"lo95", "lo"}) {
        if (ear->contains(key) && (*ear)[key].is_number()) return (*ear)[key].get<double>();
      }
    }
    for (const auto& [key, value] : j->items()) queue.push_back(&value);
  }
  return 0;
}

double AverageBits(Model& model) {
  double bits = 0, params = 0;
  for (const LinearSlot& s : model.LinearSlots()) {
    const PackedLinear* q = (*s.op)->packed();
    if (!q) continue;
    const double n = static_cast<double>(q->view.cols) * static_cast<double>(q->view.rows);
    bits += n * q->bits_per_param;
    params += n;
  }
  return params > 0 ? bits / params : 32.0;
}

}  // namespace slq::inference
