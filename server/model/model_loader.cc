#include "server/model/model_loader.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/common/thread_pool.h"

namespace slq {

const std::vector<std::unique_ptr<ModelLoader>>& ModelLoaders() {
  static const auto* loaders = [] {
    auto* v = new std::vector<std::unique_ptr<ModelLoader>>();
    v->push_back(MakeHfSafetensorsLoader());
    v->push_back(MakeLlama2cLoader());
    return v;
  }();
  return *loaders;
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path, const LoadOptions& options) {
  std::vector<absl::string_view> names;
  for (const auto& loader : ModelLoaders()) {
    if (loader->Accepts(path)) return loader->Load(path, options);
    names.push_back(loader->name());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", path, "' is not a model in a known format (tried: ", absl::StrJoin(names, ", "),
                   "; expected a folder with config.json + safetensors, or a llama2.c .bin)"));
}

absl::Status ComputeFileDigests(const std::string& root, const std::vector<std::string>& names, Model* model) {
  model->files.clear();
  // One thread per file (sharded checkpoints hash in parallel). Own threads, not the shared
  // WorkerPool: the HF loader hashes while the pool converts layers, and a busy pool would run
  // the files one after another.
  std::vector<FileDigest> files(names.size());
  std::vector<absl::Status> status(names.size());
  auto hash_one = [&](size_t i) {
    const std::string path = root.empty() ? names[i] : root + "/" + names[i];
    auto sha = Sha256File(path);
    auto bytes = FileSize(path);
    if (!sha.ok() || !bytes.ok()) {
      status[i] = !sha.ok() ? sha.status() : bytes.status();
      return;
    }
    files[i] = {names[i], *sha, *bytes};
  };
  const size_t nthreads = std::min<size_t>(names.size(), static_cast<size_t>(DefaultThreads()));
  std::vector<std::thread> threads;
  std::atomic<size_t> next{0};
  auto drain = [&] {
    for (size_t i = next++; i < names.size(); i = next++) hash_one(i);
  };
  for (size_t t = 1; t < nthreads; ++t) threads.emplace_back(drain);
  drain();
  for (std::thread& t : threads) t.join();
  for (const absl::Status& st : status) SLQ_RETURN_IF_ERROR(st);
  model->files = std::move(files);
  std::sort(model->files.begin(), model->files.end(),
            [](const FileDigest& a, const FileDigest& b) { return a.name < b.name; });
  std::string manifest;
  for (const FileDigest& f : model->files) absl::StrAppend(&manifest, f.name, " ", f.sha256, "\n");
  model->identity_sha256 = Sha256Hex(manifest);
  return absl::OkStatus();
}

namespace {
absl::Status CheckOp(const std::unique_ptr<LinearOp>& op, absl::string_view name, int64_t out, int64_t in) {
  if (!op) return absl::InvalidArgumentError(absl::StrCat("model has no ", name));
  if (op->out_features() != out || op->in_features() != in) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is [", op->out_features(), ", ", op->in_features(), "], expected [", out, ", ", in, "]"));
  }
  return absl::OkStatus();
}
absl::Status CheckVec(const std::vector<float>& v, absl::string_view name, int64_t n) {
  if (static_cast<int64_t>(v.size()) == n) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, " has ", v.size(), " values, expected ", n));
}
}  // namespace

absl::Status CheckModelShapes(const Model& m) {
  const ModelConfig& c = m.config;
  SLQ_RETURN_IF_ERROR(c.Validate());
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  SLQ_RETURN_IF_ERROR(CheckVec(m.embed, "embed_tokens", c.vocab_size * h));
  SLQ_RETURN_IF_ERROR(CheckVec(m.final_norm, "final norm", h));
  SLQ_RETURN_IF_ERROR(CheckOp(m.lm_head, "lm_head", c.vocab_size, h));
  if (static_cast<int64_t>(m.layers.size()) != c.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("model has ", m.layers.size(), " layers, config says ", c.num_layers));
  }
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerWeights& l = m.layers[i];
    const std::string p = absl::StrCat("layer ", i, " ");
    SLQ_RETURN_IF_ERROR(CheckVec(l.attn_norm, p + "input_layernorm", h));
    SLQ_RETURN_IF_ERROR(CheckVec(l.mlp_norm, p + "post_attention_layernorm", h));
    SLQ_RETURN_IF_ERROR(CheckOp(l.q_proj, p + "q_proj", q, h));
    SLQ_RETURN_IF_ERROR(CheckOp(l.k_proj, p + "k_proj", kv, h));
    SLQ_RETURN_IF_ERROR(CheckOp(l.v_proj, p + "v_proj", kv, h));
    SLQ_RETURN_IF_ERROR(CheckOp(l.o_proj, p + "o_proj", h, q));
    SLQ_RETURN_IF_ERROR(CheckOp(l.gate_proj, p + "gate_proj", f, h));
    SLQ_RETURN_IF_ERROR(CheckOp(l.up_proj, p + "up_proj", f, h));
    SLQ_RETURN_IF_ERROR(CheckOp(l.down_proj, p + "down_proj", h, f));
    if (c.qkv_bias) {
      SLQ_RETURN_IF_ERROR(CheckVec(l.q_bias, p + "q_proj.bias", q));
      SLQ_RETURN_IF_ERROR(CheckVec(l.k_bias, p + "k_proj.bias", kv));
      SLQ_RETURN_IF_ERROR(CheckVec(l.v_bias, p + "v_proj.bias", kv));
    }
    if (c.qk_norm) {
      SLQ_RETURN_IF_ERROR(CheckVec(l.q_norm, p + "q_norm", c.head_dim));
      SLQ_RETURN_IF_ERROR(CheckVec(l.k_norm, p + "k_norm", c.head_dim));
    }
  }
  return absl::OkStatus();
}

}  // namespace slq
