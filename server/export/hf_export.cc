#include "server/export/hf_export.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/half.h"
#include "server/common/status_macros.h"
#include "server/model/safetensors_writer.h"
#include "server/quant/artifact.h"

namespace slq::exporter {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string ModelType(const std::string& arch) {
  if (arch == "Qwen2ForCausalLM") return "qwen2";
  if (arch == "Qwen3ForCausalLM") return "qwen3";
  if (arch == "MistralForCausalLM") return "mistral";
  return "llama";
}

// Permutes the rows of w [rows, cols] (new row r = old row order[r]).
std::vector<float> PermuteRows(const std::vector<float>& w, int64_t cols, const std::vector<int64_t>& order) {
  std::vector<float> out(w.size());
  for (size_t r = 0; r < order.size(); ++r) {
    std::copy_n(w.begin() + order[r] * cols, cols, out.begin() + static_cast<int64_t>(r) * cols);
  }
  return out;
}

class TensorSink {
 public:
  explicit TensorSink(DType dtype) : dtype_(dtype) {}
  absl::Status Add(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
    if (dtype_ == DType::kF32) return w_.AddF32(name, std::move(shape), v);
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = dtype_ == DType::kF16 ? FloatToHalf(v[i]) : FloatToBf16(v[i]);
    return w_.Add(name, dtype_, std::move(shape),
                  std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2));
  }
  SafetensorsWriter& writer() { return w_; }

 private:
  DType dtype_;
  SafetensorsWriter w_;
};

}  // namespace

std::vector<int64_t> RopeRowOrder(int64_t heads, int64_t head_dim, bool inverse) {
  std::vector<int64_t> order(static_cast<size_t>(heads * head_dim));
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      const int64_t base = h * head_dim;
      if (!inverse) {  // hf[i] = inter[2i], hf[i + half] = inter[2i + 1]
        order[base + i] = base + 2 * i;
        order[base + i + half] = base + 2 * i + 1;
      } else {  // inter[2i] = hf[i], inter[2i + 1] = hf[i + half]
        order[base + 2 * i] = base + i;
        order[base + 2 * i + 1] = base + i + half;
      }
    }
  }
  return order;
}

json HfConfigJson(const ModelConfig& c, const std::string& torch_dtype) {
  const std::string arch = c.architecture == "llama2.c" || c.architecture.empty() ? "LlamaForCausalLM" : c.architecture;
  json j = {{"architectures", {arch}},
            {"model_type", ModelType(arch)},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_layers},
            {"num_attention_heads", c.num_heads},
            {"num_key_value_heads", c.num_kv_heads},
            {"head_dim", c.head_dim},
            {"vocab_size", c.vocab_size},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"torch_dtype", torch_dtype}};
  if (c.qkv_bias && ModelType(arch) == "llama") j["attention_bias"] = true;
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::kNone:
      break;
    case RopeScaling::Type::kLinear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
      break;
    case RopeScaling::Type::kLlama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling.factor},
                           {"low_freq_factor", c.rope_scaling.low_freq_factor},
                           {"high_freq_factor", c.rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
      break;
  }
  return j;
}

