#include "server/export/gguf_export.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernels/packed_matrix.h"
#include "server/common/half.h"
#include "server/common/status_macros.h"
#include "server/export/gguf_tokenizer.h"
#include "server/export/hf_export.h"
#include "server/model/linear.h"
#include "server/model/model_loader.h"
#include "server/quant/artifact.h"

namespace slq::exporter {
namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr uint64_t kAlignment = 32;
enum GgufValueType : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

void PutU32(std::string* o, uint32_t v) { o->append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string* o, uint64_t v) { o->append(reinterpret_cast<const char*>(&v), 8); }
void PutF32(std::string* o, float v) { o->append(reinterpret_cast<const char*>(&v), 4); }
void PutU16(std::string* o, uint16_t v) { o->append(reinterpret_cast<const char*>(&v), 2); }
void PutStr(std::string* o, const std::string& s) {
  PutU64(o, s.size());
  o->append(s);
}

class GgufWriter {
 public:
  void KvU32(const std::string& k, uint32_t v) {
    PutStr(&kv_, k);
    PutU32(&kv_, kU32);
    PutU32(&kv_, v);
    ++n_kv_;
  }
  void KvF32(const std::string& k, float v) {
    PutStr(&kv_, k);
    PutU32(&kv_, kF32);
    PutF32(&kv_, v);
    ++n_kv_;
  }
  void KvStr(const std::string& k, const std::string& v) {
    PutStr(&kv_, k);
    PutU32(&kv_, kString);
    PutStr(&kv_, v);
    ++n_kv_;
  }
  void KvBool(const std::string& k, bool v) {
    PutStr(&kv_, k);
    PutU32(&kv_, kBool);
    kv_.push_back(v ? 1 : 0);
    ++n_kv_;
  }
  void KvStrings(const std::string& k, const std::vector<std::string>& v) {
    ArrayHead(k, kString, v.size());
    for (const std::string& s : v) PutStr(&kv_, s);
  }
  void KvF32s(const std::string& k, const std::vector<float>& v) {
    ArrayHead(k, kF32, v.size());
    for (float x : v) PutF32(&kv_, x);
  }
  void KvI32s(const std::string& k, const std::vector<int32_t>& v) {
    ArrayHead(k, kI32, v.size());
    for (int32_t x : v) PutU32(&kv_, static_cast<uint32_t>(x));
  }
  // ne: ggml order (ne[0] = the contiguous dimension).
  void Tensor(std::string name, std::vector<uint64_t> ne, GgmlType type, std::string data) {
    tensors_.push_back({std::move(name), std::move(ne), type, std::move(data)});
  }
  absl::Status Write(const std::string& path) const {
    std::string head = "GGUF";
    PutU32(&head, kGgufVersion);
    PutU64(&head, tensors_.size());
    PutU64(&head, n_kv_);
    head += kv_;
    uint64_t offset = 0;
    for (const T& t : tensors_) {
      PutStr(&head, t.name);
      PutU32(&head, static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) PutU64(&head, d);
      PutU32(&head, static_cast<uint32_t>(t.type));
      PutU64(&head, offset);
      offset += (t.data.size() + kAlignment - 1) / kAlignment * kAlignment;
    }
    head.resize((head.size() + kAlignment - 1) / kAlignment * kAlignment, '\0');
    const std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp));
      f.write(head.data(), static_cast<std::streamsize>(head.size()));
      for (const T& t : tensors_) {
        f.write(t.data.data(), static_cast<std::streamsize>(t.data.size()));
        const std::string pad((kAlignment - t.data.size() % kAlignment) % kAlignment, '\0');
        f.write(pad.data(), static_cast<std::streamsize>(pad.size()));
      }
      f.flush();
      if (!f) return absl::InternalError(absl::StrCat("writing ", tmp, " failed (disk full?)"));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
    }
    return absl::OkStatus();
  }

 private:
  void ArrayHead(const std::string& k, GgufValueType type, size_t n) {
    PutStr(&kv_, k);
    PutU32(&kv_, kArray);
    PutU32(&kv_, type);
    PutU64(&kv_, n);
    ++n_kv_;
  }
  struct T {
    std::string name;
    std::vector<uint64_t> ne;
    GgmlType type;
    std::string data;
  };
  std::string kv_;
  uint64_t n_kv_ = 0;
  std::vector<T> tensors_;
};

