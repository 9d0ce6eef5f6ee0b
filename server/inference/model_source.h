// ModelSource: turns a load request (a base model URI, an artifact path or an artifact id) into
// a served model: weights, tokenizer and the facts ListModels reports.
//
//   ModelSourceFn src = DefaultModelSource({.artifact_root = "/var/lib/slq/artifacts"});
//   SLQ_ASSIGN_OR_RETURN(LoadedModel m, src({.kind = ModelSpec::Kind::kModelUri,
//                                            .location = "file:///models/tinystories-656k"}));
//
// Base models: a local path or file:// URI of an HF folder or a llama2.c .bin (remote URIs are
// fetched by the job service, not here: InvalidArgument). Artifacts: quant::LoadArtifact (sha256
// verified) of <artifact_root>/<id> or the given path; avg bits and the certified EAR lower bound
// come from the artifact. The seam is a std::function so the server (or a test) can substitute.
// Thread safety: DefaultModelSource's function is reentrant.
#ifndef SLQ_SERVER_INFERENCE_MODEL_SOURCE_H_
#define SLQ_SERVER_INFERENCE_MODEL_SOURCE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/inference/text_codec.h"
#include "server/model/model.h"

namespace slq::inference {

struct ModelSpec {
  enum class Kind { kModelUri, kArtifactPath, kArtifactId };
  std::string name;  // served name; empty: derived from the location
  Kind kind = Kind::kModelUri;
  std::string location;     // URI, path or artifact id
  std::string shadow_base;  // artifacts: a loaded model's name or a base model path ("" = none)
  // Operator input (--serve-models): not confined to the allowed roots. Specs built from an
  // RPC are never trusted.
  bool trusted = false;
};

struct LoadedModel {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const TextCodec> codec;
  std::string source;  // the URI / artifact id as given
  bool quantized = false;
  double avg_bits = 32;  // weighted over quantized linears (artifacts); 32 for fp32 bases
  double certified_ear_lower = 0;
};

using ModelSourceFn = std::function<absl::StatusOr<LoadedModel>(const ModelSpec&)>;

struct ModelSourceOptions {
  std::string artifact_root;  // where artifact ids live: <root>/<id>
  // An untrusted spec's model_uri / artifact_path (and a shadow base given as a path) must
  // resolve inside one of these folders, and so must every file of a model folder (a symlink
  // inside an allowed folder that points outside is refused): PermissionDenied otherwise.
  // Empty: untrusted specs cannot load by path at all (FailedPrecondition naming
  // --allowed-roots). Artifact ids are always under artifact_root.
  std::vector<std::string> allowed_roots;
};
ModelSourceFn DefaultModelSource(const ModelSourceOptions& options);

// Loads a base model (path or file:// URI) and its tokenizer.
[[nodiscard]] absl::StatusOr<LoadedModel> LoadBaseModel(const std::string& uri);

// The name a model is served under when none is given: the last path component without
// extension ("/m/stories260K.bin" -> "stories260K").
std::string DefaultModelName(const std::string& location);

// Certificate helpers (certificates are opaque JSON, METHOD.md section 6): the "lo95" (or "lo") of the
// shallowest object named "ear" that has one; 0 if none.
double CertifiedEarLower(const nlohmann::json& certificate);
// Parameter-weighted bits/param of the model's quantized linears; 32 if none is quantized.
double AverageBits(Model& model);

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_MODEL_SOURCE_H_
