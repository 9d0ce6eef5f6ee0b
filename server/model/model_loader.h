// Model loading: a small registry of per-format loaders.
//
//   SLQ_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, LoadModel("/models/docs-19m"));
//
// Formats (one file each): "hf-safetensors" (hf_loader.cc: a folder with config.json and
// model.safetensors or a sharded model.safetensors.index.json) and "llama2c" (llama2c_loader.cc:
// a llama2.c .bin checkpoint). LoadModel picks the first loader whose Accepts() is true; if none
// does it returns InvalidArgument listing the formats.
//
// Thread safety: loaders are stateless; LoadModel may be called concurrently.
#ifndef SLQ_SERVER_MODEL_MODEL_LOADER_H_
#define SLQ_SERVER_MODEL_MODEL_LOADER_H_

#include <memory>
#include <span>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "server/model/model.h"

namespace slq {

struct LoadOptions {
  bool compute_sha256 = true;  // hash every source file (model identity); costs one read
};

class ModelLoader {
 public:
  virtual ~ModelLoader() = default;
  virtual absl::string_view name() const = 0;
  // Cheap check (file names, magic) whether `path` looks like this format.
  virtual bool Accepts(const std::string& path) const = 0;
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& path,
                                                                    const LoadOptions& options) const = 0;
};

// The registered loaders, in the order LoadModel tries them.
const std::vector<std::unique_ptr<ModelLoader>>& ModelLoaders();

[[nodiscard]] absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path,
                                                               const LoadOptions& options = {});

// Loader factories (one per format file).
std::unique_ptr<ModelLoader> MakeHfSafetensorsLoader();
std::unique_ptr<ModelLoader> MakeLlama2cLoader();

// Helpers shared by loaders.
// Fills model->files (sha256 of root/name for each name) and model->identity_sha256.
[[nodiscard]] absl::Status ComputeFileDigests(const std::string& root, const std::vector<std::string>& names,
                                              Model* model);
// Checks that every layer has all its ops and the tensors have the config's sizes.
[[nodiscard]] absl::Status CheckModelShapes(const Model& model);

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_MODEL_LOADER_H_
