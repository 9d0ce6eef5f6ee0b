// Loader "hf-safetensors": a Hugging Face folder (config.json, optional generation_config.json,
// model.safetensors or model.safetensors.index.json + shards). Weights of any float dtype
// (F32/F16/BF16) are converted to fp32.
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/model_loader.h"
#include "server/model/safetensors.h"
#include "server/model/worker_pool.h"

namespace slq {
namespace {

class HfLoad {
 public:
  HfLoad(const TensorStore& store, Model* model) : store_(store), m_(*model) {}

  absl::StatusOr<std::vector<float>> Vec(const std::string& name, std::vector<int64_t> shape) {
    SLQ_ASSIGN_OR_RETURN(const TensorView* t, store_.Get(name));
    SLQ_RETURN_IF_ERROR(ExpectShape(*t, shape));
    return ToFloat32(*t);
  }
  absl::StatusOr<std::unique_ptr<LinearOp>> Linear(const std::string& name, int64_t out, int64_t in) {
    SLQ_ASSIGN_OR_RETURN(std::vector<float> w, Vec(name + ".weight", {out, in}));
    return std::unique_ptr<LinearOp>(new DenseLinear(out, in, std::move(w)));
  }

  absl::Status Layer(int i) {
    const ModelConfig& c = m_.config;
    const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
    const std::string p = absl::StrCat("model.layers.", i, ".");
    LayerWeights& l = m_.layers[i];
    SLQ_ASSIGN_OR_RETURN(l.attn_norm, Vec(p + "input_layernorm.weight", {h}));
    SLQ_ASSIGN_OR_RETURN(l.mlp_norm, Vec(p + "post_attention_layernorm.weight", {h}));
    SLQ_ASSIGN_OR_RETURN(l.q_proj, Linear(p + "self_attn.q_proj", q, h));
    SLQ_ASSIGN_OR_RETURN(l.k_proj, Linear(p + "self_attn.k_proj", kv, h));
    SLQ_ASSIGN_OR_RETURN(l.v_proj, Linear(p + "self_attn.v_proj", kv, h));
    SLQ_ASSIGN_OR_RETURN(l.o_proj, Linear(p + "self_attn.o_proj", h, q));
    SLQ_ASSIGN_OR_RETURN(l.gate_proj, Linear(p + "mlp.gate_proj", f, h));
    SLQ_ASSIGN_OR_RETURN(l.up_proj, Linear(p + "mlp.up_proj", f, h));
    SLQ_ASSIGN_OR_RETURN(l.down_proj, Linear(p + "mlp.down_proj", h, f));
    if (c.qkv_bias) {
      SLQ_ASSIGN_OR_RETURN(l.q_bias, Vec(p + "self_attn.q_proj.bias", {q}));
      SLQ_ASSIGN_OR_RETURN(l.k_bias, Vec(p + "self_attn.k_proj.bias", {kv}));
      SLQ_ASSIGN_OR_RETURN(l.v_bias, Vec(p + "self_attn.v_proj.bias", {kv}));
    }
    if (c.qk_norm) {
      SLQ_ASSIGN_OR_RETURN(l.q_norm, Vec(p + "self_attn.q_norm.weight", {c.head_dim}));
      SLQ_ASSIGN_OR_RETURN(l.k_norm, Vec(p + "self_attn.k_norm.weight", {c.head_dim}));
    }
    return absl::OkStatus();
  }

  // Embeddings and LM head. Tied checkpoints may store either of the two tensors.
  absl::Status EmbeddingsAndHead() {
    const ModelConfig& c = m_.config;
    const std::vector<int64_t> shape = {c.vocab_size, c.hidden_size};
    const bool has_embed = store_.Has("model.embed_tokens.weight");
    const bool has_head = store_.Has("lm_head.weight");
    if (c.tie_word_embeddings && !has_embed && has_head) {
      SLQ_ASSIGN_OR_RETURN(m_.embed, Vec("lm_head.weight", shape));
    } else {  // NotFound naming embed_tokens if it is missing
      SLQ_ASSIGN_OR_RETURN(m_.embed, Vec("model.embed_tokens.weight", shape));
    }
    std::vector<float> head;
    if (c.tie_word_embeddings) {
      head = m_.embed;  // the LM head is its own slot (the quantizer may replace it)
    } else {
      SLQ_ASSIGN_OR_RETURN(head, Vec("lm_head.weight", shape));
    }
    m_.lm_head = std::make_unique<DenseLinear>(c.vocab_size, c.hidden_size, std::move(head));
    SLQ_ASSIGN_OR_RETURN(m_.final_norm, Vec("model.norm.weight", {c.hidden_size}));
    return absl::OkStatus();
  }

 private:
  const TensorStore& store_;
  Model& m_;
};

class HfSafetensorsLoader final : public ModelLoader {
 public:
  absl::string_view name() const override { return "hf-safetensors"; }
  bool Accepts(const std::string& path) const override {
    return std::filesystem::is_directory(path) && std::filesystem::exists(std::filesystem::path(path) / "config.json");
  }
  absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& dir, const LoadOptions& options) const override {
    auto model = std::make_unique<Model>();
    SLQ_ASSIGN_OR_RETURN(model->config, LoadHfConfig(dir));
    SLQ_ASSIGN_OR_RETURN(auto store, TensorStore::OpenDir(dir));
    model->layers.resize(model->config.num_layers);
    // The shards' digests are computed while the weights convert (both read the same files;
    // the digests are one thread per file, the conversion the rest of the machine).
    std::future<absl::Status> digests;
    if (options.compute_sha256) {
      std::vector<std::string> names = {"config.json"};
      for (const std::string& p : store->FilePaths()) {
        names.push_back(std::filesystem::path(p).filename().string());
      }
      if (std::filesystem::exists(dir + "/model.safetensors.index.json") &&
          !std::filesystem::exists(dir + "/model.safetensors")) {
        names.push_back("model.safetensors.index.json");
      }
      digests = std::async(std::launch::async, [dir, names = std::move(names), m = model.get()] {
        return ComputeFileDigests(dir, names, m);
      });
    }
    // Layers (and, as the last item, the embeddings and head) load in parallel: each tensor's
    // fp32 buffer is then zero-filled and converted by its own thread. Converting one tensor at
    // a time left the allocation's first touch (the kernel's page clearing, about half the load
    // of an 8B checkpoint) on one thread.
    const int n_layers = model->config.num_layers;
    std::vector<absl::Status> status(static_cast<size_t>(n_layers) + 1);
    HfLoad load(*store, model.get());
    WorkerPool::Default().Run(
        n_layers + 1,
        [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            status[static_cast<size_t>(i)] = i < n_layers ? load.Layer(static_cast<int>(i)) : load.EmbeddingsAndHead();
          }
        },
        n_layers + 1);
    const absl::Status digested = digests.valid() ? digests.get() : absl::OkStatus();
    for (const absl::Status& st : status) SLQ_RETURN_IF_ERROR(st);
    SLQ_RETURN_IF_ERROR(digested);
    SLQ_RETURN_IF_ERROR(CheckModelShapes(*model));
    model->format = std::string(name());
    model->source_path = dir;
    return model;
  }
};

}  // namespace

std::unique_ptr<ModelLoader> MakeHfSafetensorsLoader() { return std::make_unique<HfSafetensorsLoader>(); }

}  // namespace slq