// The exact GGUF type of a quantized matrix, or why there is none.
absl::StatusOr<GgmlType> ExactType(const PackedLinear& p) {
  const kernels::PackedMatrixView& q = p.view;
  if (p.rotation_block > 0) return absl::InvalidArgumentError("it is Hadamard-rotated (no GGUF type rotates)");
  if (q.grid_ids != nullptr) {
    return absl::InvalidArgumentError(
        "its groups use non-uniform grids (Grid Games); GGUF's exact types have uniform levels only");
  }
  if (q.group_size != 32 || q.cols % 32 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("its group size is ", q.group_size, " over ", q.cols,
                                                   " columns; GGUF's exact types need groups of 32"));
  }
  if (q.bits == 4) return GgmlType::kQ4_1;
  if (q.bits == 5) return GgmlType::kQ5_1;
  if (q.bits == 8 && q.symmetric) {
    const int64_t groups = q.rows * (q.cols / 32);
    for (int64_t g = 0; g < groups; ++g) {
      if (HalfToFloat(q.zeros[g]) != -127.0f * HalfToFloat(q.scales[g])) {
        return absl::InvalidArgumentError(absl::StrCat("it is 8-bit symmetric but group ", g,
                                                       "'s fp16 zero is not exactly -127 * scale, so Q8_0 (x = d*q) "
                                                       "cannot hold it"));
      }
    }
    const int64_t wpr = kernels::WordsPerRow(q.cols, 8);
    for (int64_t r = 0; r < q.rows; ++r) {
      for (int64_t j = 0; j < q.cols; ++j) {
        if (kernels::PackedCode(q.codes + r * wpr, j, 8) > 254) {
          return absl::InvalidArgumentError("it is 8-bit symmetric with a code of 255 (q - 127 = 128 is outside int8)");
        }
      }
    }
    return GgmlType::kQ8_0;
  }
  return absl::InvalidArgumentError(absl::StrCat("it is ", q.bits, "-bit ", q.symmetric ? "symmetric" : "asymmetric",
                                                 "; exact GGUF types exist for 4- and 5-bit (Q4_1, Q5_1) and "
                                                 "symmetric 8-bit (Q8_0) with groups of 32"));
}

// Blocks of the rows of q in `order`, as llama.cpp lays them out.
std::string EncodeBlocks(const kernels::PackedMatrixView& q, GgmlType type, const std::vector<int64_t>& order) {
  const int64_t wpr = kernels::WordsPerRow(q.cols, q.bits), gpr = q.cols / 32;
  std::string out;
  uint32_t c[32];
  for (int64_t r : order) {
    const uint32_t* words = q.codes + r * wpr;
    for (int64_t b = 0; b < gpr; ++b) {
      for (int j = 0; j < 32; ++j) c[j] = kernels::PackedCode(words, b * 32 + j, q.bits);
      PutU16(&out, q.scales[r * gpr + b]);
      if (type == GgmlType::kQ8_0) {
        for (int j = 0; j < 32; ++j)
          out.push_back(static_cast<char>(static_cast<int8_t>(static_cast<int>(c[j]) - 127)));
        continue;
      }
      PutU16(&out, q.zeros[r * gpr + b]);
      if (type == GgmlType::kQ5_1) {
        uint32_t qh = 0;
        for (int j = 0; j < 32; ++j) qh |= ((c[j] >> 4) & 1u) << j;
        PutU32(&out, qh);
      }
      for (int j = 0; j < 16; ++j) out.push_back(static_cast<char>((c[j] & 15u) | ((c[j + 16] & 15u) << 4)));
    }
  }
  return out;
}

std::string Bytes(const std::vector<float>& v, GgmlType type) {
  std::string out;
  if (type == GgmlType::kF32) {
    out.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
    return out;
  }
  for (float x : v) PutU16(&out, FloatToHalf(x));
  return out;
}

GgmlType DenseType(const std::vector<float>& v) {
  for (float x : v) {
    if (HalfToFloat(FloatToHalf(x)) != x) return GgmlType::kF32;
  }
  return GgmlType::kF16;
}