absl::Status PrepareOutDir(const std::string& out_dir) {
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_empty(out_dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--out ", out_dir, " exists and is not empty; give a new folder"));
  }
  fs::create_directories(out_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create --out ", out_dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status ExportHf(const std::string& artifact_dir, const std::string& out_dir, const HfExportOptions& o) {
  DType dtype;
  std::string torch_dtype;
  if (o.dtype == "bf16") {
    dtype = DType::kBF16;
    torch_dtype = "bfloat16";
  } else if (o.dtype == "fp16") {
    dtype = DType::kF16;
    torch_dtype = "float16";
  } else if (o.dtype == "fp32") {
    dtype = DType::kF32;
    torch_dtype = "float32";
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--dtype must be bf16, fp16 or fp32, got '", o.dtype, "'"));
  }
  SLQ_ASSIGN_OR_RETURN(quant::LoadedArtifact a, quant::LoadArtifact(artifact_dir));
  SLQ_RETURN_IF_ERROR(PrepareOutDir(out_dir));
  const Model& m = *a.model;
  ModelConfig c = m.config;
  const bool interleaved = c.rope_style == RopeStyle::kInterleaved;
  TensorSink sink(dtype);
  const int64_t H = c.hidden_size;
  SLQ_RETURN_IF_ERROR(sink.Add("model.embed_tokens.weight", {c.vocab_size, H}, m.embed));
  for (const ConstLinearSlot& s : m.LinearSlots()) {
    std::vector<float> w = s.op->WeightF32();
    if (interleaved && (absl::EndsWith(s.name, "q_proj") || absl::EndsWith(s.name, "k_proj"))) {
      const int64_t heads = absl::EndsWith(s.name, "q_proj") ? c.num_heads : c.num_kv_heads;
      w = PermuteRows(w, s.op->in_features(), RopeRowOrder(heads, c.head_dim, /*inverse=*/false));
    }
    if (s.name == "lm_head") {
      // A tied head that stayed a copy of the embeddings is not stored; a quantized one is.
      if (c.tie_word_embeddings && w == m.embed) continue;
      c.tie_word_embeddings = false;
    }
    SLQ_RETURN_IF_ERROR(sink.Add(s.name + ".weight", {s.op->out_features(), s.op->in_features()}, w));
  }
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LayerWeights& L = m.layers[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    SLQ_RETURN_IF_ERROR(sink.Add(p + "input_layernorm.weight", {H}, L.attn_norm));
    SLQ_RETURN_IF_ERROR(sink.Add(p + "post_attention_layernorm.weight", {H}, L.mlp_norm));
    auto bias = [&](const char* name, std::vector<float> b, int64_t heads) -> absl::Status {
      if (b.empty()) return absl::OkStatus();
      if (interleaved && heads > 0) {
        std::vector<int64_t> order = RopeRowOrder(heads, c.head_dim, false);
        b = PermuteRows(b, 1, order);
      }
      return sink.Add(p + "self_attn." + name + ".bias", {static_cast<int64_t>(b.size())}, b);
    };
    SLQ_RETURN_IF_ERROR(bias("q_proj", L.q_bias, c.num_heads));
    SLQ_RETURN_IF_ERROR(bias("k_proj", L.k_bias, c.num_kv_heads));
    SLQ_RETURN_IF_ERROR(bias("v_proj", L.v_bias, 0));
    if (!L.q_norm.empty()) SLQ_RETURN_IF_ERROR(sink.Add(p + "self_attn.q_norm.weight", {c.head_dim}, L.q_norm));
    if (!L.k_norm.empty()) SLQ_RETURN_IF_ERROR(sink.Add(p + "self_attn.k_norm.weight", {c.head_dim}, L.k_norm));
  }
  SLQ_RETURN_IF_ERROR(sink.Add("model.norm.weight", {H}, m.final_norm));
  sink.writer().SetMetadata("format", "pt");
  SLQ_RETURN_IF_ERROR(sink.writer().Write((fs::path(out_dir) / "model.safetensors").string()));

  c.rope_style = RopeStyle::kRotateHalf;
  json cfg = HfConfigJson(c, torch_dtype);
  // The base model's own config.json (the pipeline copies it into the artifact) keeps keys slq
  // does not model; only the dtype and the head tying change.
  const fs::path base_cfg = fs::path(artifact_dir) / "config.json";
  if (std::error_code ec; fs::exists(base_cfg, ec) && c.architecture != "llama2.c") {
    std::ifstream in(base_cfg);
    json base = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (base.is_object()) {
      base["torch_dtype"] = torch_dtype;
      base["tie_word_embeddings"] = c.tie_word_embeddings;
      cfg = std::move(base);
    }
  }
  {
    std::ofstream f(fs::path(out_dir) / "config.json");
    f << cfg.dump(2) << "\n";
    if (!f) return absl::InternalError(absl::StrCat("cannot write ", out_dir, "/config.json"));
  }
  // The tokenizer files the artifact carries, verbatim.
  for (const auto& entry : fs::directory_iterator(artifact_dir)) {
    const std::string name = entry.path().filename().string();
    if (name == quant::kManifestName || name == quant::kWeightsName || name == "config.json" ||
        !entry.is_regular_file()) {
      continue;
    }
    std::error_code ec;
    fs::copy_file(entry.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot copy ", name, " into ", out_dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace slq::exporter
