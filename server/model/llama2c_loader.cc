// Loader "llama2c": Karpathy's llama2.c checkpoint (run.c's legacy format).
//
// Layout: int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}
// (vocab_size < 0 means an unshared classifier follows), then fp32 arrays:
//   token_embedding  (vocab, dim)
//   rms_att          (layer, dim)
//   wq               (layer, n_heads * head_size, dim)     [out, in] per layer
//   wk, wv           (layer, n_kv_heads * head_size, dim)
//   wo               (layer, dim, n_heads * head_size)
//   rms_ffn          (layer, dim)
//   w1 (gate)        (layer, hidden_dim, dim)
//   w2 (down)        (layer, dim, hidden_dim)
//   w3 (up)          (layer, hidden_dim, dim)
//   rms_final        (dim)
//   freq_cis_real, freq_cis_imag  (seq_len, head_size / 2) each: unused, RoPE is recomputed
//   wcls             (vocab, dim) only if unshared
// llama2.c rotates interleaved pairs (2i, 2i+1), so the config says RopeStyle::kInterleaved;
// the weights are used as stored (no permutation). Constants from run.c: rope_theta 1e4,
// rms eps 1e-5, BOS 1, EOS 2 (run.c also stops on BOS, so 1 is listed as a stop id too).
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/model/model_loader.h"

namespace slq {
namespace {

constexpr int kHeaderInts = 7;

class Reader {
 public:
  Reader(const std::string& data, const std::string& path) : data_(data), path_(path) {}
  absl::StatusOr<std::vector<float>> Floats(int64_t n, absl::string_view what) {
    const uint64_t bytes = static_cast<uint64_t>(n) * 4;
    if (pos_ + bytes > data_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("llama2.c checkpoint '", path_, "' is truncated: reading ", what,
                                                     " needs ", pos_ + bytes, " bytes, file has ", data_.size()));
    }
    std::vector<float> v(static_cast<size_t>(n));
    if (n > 0) std::memcpy(v.data(), data_.data() + pos_, bytes);
    pos_ += bytes;
    return v;
  }
  void Skip(uint64_t bytes) { pos_ += bytes; }
  uint64_t pos() const { return pos_; }

 private:
  const std::string& data_;
  const std::string& path_;
  uint64_t pos_ = kHeaderInts * 4;
};

absl::StatusOr<ModelConfig> ParseHeader(const std::string& data, const std::string& path, bool* shared) {
  if (data.size() < kHeaderInts * 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("llama2.c checkpoint '", path, "' is shorter than its 28-byte header"));
  }
  int32_t h[kHeaderInts];
  std::memcpy(h, data.data(), sizeof(h));
  ModelConfig c;
  c.architecture = "llama2.c";
  c.hidden_size = h[0];
  c.intermediate_size = h[1];
  c.num_layers = h[2];
  c.num_heads = h[3];
  c.num_kv_heads = h[4];
  *shared = h[5] > 0;
  c.vocab_size = h[5] > 0 ? h[5] : -static_cast<int64_t>(h[5]);
  c.max_position_embeddings = h[6];
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.rope_style = RopeStyle::kInterleaved;
  c.tie_word_embeddings = *shared;
  c.bos_token_id = 1;
  c.eos_token_ids = {2, 1};
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("llama2.c checkpoint '", path, "': dim ", c.hidden_size,
                                                   " not divisible by n_heads ", c.num_heads));
  }
  SLQ_RETURN_IF_ERROR(c.Validate());
  // The header fixes the file size exactly; check it before allocating anything.
  const int64_t d = c.hidden_size, l = c.num_layers, f = c.intermediate_size;
  const int64_t floats = c.vocab_size * d * (*shared ? 1 : 2) + l * d * 2 + l * d * (c.q_dim() + 2 * c.kv_dim()) +
                         l * c.q_dim() * d + l * f * d * 3 + d + c.max_position_embeddings * c.head_dim;
  const uint64_t want = kHeaderInts * 4 + static_cast<uint64_t>(floats) * 4;
  if (want != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "llama2.c checkpoint '", path, "': header {dim ", d, ", hidden_dim ", f, ", n_layers ", l, ", n_heads ",
        c.num_heads, ", n_kv_heads ", c.num_kv_heads, ", vocab ", c.vocab_size, ", seq_len ", c.max_position_embeddings,
        "} implies ", want, " bytes but the file has ", data.size(), (want > data.size() ? " (truncated)" : "")));
  }
  return c;
}

