#include "server/quant/artifact.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "kernels/grids.h"
#include "server/common/file_util.h"
#include "server/common/half.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/model/safetensors_writer.h"
#include "server/quant/artifact_hash.h"
#include "server/quant/model_config_json.h"
#include "server/quant/packing.h"
#include "server/quant/quantized_linear.h"

namespace slq::quant {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A named fp32 vector of the model other than the linears (embeddings, norms, biases, qk norms).
struct PlainTensor {
  std::string name;
  std::vector<float>* data;
  std::vector<int64_t> shape;
};

std::vector<PlainTensor> PlainTensors(Model& m) {
  const ModelConfig& c = m.config;
  std::vector<PlainTensor> out = {{"model.embed_tokens.weight", &m.embed, {c.vocab_size, c.hidden_size}}};
  for (size_t i = 0; i < m.layers.size(); ++i) {
    LayerWeights& l = m.layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    out.push_back({p + "input_layernorm.weight", &l.attn_norm, {c.hidden_size}});
    out.push_back({p + "post_attention_layernorm.weight", &l.mlp_norm, {c.hidden_size}});
    if (c.qkv_bias) {
      out.push_back({p + "self_attn.q_proj.bias", &l.q_bias, {c.q_dim()}});
      out.push_back({p + "self_attn.k_proj.bias", &l.k_bias, {c.kv_dim()}});
      out.push_back({p + "self_attn.v_proj.bias", &l.v_bias, {c.kv_dim()}});
    }
    if (c.qk_norm) {
      out.push_back({p + "self_attn.q_norm.weight", &l.q_norm, {c.head_dim}});
      out.push_back({p + "self_attn.k_norm.weight", &l.k_norm, {c.head_dim}});
    }
  }
  out.push_back({"model.norm.weight", &m.final_norm, {c.hidden_size}});
  return out;
}

// Adds fp32 values as F16 when lossless, else F32.
absl::Status AddFloats(SafetensorsWriter& w, const std::string& name, std::vector<int64_t> shape,
                       const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  bool exact = true;
  for (size_t i = 0; i < v.size() && exact; ++i) {
    h[i] = FloatToHalf(v[i]);
    exact = HalfToFloat(h[i]) == v[i] || (std::isnan(v[i]) && std::isnan(HalfToFloat(h[i])));
  }
  if (exact) return w.Add(name, DType::kF16, std::move(shape), h.data(), h.size() * 2);
  return w.Add(name, DType::kF32, std::move(shape), v.data(), v.size() * 4);
}

absl::Status CopyInto(const std::string& src, const std::string& dst) {
  SLQ_ASSIGN_OR_RETURN(std::string data, ReadFile(src));
  return WriteFileAtomic(dst, data);
}

std::string TempDirFor(const std::string& dir) {
  static std::atomic<int> counter{0};
  return absl::StrCat(dir, ".tmp-", ::getpid(), "-", counter++);
}

// The manifest's grid fields of a packed linear: "grids" (bool) and "grid" (the level tables).
json GridFields(const kernels::PackedMatrixView& m) {
  const bool grids = m.grid_ids != nullptr;
  return {{"grids", grids}, {"grid", grids ? kGridTablesName : "uniform"}};
}

// The manifest's scale fields of a packed linear: "scales" ("fp16" or "s8") and, for s8, the
// base D as its exact fp32 bit pattern ("scale_base_bits").
json ScaleFields(const PackedLinear& q) {
  if (q.scale_codes == nullptr) return {{"scales", "fp16"}};
  uint32_t bits = 0;
  std::memcpy(&bits, &q.scale_base, sizeof(bits));
  return {{"scales", "s8"}, {"scale_base_bits", bits}};
}

// The s8 tensors of a packed linear: <slot>.scale_codes U8 [rows, groups] and, asymmetric,
// <slot>.zero_points U32 [rows, WordsPerRow(groups, bits)] (bit streams like the codes).
absl::Status AddScaleCodes(SafetensorsWriter& w, const std::string& slot, const PackedLinear& q) {
  const kernels::PackedMatrixView& m = q.view;
  const int64_t gpr = kernels::GroupsPerRow(m.cols, m.group_size);
  SLQ_RETURN_IF_ERROR(
      w.Add(slot + ".scale_codes", DType::kU8, {m.rows, gpr}, q.scale_codes, static_cast<size_t>(m.rows * gpr)));
  if (m.symmetric) {
    if (q.zero_points != nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("slot ", slot, ": a symmetric packed matrix carries zero-points (asymmetric only)"));
    }
    return absl::OkStatus();
  }
  if (q.zero_points == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("slot ", slot, ": an asymmetric s8 packed matrix has no zero-points"));
  }
  const int64_t zpr = kernels::WordsPerRow(gpr, m.bits);
  std::vector<uint32_t> packed(static_cast<size_t>(m.rows * zpr));
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint8_t* z = q.zero_points + r * gpr;
    for (int64_t k = 0; k < gpr; ++k) {
      if (z[k] >> m.bits) {
        return absl::FailedPreconditionError(absl::StrCat("slot ", slot, ": zero-point ", int{z[k]}, " of row ", r,
                                                          " does not fit in ", m.bits, " bits"));
      }
    }
    PackRow(z, gpr, m.bits, packed.data() + r * zpr);
  }
  return w.Add(slot + ".zero_points", DType::kU32, {m.rows, zpr}, packed.data(), packed.size() * 4);
}