// "model.layers.3.self_attn.q_proj" -> "blk.3.attn_q"; "lm_head" -> "output".
std::string GgufLinearName(const std::string& hf) {
  if (hf == "lm_head") return "output";
  static const std::pair<const char*, const char*> kMap[] = {
      {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"},  {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  const std::string prefix = "model.layers.";
  const size_t dot = hf.find('.', prefix.size());
  const std::string layer = hf.substr(prefix.size(), dot - prefix.size()), rest = hf.substr(dot + 1);
  for (const auto& [from, to] : kMap) {
    if (rest == from) return absl::StrCat("blk.", layer, ".", to);
  }
  return hf;
}

// The artifact's model and its source name, or (no manifest.json) the model folder itself.
struct Source {
  std::unique_ptr<Model> model;
  std::string name;
};
absl::StatusOr<Source> LoadSource(const std::string& dir) {
  if (std::filesystem::exists(std::filesystem::path(dir) / "manifest.json")) {
    SLQ_ASSIGN_OR_RETURN(quant::LoadedArtifact a, quant::LoadArtifact(dir));
    return Source{std::move(a.model), "slq export of " + std::string(a.manifest.value("source_model", dir))};
  }
  absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(dir);
  if (!m.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, " is neither an slq artifact (no manifest.json) nor a model: ", m.status().message()));
  }
  return Source{std::move(*m), "slq export of " + dir};
}

}  // namespace