// Reads one weight per layer for all layers (llama2.c stores each kind contiguously).
absl::Status ReadPerLayer(Reader& r, Model& m, int64_t out, int64_t in, absl::string_view what,
                          std::unique_ptr<LinearOp> LayerWeights::*slot) {
  for (auto& l : m.layers) {
    SLQ_ASSIGN_OR_RETURN(std::vector<float> w, r.Floats(out * in, what));
    l.*slot = std::make_unique<DenseLinear>(out, in, std::move(w));
  }
  return absl::OkStatus();
}

absl::Status ReadNorms(Reader& r, Model& m, std::vector<float> LayerWeights::*slot, absl::string_view what) {
  for (auto& l : m.layers) {
    SLQ_ASSIGN_OR_RETURN(l.*slot, r.Floats(m.config.hidden_size, what));
  }
  return absl::OkStatus();
}

class Llama2cLoader final : public ModelLoader {
 public:
  absl::string_view name() const override { return "llama2c"; }
  bool Accepts(const std::string& path) const override {
    return std::filesystem::is_regular_file(path) && absl::EndsWith(path, ".bin");
  }
  absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& path, const LoadOptions& options) const override {
    SLQ_ASSIGN_OR_RETURN(std::string data, ReadFile(path));
    bool shared = true;
    auto model = std::make_unique<Model>();
    SLQ_ASSIGN_OR_RETURN(model->config, ParseHeader(data, path, &shared));
    SLQ_RETURN_IF_ERROR(ReadWeights(data, path, shared, model.get()));
    SLQ_RETURN_IF_ERROR(CheckModelShapes(*model));
    model->format = std::string(name());
    model->source_path = path;
    if (options.compute_sha256) {
      std::filesystem::path p(path);
      SLQ_RETURN_IF_ERROR(ComputeFileDigests(p.parent_path().string(), {p.filename().string()}, model.get()));
    }
    return model;
  }

 private:
  static absl::Status ReadWeights(const std::string& data, const std::string& path, bool shared, Model* model) {
    Model& m = *model;
    const ModelConfig& c = m.config;
    const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
    m.layers.resize(c.num_layers);
    Reader r(data, path);
    SLQ_ASSIGN_OR_RETURN(m.embed, r.Floats(c.vocab_size * d, "token_embedding_table"));
    SLQ_RETURN_IF_ERROR(ReadNorms(r, m, &LayerWeights::attn_norm, "rms_att_weight"));
    SLQ_RETURN_IF_ERROR(ReadPerLayer(r, m, q, d, "wq", &LayerWeights::q_proj));
    SLQ_RETURN_IF_ERROR(ReadPerLayer(r, m, kv, d, "wk", &LayerWeights::k_proj));
    SLQ_RETURN_IF_ERROR(ReadPerLayer(r, m, kv, d, "wv", &LayerWeights::v_proj));
    SLQ_RETURN_IF_ERROR(ReadPerLayer(r, m, d, q, "wo", &LayerWeights::o_proj));
    SLQ_RETURN_IF_ERROR(ReadNorms(r, m, &LayerWeights::mlp_norm, "rms_ffn_weight"));
    SLQ_RETURN_IF_ERROR(ReadPerLayer(r, m, f, d, "w1", &LayerWeights::gate_proj));
    SLQ_RETURN_IF_ERROR(ReadPerLayer(r, m, d, f, "w2", &LayerWeights::down_proj));
    SLQ_RETURN_IF_ERROR(ReadPerLayer(r, m, f, d, "w3", &LayerWeights::up_proj));
    SLQ_ASSIGN_OR_RETURN(m.final_norm, r.Floats(d, "rms_final_weight"));
    r.Skip(static_cast<uint64_t>(c.max_position_embeddings) * c.head_dim * 4);  // freq_cis
    std::vector<float> head;
    if (shared) {
      head = m.embed;
    } else {
      SLQ_ASSIGN_OR_RETURN(head, r.Floats(c.vocab_size * d, "wcls"));
    }
    if (r.pos() != data.size()) {
      return absl::InvalidArgumentError(absl::StrCat("llama2.c checkpoint '", path, "': header implies ", r.pos(),
                                                     " bytes but the file has ", data.size()));
    }
    m.lm_head = std::make_unique<DenseLinear>(c.vocab_size, d, std::move(head));
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<ModelLoader> MakeLlama2cLoader() { return std::make_unique<Llama2cLoader>(); }

}  // namespace slq
