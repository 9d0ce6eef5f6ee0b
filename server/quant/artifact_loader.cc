// LoadArtifact: rebuilds a Model from a verified artifact directory (see artifact.h).
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/grids.h"
#include "kernels/scale_codes.h"
#include "server/common/status_macros.h"
#include "server/common/thread_pool.h"
#include "server/model/model_loader.h"
#include "server/model/safetensors.h"
#include "server/quant/artifact.h"
#include "server/quant/model_config_json.h"
#include "server/quant/packing.h"
#include "server/quant/quantized_linear.h"
#include "server/quant/rounding.h"

namespace slq::quant {
namespace {

using nlohmann::json;

absl::StatusOr<std::vector<float>> Floats(const SafetensorsFile& st, const std::string& name, int64_t numel) {
  const TensorView* t = st.Find(name);
  if (t == nullptr) return absl::DataLossError(absl::StrCat("artifact weights lack tensor ", name));
  if (t->numel() != numel) {
    return absl::DataLossError(absl::StrCat("tensor ", name, " has ", t->numel(), " values, expected ", numel));
  }
  return ToFloat32(*t);
}

template <typename T>
absl::StatusOr<std::vector<T>> Raw(const SafetensorsFile& st, const std::string& name, const std::string& dtype,
                                   int64_t numel) {
  const TensorView* t = st.Find(name);
  if (t == nullptr || DTypeName(t->dtype) != dtype || t->numel() != numel || DTypeSize(t->dtype) != sizeof(T)) {
    return absl::DataLossError(
        absl::StrCat("artifact tensor ", name, " missing or not ", dtype, " with ", numel, " elements"));
  }
  std::vector<T> out(static_cast<size_t>(numel));
  std::memcpy(out.data(), t->bytes.data(), t->bytes.size());
  return out;
}

// Whether a packed linear's entry declares grid ids ("grids": true, "grid": kGridTablesName);
// absent = uniform (artifacts written before grids). DataLoss on an unknown or inconsistent grid.
absl::StatusOr<bool> LinearHasGrids(const std::string& name, const json& info, int format_version) {
  const bool grids = info.value("grids", false);
  const std::string grid = info.value("grid", grids ? kGridTablesName : "uniform");
  if (grid != (grids ? kGridTablesName : "uniform")) {
    return absl::DataLossError(absl::StrCat("linear ", name, ": grid '", grid, "' with grids = ", grids,
                                            "; this build knows 'uniform' and '", kGridTablesName, "'"));
  }
  if (grids && format_version < kArtifactFormatVersionGrids) {
    return absl::DataLossError(absl::StrCat("linear ", name, " has grids in a format version ", format_version,
                                            " manifest (grids need version ", kArtifactFormatVersionGrids, ")"));
  }
  return grids;
}

// A packed linear's (scale, zero) per group into q->scales / q->zeros (rows, cols, bits, group
// size and symmetric already set): the fp16 tensors (.scales, and .zeros unless symmetric) or,
// for an s8 layer ("scales": "s8"), its scale codes, zero-points and base, expanded exactly as
// the quantizer expanded them (kernels::ExpandScaleCodes) and kept for a bit-identical re-save.
// DataLoss on a missing, mis-sized or inconsistent entry.
absl::Status LoadScales(const SafetensorsFile& st, const std::string& name, const json& info, int format_version,
                        QuantizedMatrix* q) {
  const int64_t gpr = kernels::GroupsPerRow(q->cols, q->group_size), n = q->rows * gpr;
  const std::string scales = info.value("scales", "fp16");
  if (scales == "fp16") {
    if (st.Find(name + ".scale_codes") != nullptr || st.Find(name + ".zero_points") != nullptr) {
      return absl::DataLossError(
          absl::StrCat("linear ", name, ": s8 scale tensors present but the manifest says ", "scales = fp16"));
    }
    SLQ_ASSIGN_OR_RETURN(q->scales, Raw<uint16_t>(st, name + ".scales", "F16", n));
    if (q->symmetric && st.Find(name + ".zeros") == nullptr) {
      // Symmetric: the zero is -s (2^(b-1) - 1), recomputed from the stored fp16 scale exactly
      // as the quantizer computed it (artifacts written before this rule carry .zeros).
      q->zeros.resize(q->scales.size());
      for (size_t i = 0; i < q->scales.size(); ++i) q->zeros[i] = SymmetricZero(q->scales[i], q->bits);
      return absl::OkStatus();
    }
    SLQ_ASSIGN_OR_RETURN(q->zeros, Raw<uint16_t>(st, name + ".zeros", "F16", n));
    return absl::OkStatus();
  }
  if (scales != "s8") {
    return absl::DataLossError(
        absl::StrCat("linear ", name, ": scales '", scales, "'; this build knows 'fp16' and 's8'"));
  }
  if (format_version < kArtifactFormatVersionS8) {
    return absl::DataLossError(absl::StrCat("linear ", name, " has s8 scales in a format version ", format_version,
                                            " manifest (s8 needs version ", kArtifactFormatVersionS8, ")"));
  }
  if (st.Find(name + ".scales") != nullptr || st.Find(name + ".zeros") != nullptr) {
    return absl::DataLossError(
        absl::StrCat("linear ", name, ": fp16 .scales/.zeros tensors present but the manifest says scales = s8"));
  }
  const json* base = info.contains("scale_base_bits") ? &info.at("scale_base_bits") : nullptr;
  if (base == nullptr || !base->is_number_integer() || base->get<int64_t>() < 0 ||
      base->get<int64_t>() > int64_t{UINT32_MAX}) {
    return absl::DataLossError(absl::StrCat("linear ", name, ": an s8 layer needs scale_base_bits, the fp32 bit ",
                                            "pattern of its scale base as an integer in [0, 2^32)"));
  }
  const uint32_t base_bits = static_cast<uint32_t>(base->get<int64_t>());
  std::memcpy(&q->scale_base, &base_bits, sizeof(base_bits));
  if (!std::isfinite(q->scale_base) || !(q->scale_base > 0.0f)) {
    return absl::DataLossError(absl::StrCat("linear ", name, ": s8 scale base ", q->scale_base, " (bits ", base_bits,
                                            ") is not a finite positive number"));
  }
  SLQ_ASSIGN_OR_RETURN(q->scale_codes, Raw<uint8_t>(st, name + ".scale_codes", "U8", n));
  if (q->symmetric) {
    if (st.Find(name + ".zero_points") != nullptr) {
      return absl::DataLossError(absl::StrCat("linear ", name, ": zero-points stored for a symmetric layer"));
    }
  } else {
    const int64_t zpr = kernels::WordsPerRow(gpr, q->bits);
    SLQ_ASSIGN_OR_RETURN(std::vector<uint32_t> words, Raw<uint32_t>(st, name + ".zero_points", "U32", q->rows * zpr));
    q->zero_points.resize(static_cast<size_t>(n));
    for (int64_t r = 0; r < q->rows; ++r) {
      const uint32_t* row = words.data() + r * zpr;
      // The bits past the last zero-point of a row are zero as written: anything else is damage.
      const int64_t used = gpr * q->bits;
      const uint32_t tail_mask = used % 32 == 0 ? 0u : ~((1u << (used % 32)) - 1u);
      if ((row[zpr - 1] & tail_mask) != 0) {
        return absl::DataLossError(
            absl::StrCat("linear ", name, ": zero-point row ", r, " has bits set past its last zero-point"));
      }
      UnpackRow(row, gpr, q->bits, q->zero_points.data() + r * gpr);
    }
  }
  q->scales.resize(static_cast<size_t>(n));
  q->zeros.resize(static_cast<size_t>(n));
  kernels::ExpandScaleCodes(q->scale_codes.data(), q->symmetric ? nullptr : q->zero_points.data(), n, q->scale_base,
                            q->scales.data(), q->zeros.data());
  if (q->symmetric) {
    for (int64_t i = 0; i < n; ++i) q->zeros[i] = SymmetricZero(q->scales[i], q->bits);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LinearOp>> LoadLinear(const SafetensorsFile& st, const std::string& name,
                                                     const json& info, int format_version) {
  const int64_t rows = info.at("rows").get<int64_t>(), cols = info.at("cols").get<int64_t>();
  // Bounded before any product of them (a corrupt manifest must not overflow the sizes).
  if (rows < 1 || cols < 1 || rows > (int64_t{1} << 24) || cols > (int64_t{1} << 24)) {
    return absl::DataLossError(absl::StrCat("linear ", name, ": bad shape ", rows, " x ", cols));
  }
  if (info.at("kind") == "dense") {
    SLQ_ASSIGN_OR_RETURN(std::vector<float> w, Floats(st, name + ".weight", rows * cols));
    return std::unique_ptr<LinearOp>(std::make_unique<DenseLinear>(rows, cols, std::move(w)));
  }
  QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.bits = info.at("bits").get<int>();
  q.group_size = info.at("group_size").get<int64_t>();
  q.symmetric = info.at("symmetric").get<bool>();
  q.mse_clip = info.at("mse_clip").get<bool>();
  // How the codes were chosen; artifacts written before roundings existed are RTN.
  const std::string quantizer = info.value("quantizer", "rtn");
  const absl::StatusOr<std::vector<Rounding>> rounding = ParseRoundings(quantizer);
  if (!rounding.ok() || rounding->size() != 1) {
    return absl::DataLossError(absl::StrCat("linear ", name, ": unknown quantizer '", quantizer, "'"));
  }
  q.rounding = (*rounding)[0];
  q.rotation.block = info.at("rotation_block").get<int64_t>();
  q.rotation.seed = info.at("rotation_seed").get<uint64_t>();
  if (q.bits < 2 || q.bits > 8 || q.group_size < 1 || rows < 1 || cols < 1) {
    return absl::DataLossError(absl::StrCat("linear ", name, ": bad bits ", q.bits, " / group ", q.group_size));
  }
  const int64_t wpr = kernels::WordsPerRow(cols, q.bits), gpr = kernels::GroupsPerRow(cols, q.group_size);
  SLQ_ASSIGN_OR_RETURN(q.codes, Raw<uint32_t>(st, name + ".codes", "U32", rows * wpr));
  SLQ_RETURN_IF_ERROR(LoadScales(st, name, info, format_version, &q));
  SLQ_ASSIGN_OR_RETURN(const bool grids, LinearHasGrids(name, info, format_version));
  if (grids) {
    if (q.symmetric) {
      return absl::DataLossError(absl::StrCat("linear ", name, ": grids on a symmetric layer (asymmetric only)"));
    }
    const int64_t ipr = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
    SLQ_ASSIGN_OR_RETURN(q.grid_ids, Raw<uint32_t>(st, name + ".grid_ids", "U32", rows * ipr));
  } else if (st.Find(name + ".grid_ids") != nullptr) {
    return absl::DataLossError(
        absl::StrCat("linear ", name, ": tensor ", name, ".grid_ids present but the manifest says grids = false"));
  }
  return std::unique_ptr<LinearOp>(std::make_unique<QuantizedLinear>(std::move(q)));
}

absl::Status FillPlain(const SafetensorsFile& st, Model& m) {
  const ModelConfig& c = m.config;
  SLQ_ASSIGN_OR_RETURN(m.embed, Floats(st, "model.embed_tokens.weight", c.vocab_size * c.hidden_size));
  SLQ_ASSIGN_OR_RETURN(m.final_norm, Floats(st, "model.norm.weight", c.hidden_size));
  m.layers.resize(static_cast<size_t>(c.num_layers));
  for (size_t i = 0; i < m.layers.size(); ++i) {
    LayerWeights& l = m.layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    SLQ_ASSIGN_OR_RETURN(l.attn_norm, Floats(st, p + "input_layernorm.weight", c.hidden_size));
    SLQ_ASSIGN_OR_RETURN(l.mlp_norm, Floats(st, p + "post_attention_layernorm.weight", c.hidden_size));
    if (c.qkv_bias) {
      SLQ_ASSIGN_OR_RETURN(l.q_bias, Floats(st, p + "self_attn.q_proj.bias", c.q_dim()));
      SLQ_ASSIGN_OR_RETURN(l.k_bias, Floats(st, p + "self_attn.k_proj.bias", c.kv_dim()));
      SLQ_ASSIGN_OR_RETURN(l.v_bias, Floats(st, p + "self_attn.v_proj.bias", c.kv_dim()));
    }
    if (c.qk_norm) {
      SLQ_ASSIGN_OR_RETURN(l.q_norm, Floats(st, p + "self_attn.q_norm.weight", c.head_dim));
      SLQ_ASSIGN_OR_RETURN(l.k_norm, Floats(st, p + "self_attn.k_norm.weight", c.head_dim));
    }
  }
  return absl::OkStatus();
}

// Every linear slot of m from the manifest's "linears". Packed linears (copies of their codes
// out of the mapping) are built in parallel, one slot per task; dense ones after them, one at a
// time (their fp16 -> fp32 conversion is itself parallel). May throw json::exception outside the
// parallel region only.
absl::Status LoadLinears(const SafetensorsFile& st, const std::string& dir, const json& linears, int format_version,
                         Model& m) {
  std::vector<LinearSlot> slots = m.LinearSlots();
  std::vector<size_t> packed, dense;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!linears.is_object() || !linears.contains(slots[i].name)) {
      return absl::DataLossError(absl::StrCat(dir, "/", kManifestName, ": no entry for linear ", slots[i].name));
    }
    const json& info = linears.at(slots[i].name);
    (info.is_object() && info.value("kind", "") == "dense" ? dense : packed).push_back(i);
  }
  std::vector<absl::Status> status(slots.size());
  WorkerPool::Default().Run(
      static_cast<int64_t>(packed.size()),
      [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const size_t i = packed[k];
          try {  // no exception may leave a pool task
            absl::StatusOr<std::unique_ptr<LinearOp>> op =
                LoadLinear(st, slots[i].name, linears.at(slots[i].name), format_version);
            if (op.ok()) {
              *slots[i].op = *std::move(op);
            } else {
              status[i] = op.status();
            }
          } catch (const json::exception& ex) {
            status[i] = absl::DataLossError(
                absl::StrCat(dir, "/", kManifestName, ": bad entry for linear ", slots[i].name, ": ", ex.what()));
          }
        }
      },
      static_cast<int64_t>(packed.size()));
  for (size_t i : dense) {
    SLQ_ASSIGN_OR_RETURN(*slots[i].op, LoadLinear(st, slots[i].name, linears.at(slots[i].name), format_version));
  }
  for (const absl::Status& s : status) SLQ_RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoadedArtifact> LoadArtifact(const std::string& dir) {
  LoadedArtifact out;
  SLQ_ASSIGN_OR_RETURN(out.manifest, ReadVerifiedManifest(dir));
  // The weights' checksum is verified above: a file that still does not parse is DataLoss.
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> weights = SafetensorsFile::Open(dir + "/" + kWeightsName);
  if (!weights.ok()) return absl::DataLossError(weights.status().message());
  const SafetensorsFile& st = **weights;
  auto m = std::make_unique<Model>();
  // Every manifest field is read inside the try: a corrupt manifest is DataLoss, never an
  // escaping json exception (found by fuzz/artifact_manifest_fuzz).
  try {
    SLQ_ASSIGN_OR_RETURN(m->config, ModelConfigFromJson(out.manifest.at("model_config")));
    SLQ_RETURN_IF_ERROR(FillPlain(st, *m));
    SLQ_RETURN_IF_ERROR(
        LoadLinears(st, dir, out.manifest.at("linears"), out.manifest.at("format_version").get<int>(), *m));
    m->format = kArtifactFormat;
    m->source_path = dir;
    for (auto& [name, f] : out.manifest.at("files").items()) {
      m->files.push_back({name, f.at("sha256").get<std::string>(), f.at("bytes").get<uint64_t>()});
    }
    m->identity_sha256 = out.manifest.at("files").at(kWeightsName).at("sha256").get<std::string>();
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(dir, "/", kManifestName, ": bad entry: ", e.what()));
  }
  // Linear shapes come from the manifest: they must agree with the model config, or the
  // forward pass would read out of bounds.
  if (absl::Status s = CheckModelShapes(*m); !s.ok()) {
    return absl::DataLossError(absl::StrCat(dir, "/", kManifestName, ": ", s.message()));
  }
  out.model = std::move(m);
  return out;
}

}  // namespace slq::quant