absl::Status ExportGguf(const std::string& artifact_or_model_dir, const std::string& out_path,
                        const GgufExportOptions& options) {
  if (options.dtype != "exact" && options.dtype != "f32" && options.dtype != "f16") {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF dtype must be exact (the artifact's quantized types), f32 or f16 (dequantized), got '",
                     options.dtype, "'"));
  }
  const bool exact = options.dtype == "exact";
  // Dense tensors: exact -> F16 where every value is an fp16, else F32; or the dtype asked for.
  auto dense_type = [&](const std::vector<float>& v) {
    if (exact) return DenseType(v);
    return options.dtype == "f32" ? GgmlType::kF32 : GgmlType::kF16;
  };
  SLQ_ASSIGN_OR_RETURN(Source a, LoadSource(artifact_or_model_dir));
  const Model& m = *a.model;
  const ModelConfig& c = m.config;
  // llama.cpp's "llama" architecture ropes interleaved pairs: HF (rotate-half) q/k rows are
  // permuted into that order, as its converter does. Qwen2/3 rope rotate-half (NEOX) as HF.
  std::string arch = "llama";
  if (c.architecture == "Qwen2ForCausalLM") arch = "qwen2";
  if (c.architecture == "Qwen3ForCausalLM") arch = "qwen3";
  const bool permute_qk = arch == "llama" && c.rope_style == RopeStyle::kRotateHalf;
  const bool unpermute_qk = arch != "llama" && c.rope_style == RopeStyle::kInterleaved;
  if (unpermute_qk) {
    return absl::InvalidArgumentError("a Qwen artifact with interleaved RoPE is not exported to GGUF");
  }

  // First pass: refuse before writing anything.
  absl::StatusOr<GgufTokenizer> tok = GgufTokenizerFromDir(artifact_or_model_dir, c.vocab_size);
  if (!tok.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the tokenizer cannot be written as GGUF metadata: ",
                                                   tok.status().message(), ". Export it with --format hf instead."));
  }
  struct Planned {
    std::string name;
    const LinearOp* op;
    GgmlType type;
  };
  std::vector<Planned> linears;
  for (const ConstLinearSlot& s : m.LinearSlots()) {
    if (exact && s.name == "lm_head" && c.tie_word_embeddings) {
      if (auto* d = dynamic_cast<const DenseLinear*>(s.op); d && d->weight() == m.embed) continue;
    }
    if (const PackedLinear* q = s.op->packed(); q != nullptr && exact) {
      absl::StatusOr<GgmlType> t = ExactType(*q);
      if (!t.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("layer ", s.name, " (", s.op->Describe(),
                                                       ") has no exact GGUF type: ", t.status().message(),
                                                       ". Export it with --format hf instead."));
      }
      linears.push_back({s.name, s.op, *t});
    } else {
      linears.push_back({s.name, s.op, GgmlType::kF32});  // dense or dequantized: typed below
    }
  }

  GgufWriter w;
  w.KvStr("general.architecture", arch);
  w.KvStr("general.name", a.name);
  w.KvU32("general.alignment", static_cast<uint32_t>(kAlignment));
  w.KvU32(arch + ".context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.KvU32(arch + ".embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.KvU32(arch + ".block_count", static_cast<uint32_t>(c.num_layers));
  w.KvU32(arch + ".feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.KvU32(arch + ".attention.head_count", static_cast<uint32_t>(c.num_heads));
  w.KvU32(arch + ".attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.KvU32(arch + ".attention.key_length", static_cast<uint32_t>(c.head_dim));
  w.KvU32(arch + ".attention.value_length", static_cast<uint32_t>(c.head_dim));
  w.KvU32(arch + ".rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w.KvF32(arch + ".rope.freq_base", static_cast<float>(c.rope_theta));
  w.KvF32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.KvU32(arch + ".vocab_size", static_cast<uint32_t>(c.vocab_size));

  w.KvStr("tokenizer.ggml.model", tok->model);
  if (!tok->pre.empty()) w.KvStr("tokenizer.ggml.pre", tok->pre);
  w.KvStrings("tokenizer.ggml.tokens", tok->tokens);
  if (!tok->scores.empty()) w.KvF32s("tokenizer.ggml.scores", tok->scores);
  w.KvI32s("tokenizer.ggml.token_type", tok->token_types);
  if (!tok->merges.empty()) w.KvStrings("tokenizer.ggml.merges", tok->merges);
  auto id = [&](const char* key, const std::optional<int32_t>& v) {
    if (v) w.KvU32(absl::StrCat("tokenizer.ggml.", key), static_cast<uint32_t>(*v));
  };
  id("bos_token_id", tok->bos);
  id("eos_token_id", tok->eos);
  id("unknown_token_id", tok->unk);
  id("padding_token_id", tok->pad);
  if (tok->add_bos) w.KvBool("tokenizer.ggml.add_bos_token", *tok->add_bos);
  if (tok->add_eos) w.KvBool("tokenizer.ggml.add_eos_token", *tok->add_eos);
  if (tok->add_space_prefix) w.KvBool("tokenizer.ggml.add_space_prefix", *tok->add_space_prefix);
  if (!tok->chat_template.empty()) w.KvStr("tokenizer.chat_template", tok->chat_template);

  const uint64_t H = static_cast<uint64_t>(c.hidden_size);
  w.Tensor("token_embd.weight", {H, static_cast<uint64_t>(c.vocab_size)}, dense_type(m.embed),
           Bytes(m.embed, dense_type(m.embed)));
  for (const Planned& p : linears) {
    const int64_t rows = p.op->out_features(), cols = p.op->in_features();
    std::vector<int64_t> order(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) order[r] = r;
    const bool is_q = absl::EndsWith(p.name, "q_proj"), is_k = absl::EndsWith(p.name, "k_proj");
    if (permute_qk && (is_q || is_k)) order = RopeRowOrder(is_q ? c.num_heads : c.num_kv_heads, c.head_dim, true);
    const std::string name = GgufLinearName(p.name) + ".weight";
    const std::vector<uint64_t> ne = {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)};
    if (const PackedLinear* q = p.op->packed(); q != nullptr && exact) {
      w.Tensor(name, ne, p.type, EncodeBlocks(q->view, p.type, order));
    } else {
      std::vector<float> wt = p.op->WeightF32(), permuted(wt.size());
      for (int64_t r = 0; r < rows; ++r) std::copy_n(wt.begin() + order[r] * cols, cols, permuted.begin() + r * cols);
      const GgmlType t = dense_type(permuted);
      w.Tensor(name, ne, t, Bytes(permuted, t));
    }
  }
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LayerWeights& L = m.layers[l];
    const std::string p = absl::StrCat("blk.", l, ".");
    w.Tensor(p + "attn_norm.weight", {H}, GgmlType::kF32, Bytes(L.attn_norm, GgmlType::kF32));
    w.Tensor(p + "ffn_norm.weight", {H}, GgmlType::kF32, Bytes(L.mlp_norm, GgmlType::kF32));
    auto bias = [&](const char* name, const std::vector<float>& b, int64_t heads) {
      if (b.empty()) return;
      std::vector<float> v = b;
      if (permute_qk && heads > 0) {
        std::vector<int64_t> order = RopeRowOrder(heads, c.head_dim, true);
        for (size_t i = 0; i < order.size(); ++i) v[i] = b[order[i]];
      }
      w.Tensor(p + name + ".bias", {v.size()}, GgmlType::kF32, Bytes(v, GgmlType::kF32));
    };
    bias("attn_q", L.q_bias, c.num_heads);
    bias("attn_k", L.k_bias, c.num_kv_heads);
    bias("attn_v", L.v_bias, 0);
    if (!L.q_norm.empty())
      w.Tensor(p + "attn_q_norm.weight", {L.q_norm.size()}, GgmlType::kF32, Bytes(L.q_norm, GgmlType::kF32));
    if (!L.k_norm.empty())
      w.Tensor(p + "attn_k_norm.weight", {L.k_norm.size()}, GgmlType::kF32, Bytes(L.k_norm, GgmlType::kF32));
  }
  w.Tensor("output_norm.weight", {H}, GgmlType::kF32, Bytes(m.final_norm, GgmlType::kF32));
  return w.Write(out_path);
}

}  // namespace slq::exporter