// *version: the lowest format version that holds every linear (grids: 2, s8: 3).
absl::Status BuildWeights(Model& model, SafetensorsWriter& w, json& linears, int* version) {
  for (const PlainTensor& t : PlainTensors(model)) SLQ_RETURN_IF_ERROR(AddFloats(w, t.name, t.shape, *t.data));
  for (const LinearSlot& s : model.LinearSlots()) {
    const LinearOp* op = s.op->get();
    if (op == nullptr) return absl::FailedPreconditionError(absl::StrCat("slot ", s.name, " is empty"));
    if (const PackedLinear* q = op->packed()) {
      const kernels::PackedMatrixView& m = q->view;
      const int64_t wpr = kernels::WordsPerRow(m.cols, m.bits);
      const int64_t gpr = kernels::GroupsPerRow(m.cols, m.group_size);
      const size_t ncodes = static_cast<size_t>(m.rows * wpr), ngroups = static_cast<size_t>(m.rows * gpr);
      SLQ_RETURN_IF_ERROR(w.Add(s.name + ".codes", DType::kU32, {m.rows, wpr}, m.codes, ncodes * 4));
      if (q->scale_codes != nullptr) {  // s8: the fp16 scales/zeros are their expansion, not stored
        SLQ_RETURN_IF_ERROR(AddScaleCodes(w, s.name, *q));
        *version = std::max(*version, kArtifactFormatVersionS8);
      } else {
        SLQ_RETURN_IF_ERROR(w.Add(s.name + ".scales", DType::kF16, {m.rows, gpr}, m.scales, ngroups * 2));
        // Symmetric zeros are a function of the scale (SymmetricZero): not stored.
        if (!m.symmetric) {
          SLQ_RETURN_IF_ERROR(w.Add(s.name + ".zeros", DType::kF16, {m.rows, gpr}, m.zeros, ngroups * 2));
        }
      }
      if (m.grid_ids != nullptr) {
        if (m.symmetric) {
          return absl::FailedPreconditionError(
              absl::StrCat("slot ", s.name, ": a symmetric packed matrix carries grid ids (asymmetric only)"));
        }
        const int64_t ipr = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
        SLQ_RETURN_IF_ERROR(
            w.Add(s.name + ".grid_ids", DType::kU32, {m.rows, ipr}, m.grid_ids, static_cast<size_t>(m.rows * ipr) * 4));
        *version = std::max(*version, kArtifactFormatVersionGrids);
      }
      linears[s.name] = {{"kind", "packed"},
                         {"rows", m.rows},
                         {"cols", m.cols},
                         {"bits", m.bits},
                         {"group_size", m.group_size},
                         {"symmetric", m.symmetric},
                         {"mse_clip", q->mse_clip},
                         {"quantizer", q->quantizer},
                         {"rotation_block", q->rotation_block},
                         {"rotation_seed", q->rotation_seed},
                         {"bits_per_param", q->bits_per_param}};
      linears[s.name].update(GridFields(m));
      linears[s.name].update(ScaleFields(*q));
    } else if (const auto* d = dynamic_cast<const DenseLinear*>(op)) {
      SLQ_RETURN_IF_ERROR(AddFloats(w, s.name + ".weight", {d->out_features(), d->in_features()}, d->weight()));
      linears[s.name] = {{"kind", "dense"}, {"rows", d->out_features()}, {"cols", d->in_features()}};
    } else {
      return absl::UnimplementedError(
          absl::StrCat("slot ", s.name, ": op '", op->Describe(), "' cannot be stored (dense or packed only)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

json DescribeLinears(Model& model) {
  json out = json::object();
  for (const LinearSlot& s : model.LinearSlots()) {
    const LinearOp* op = s.op->get();
    json e = {{"layer", s.layer}, {"params", op->in_features() * op->out_features()}, {"op", op->Describe()}};
    if (const PackedLinear* q = op->packed()) {
      const kernels::PackedMatrixView& m = q->view;
      e.update({{"quantized", true},
                {"bits", m.bits},
                {"group_size", m.group_size},
                {"symmetric", m.symmetric},
                {"rotation", q->rotation_block > 0},
                {"mse_clip", q->mse_clip},
                {"quantizer", q->quantizer},
                {"bits_per_param", q->bits_per_param}});
      e.update(GridFields(m));
      e["scales"] = q->scale_codes != nullptr ? "s8" : "fp16";
    } else {
      e.update({{"quantized", false}, {"bits_per_param", 16}});
    }
    out[s.name] = e;
  }
  return out;
}

absl::Status WriteArtifact(const Model& model_in, const std::string& dir, const ArtifactWriteOptions& options) {
  Model& model = const_cast<Model&>(model_in);  // LinearSlots() is non-const; only read here
  if (fs::exists(dir)) return absl::AlreadyExistsError(absl::StrCat("artifact dir ", dir, " exists"));
  SafetensorsWriter w;
  w.SetMetadata("format", "slq-packed-v1");
  json linears = json::object();
  int version = kArtifactFormatVersionNoGrids;
  SLQ_RETURN_IF_ERROR(BuildWeights(model, w, linears, &version));
  const std::string tmp = TempDirFor(dir);
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tmp, ": ", ec.message()));
  auto cleanup = [&](absl::Status s) {
    fs::remove_all(tmp, ec);
    return s;
  };
  json files = json::object();
  auto add_file = [&](const std::string& name) -> absl::Status {
    SLQ_ASSIGN_OR_RETURN(std::string sha, Sha256File(tmp + "/" + name));
    SLQ_ASSIGN_OR_RETURN(uint64_t bytes, FileSize(tmp + "/" + name));
    // Per-chunk digests too, so a loader verifies a large file on all cores (artifact_hash.h).
    SLQ_ASSIGN_OR_RETURN(std::vector<std::string> chunks, Sha256Chunks(tmp + "/" + name, bytes, kHashChunkBytes));
    files[name] = {{"sha256", sha}, {"bytes", bytes}, {"chunk_bytes", kHashChunkBytes}, {"chunk_sha256", chunks}};
    return absl::OkStatus();
  };
  absl::Status s = WriteFileAtomic(tmp + "/" + kWeightsName, w.Serialize());
  if (s.ok()) s = add_file(kWeightsName);
  for (const std::string& src : options.extra_files) {
    const std::string base = fs::path(src).filename().string();
    if (!s.ok()) break;
    if (base == kWeightsName || base == kManifestName) {
      s = absl::InvalidArgumentError(absl::StrCat("extra file ", src, " clashes with ", base));
      break;
    }
    s = CopyInto(src, tmp + "/" + base);
    if (s.ok()) s = add_file(base);
  }
  if (!s.ok()) return cleanup(s);
  json manifest = options.extra_manifest;
  manifest.update({{"format", kArtifactFormat},
                   {"format_version", version},
                   {"packed_layout", "slq-packed-v1"},
                   {"model_config", ModelConfigToJson(model.config)},
                   {"linears", linears},
                   {"certificate", options.certificate},
                   {"files", files}});
  s = WriteFileAtomic(tmp + "/" + kManifestName, manifest.dump(2));
  if (s.ok()) s = FsyncPath(tmp);
  if (!s.ok()) return cleanup(s);
  if (std::rename(tmp.c_str(), dir.c_str()) != 0) {
    return cleanup(absl::InternalError(absl::StrCat("rename ", tmp, " -> ", dir, ": ", std::strerror(errno))));
  }
  const std::string parent = fs::path(dir).parent_path().string();
  return FsyncPath(parent.empty() ? "." : parent);
}

namespace {
// Format, version and every listed file's size and sha256. May throw json::exception.
absl::Status CheckManifest(const std::string& dir, const std::string& path, json& m) {
  const int version = m.value("format_version", -1);
  if (m.value("format", "") != kArtifactFormat || version < kArtifactFormatVersionNoGrids ||
      version > kArtifactFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": format '", m.value("format", ""), "' version ", version,
                                                      "; this build reads '", kArtifactFormat, "' versions ",
                                                      kArtifactFormatVersionNoGrids, " to ", kArtifactFormatVersion,
                                                      " (a newer version needs a newer slq; re-quantize or upgrade)"));
  }
  if (!m.contains("files") || !m["files"].is_object() || !m["files"].contains(kWeightsName)) {
    return absl::DataLossError(absl::StrCat(path, ": no file list with ", kWeightsName));
  }
  std::vector<DigestCheck> digests;
  for (auto& [name, f] : m["files"].items()) {
    if (!f.is_object()) return absl::DataLossError(absl::StrCat(path, ": file entry ", name, " is not an object"));
    const std::string fp = dir + "/" + name;
    SLQ_ASSIGN_OR_RETURN(uint64_t bytes, FileSize(fp));
    if (bytes != f.value("bytes", uint64_t{0})) {
      return absl::DataLossError(absl::StrCat("artifact file ", fp, " has ", bytes, " bytes, manifest says ",
                                              f.value("bytes", uint64_t{0}), " (truncated?)"));
    }
    DigestCheck d{.path = fp, .bytes = bytes, .sha256 = f.value("sha256", "")};
    if (f.contains("chunk_sha256")) {  // written since the chunk list exists; older: whole file
      d.chunk_bytes = f.at("chunk_bytes").get<uint64_t>();
      d.chunk_sha256 = f.at("chunk_sha256").get<std::vector<std::string>>();
      if (d.chunk_bytes == 0) {
        return absl::DataLossError(absl::StrCat(path, ": file entry ", name, " has chunk_bytes 0"));
      }
    }
    digests.push_back(std::move(d));
  }
  // Every file's chunks on the worker pool (sizes were checked above, before any hashing).
  SLQ_RETURN_IF_ERROR(VerifyDigests(digests));
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<json> ReadVerifiedManifest(const std::string& dir) {
  const std::string path = dir + "/" + kManifestName;
  SLQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  json m = json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": not valid JSON (corrupted or truncated)"));
  }
  try {  // json::value/items throw on mistyped fields: DataLoss, not an escaping exception
    SLQ_RETURN_IF_ERROR(CheckManifest(dir, path, m));
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": bad entry: ", e.what()));
  }
  return m;
}

}  // namespace slq::quant
