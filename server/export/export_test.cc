#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <sstream>

#include "server/common/half.h"
#include "server/common/test_paths.h"
#include "server/export/gguf_export.h"
#include "server/export/gguf_tokenizer.h"
#include "server/export/hf_export.h"
#include "server/model/forward.h"
#include "server/model/model_loader.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/artifact.h"
#include "server/quant/quantized_linear.h"
#include "server/quant/quantizer.h"

namespace slq::exporter {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / ("slq_export_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

// tinystories-656k with its linears quantized to formats that have exact GGUF types: layer 0
// q/k/v/o 4-bit asymmetric g32, gate/up 5-bit asymmetric g32, down 4-bit symmetric g32;
// layer 1 all 5-bit g32 except down_proj: 8-bit symmetric g32 built with power-of-two scales,
// whose fp16 zero is exactly -127*s (Q8_0-exact); `odd` = layer 1 q_proj at 6 bits instead.
// LM head dense (tied).
quant::QuantizedMatrix Symmetric8WithExactZeros(int64_t rows, int64_t cols) {
  quant::QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.bits = 8;
  q.group_size = 32;
  q.symmetric = true;
  const int64_t wpr = kernels::WordsPerRow(cols, 8), gpr = cols / 32;
  q.codes.assign(static_cast<size_t>(rows * wpr), 0u);
  uint32_t state = 12345;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      state = state * 1664525u + 1013904223u;
      const uint32_t code = (state >> 24) % 255;  // 0..254
      q.codes[r * wpr + j / 4] |= code << (8 * (j % 4));
    }
    for (int64_t g = 0; g < gpr; ++g) {
      const uint16_t s = FloatToHalf(std::ldexp(1.0f, -static_cast<int>(9 + (r + g) % 4)));
      q.scales.push_back(s);
      q.zeros.push_back(quant::SymmetricZero(s, 8));
    }
  }
  return q;
}

// grids: layer 0's q_proj and layer 1's up_proj take per-group grids (Grid Games).
// scales: the scale format of every layer QuantizeMatrix rounds (kS8: compact scales).
std::string MakeArtifact(const std::string& name, bool odd = false, bool grids = false,
                         quant::ScaleFormat scales = quant::ScaleFormat::kFp16) {
  const std::string src = testing::ModelsDir() + "/tinystories-656k";
  auto model = LoadModel(src);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return "";
  for (LinearSlot& s : (*model)->LinearSlots()) {
    if (s.name == "lm_head") continue;
    auto* d = dynamic_cast<DenseLinear*>(s.op->get());
    EXPECT_NE(d, nullptr);
    quant::QuantConfig cfg;
    cfg.group_size = 32;
    cfg.bits = s.layer == 0 ? 4 : 5;
    if (s.layer == 0 && (s.name.ends_with("gate_proj") || s.name.ends_with("up_proj"))) cfg.bits = 5;
    if (s.layer == 0 && s.name.ends_with("down_proj")) cfg.symmetric = true;
    if (odd && s.layer == 1 && s.name.ends_with("q_proj")) cfg.bits = 6;
    cfg.grids =
        grids && ((s.layer == 0 && s.name.ends_with("q_proj")) || (s.layer == 1 && s.name.ends_with("up_proj")));
    cfg.scales = scales;
    if (s.layer == 1 && s.name.ends_with("down_proj")) {
      *s.op = std::make_unique<quant::QuantizedLinear>(Symmetric8WithExactZeros(d->out_features(), d->in_features()));
      continue;
    }
    auto q = quant::QuantizeMatrix(d->weight().data(), d->out_features(), d->in_features(), cfg);
    EXPECT_TRUE(q.ok()) << q.status();
    *s.op = std::make_unique<quant::QuantizedLinear>(*std::move(q));
  }
  const std::string dir = TempDir(name);
  quant::ArtifactWriteOptions o;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    o.extra_files.push_back(src + "/" + f);
  }
  absl::Status s = quant::WriteArtifact(**model, dir, o);
  EXPECT_TRUE(s.ok()) << s;
  return dir;
}

std::vector<int32_t> SomeTokens() { return {1, 400, 281, 1200, 35, 77, 1500, 9, 640, 2001, 13, 100}; }

void ExpectLogitsClose(const std::string& artifact, const std::string& dtype, double rel_tol) {
  const std::string out = TempDir("hf_" + dtype);
  ASSERT_TRUE(ExportHf(artifact, out, {.dtype = dtype}).ok());
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  }
  auto a = quant::LoadArtifact(artifact);
  ASSERT_TRUE(a.ok()) << a.status();
  auto hf = LoadModel(out);  // slq's own HF loader
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ((*hf)->config.num_layers, a->model->config.num_layers);
  auto la = TeacherForcedLogits(*a->model, SomeTokens());
  auto lh = TeacherForcedLogits(**hf, SomeTokens());
  ASSERT_TRUE(la.ok() && lh.ok());
  ASSERT_EQ(la->size(), lh->size());
  double max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < la->size(); ++i) {
    max_abs = std::max(max_abs, std::abs(static_cast<double>((*la)[i])));
    max_diff = std::max(max_diff, std::abs(static_cast<double>((*la)[i]) - (*lh)[i]));
  }
  EXPECT_LE(max_diff, rel_tol * max_abs) << dtype << ": max |logit diff| " << max_diff << " of max |logit| " << max_abs;
  std::cout << dtype << ": max |logit diff| " << max_diff << " (max |logit| " << max_abs << ")\n";
  fs::remove_all(out);
}

TEST(ExportHfTest, LogitsMatchTheArtifactWithinTheExportDtypesRounding) {
  const std::string artifact = MakeArtifact("hf");
  ASSERT_FALSE(artifact.empty());
  ExpectLogitsClose(artifact, "fp32", 1e-5);  // dequantized weights stored exactly
  ExpectLogitsClose(artifact, "fp16", 2e-3);  // 11-bit mantissa
  ExpectLogitsClose(artifact, "bf16", 2e-2);  // 8-bit mantissa
  EXPECT_EQ(ExportHf(artifact, TempDir("hf_bad"), {.dtype = "int4"}).code(), absl::StatusCode::kInvalidArgument);
  fs::remove_all(artifact);
}

// Grid layers (Grid Games) export as their grid-dequantized weights: the fp32 export's logits
// are the artifact's.
TEST(ExportHfTest, GridLayersExportTheirGridDequantization) {
  const std::string artifact = MakeArtifact("hf_grids", /*odd=*/false, /*grids=*/true);
  ASSERT_FALSE(artifact.empty());
  ExpectLogitsClose(artifact, "fp32", 1e-5);
  fs::remove_all(artifact);
}

TEST(ExportHfTest, RefusesANonEmptyOutputFolder) {
  const std::string artifact = MakeArtifact("hf_nonempty");
  const std::string out = TempDir("hf_nonempty_out");
  fs::create_directories(out);
  std::ofstream(fs::path(out) / "keep.txt") << "x";
  absl::Status s = ExportHf(artifact, out, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  fs::remove_all(out);
  fs::remove_all(artifact);
}

// ---- A small GGUF reader (test only) ---------------------------------------------------

struct GgufTensor {
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};
struct GgufFile {
  uint32_t version = 0;
  std::map<std::string, std::string> strings;
  std::map<std::string, double> numbers;
  std::map<std::string, std::vector<std::string>> string_arrays;
  std::map<std::string, std::vector<double>> number_arrays;
  std::map<std::string, GgufTensor> tensors;
  std::string data;  // the data section
};

GgufFile ReadGguf(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    EXPECT_LE(pos + n, all.size());
    std::memcpy(dst, all.data() + pos, n);
    pos += n;
  };
  auto u32 = [&] {
    uint32_t v;
    take(&v, 4);
    return v;
  };
  auto u64 = [&] {
    uint64_t v;
    take(&v, 8);
    return v;
  };
  auto str = [&] {
    uint64_t n = u64();
    std::string s = all.substr(pos, n);
    pos += n;
    return s;
  };
  GgufFile g;
  EXPECT_EQ(all.substr(0, 4), "GGUF");
  pos = 4;
  g.version = u32();
  const uint64_t n_tensors = u64(), n_kv = u64();
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = str();
    const uint32_t type = u32();
    if (type == 8) {
      g.strings[key] = str();
    } else if (type == 4) {
      g.numbers[key] = u32();
    } else if (type == 5) {
      int32_t v;
      take(&v, 4);
      g.numbers[key] = v;
    } else if (type == 6) {
      float v;
      take(&v, 4);
      g.numbers[key] = v;
    } else if (type == 7) {
      uint8_t v;
      take(&v, 1);
      g.numbers[key] = v;
    } else if (type == 9) {
      const uint32_t et = u32();
      const uint64_t n = u64();
      for (uint64_t e = 0; e < n; ++e) {
        if (et == 8) {
          g.string_arrays[key].push_back(str());
        } else if (et == 5 || et == 6) {
          int32_t iv;
          float fv;
          take(et == 5 ? static_cast<void*>(&iv) : static_cast<void*>(&fv), 4);
          g.number_arrays[key].push_back(et == 5 ? iv : fv);
        } else {
          ADD_FAILURE() << "unexpected array type " << et << " for " << key;
          return g;
        }
      }
    } else {
      ADD_FAILURE() << "unexpected metadata type " << type << " for " << key;
      return g;
    }
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string name = str();
    GgufTensor t;
    const uint32_t dims = u32();
    for (uint32_t d = 0; d < dims; ++d) t.ne.push_back(u64());
    t.type = u32();
    t.offset = u64();
    g.tensors[name] = t;
  }
  const uint64_t align =
      g.numbers.count("general.alignment") ? static_cast<uint64_t>(g.numbers["general.alignment"]) : 32;
  pos = (pos + align - 1) / align * align;
  g.data = all.substr(pos);
  return g;
}

uint16_t U16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Dequantized with llama.cpp's block definitions (ggml-quants: dequantize_row_q4_1/q5_1/q8_0).
std::vector<float> Dequant(const GgufFile& g, const GgufTensor& t) {
  uint64_t n = 1;
  for (uint64_t d : t.ne) n *= d;
  std::vector<float> out(n);
  const char* p = g.data.data() + t.offset;
  if (t.type == 0) {
    std::memcpy(out.data(), p, n * 4);
  } else if (t.type == 1) {
    for (uint64_t i = 0; i < n; ++i) out[i] = HalfToFloat(U16(p + 2 * i));
  } else if (t.type == 3 || t.type == 7) {  // Q4_1 (20 bytes) / Q5_1 (24 bytes)
    const size_t block = t.type == 3 ? 20 : 24;
    for (uint64_t b = 0; b < n / 32; ++b) {
      const char* x = p + b * block;
      const float d = HalfToFloat(U16(x)), m = HalfToFloat(U16(x + 2));
      uint32_t qh = 0;
      if (t.type == 7) std::memcpy(&qh, x + 4, 4);
      const uint8_t* qs = reinterpret_cast<const uint8_t*>(x + (t.type == 3 ? 4 : 8));
      for (int j = 0; j < 16; ++j) {
        int x0 = qs[j] & 0x0F, x1 = qs[j] >> 4;
        if (t.type == 7) {
          x0 |= ((qh >> (j + 0)) << 4) & 0x10;
          x1 |= ((qh >> (j + 12))) & 0x10;
        }
        out[b * 32 + j] = static_cast<float>(x0) * d + m;
        out[b * 32 + j + 16] = static_cast<float>(x1) * d + m;
      }
    }
  } else if (t.type == 8) {  // Q8_0 (34 bytes)
    for (uint64_t b = 0; b < n / 32; ++b) {
      const char* x = p + b * 34;
      const float d = HalfToFloat(U16(x));
      for (int j = 0; j < 32; ++j) out[b * 32 + j] = static_cast<float>(static_cast<int8_t>(x[2 + j])) * d;
    }
  } else {
    ADD_FAILURE() << "unexpected tensor type " << t.type;
  }
  return out;
}

TEST(ExportGgufTest, HeaderTensorTableAndExactWeights) {
  const std::string artifact = MakeArtifact("gguf");
  ASSERT_FALSE(artifact.empty());
  const std::string out = TempDir("gguf_out") + ".gguf";
  absl::Status s = ExportGguf(artifact, out);
  ASSERT_TRUE(s.ok()) << s;
  GgufFile g = ReadGguf(out);
  auto a = quant::LoadArtifact(artifact);
  ASSERT_TRUE(a.ok());
  const Model& m = *a->model;
  const ModelConfig& c = m.config;
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.strings["general.architecture"], "llama");
  EXPECT_EQ(g.numbers["llama.block_count"], c.num_layers);
  EXPECT_EQ(g.numbers["llama.embedding_length"], c.hidden_size);
  EXPECT_EQ(g.numbers["llama.attention.head_count_kv"], c.num_kv_heads);
  // Tokenizer metadata, parsed back: tinystories-656k is SentencePiece-style (byte-fallback BPE).
  EXPECT_EQ(g.strings["tokenizer.ggml.model"], "llama");
  EXPECT_EQ(g.strings.count("tokenizer.ggml.pre"), 0u);
  const std::vector<std::string>& toks = g.string_arrays["tokenizer.ggml.tokens"];
  ASSERT_EQ(toks.size(), static_cast<size_t>(c.vocab_size));
  EXPECT_EQ(toks[0], "<unk>");
  EXPECT_EQ(toks[1], "<|start_story|>");
  EXPECT_EQ(toks[2], "<|end_story|>");
  EXPECT_EQ(g.number_arrays["tokenizer.ggml.scores"].size(), toks.size());
  ASSERT_EQ(g.number_arrays["tokenizer.ggml.token_type"].size(), toks.size());
  EXPECT_EQ(g.number_arrays["tokenizer.ggml.token_type"][0], kUnknown);
  EXPECT_EQ(g.number_arrays["tokenizer.ggml.token_type"][1], kControl);
  EXPECT_EQ(g.numbers["tokenizer.ggml.bos_token_id"], 1);
  EXPECT_EQ(g.numbers["tokenizer.ggml.eos_token_id"], 2);
  EXPECT_EQ(g.numbers["tokenizer.ggml.unknown_token_id"], 0);
  EXPECT_EQ(g.numbers["tokenizer.ggml.add_bos_token"], 1);
  EXPECT_EQ(g.numbers["tokenizer.ggml.add_eos_token"], 0);
  EXPECT_EQ(g.numbers["tokenizer.ggml.add_space_prefix"], 1);
  EXPECT_EQ(g.string_arrays.count("tokenizer.ggml.merges"), 0u);
  // Embeddings, 2 norms per layer, the final norm, 7 linears per layer; the tied head is not stored.
  EXPECT_EQ(g.tensors.size(), 1 + 2 * c.num_layers + 1 + 7 * c.num_layers);
  EXPECT_EQ(g.tensors.count("output.weight"), 0u);
  ASSERT_EQ(g.tensors.count("token_embd.weight"), 1u);
  EXPECT_EQ(Dequant(g, g.tensors["token_embd.weight"]), m.embed);
  EXPECT_EQ(Dequant(g, g.tensors["blk.1.ffn_norm.weight"]), m.layers[1].mlp_norm);

  const std::map<std::string, std::string> names = {{"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
                                                    {"self_attn.v_proj", "attn_v"}, {"self_attn.o_proj", "attn_output"},
                                                    {"mlp.gate_proj", "ffn_gate"},  {"mlp.up_proj", "ffn_up"},
                                                    {"mlp.down_proj", "ffn_down"}};
  int checked = 0;
  for (const ConstLinearSlot& slot : m.LinearSlots()) {
    if (slot.name == "lm_head") continue;
    const std::string rest = slot.name.substr(slot.name.find('.', 13) + 1);
    const std::string gname = "blk." + std::to_string(slot.layer) + "." + names.at(rest) + ".weight";
    ASSERT_EQ(g.tensors.count(gname), 1u) << gname;
    const GgufTensor& t = g.tensors[gname];
    ASSERT_NE(slot.op->packed(), nullptr) << gname;
    const kernels::PackedMatrixView& q = slot.op->packed()->view;
    EXPECT_EQ(t.ne, (std::vector<uint64_t>{static_cast<uint64_t>(q.cols), static_cast<uint64_t>(q.rows)})) << gname;
    EXPECT_EQ(t.type, q.bits == 4 ? 3u : q.bits == 5 ? 7u : 8u) << gname;  // Q4_1, Q5_1, Q8_0
    std::vector<float> want = slot.op->WeightF32();
    if (rest == "self_attn.q_proj" || rest == "self_attn.k_proj") {  // llama.cpp's interleaved RoPE order
      std::vector<int64_t> order =
          RopeRowOrder(rest == "self_attn.q_proj" ? c.num_heads : c.num_kv_heads, c.head_dim, true);
      std::vector<float> p(want.size());
      for (size_t r = 0; r < order.size(); ++r)
        std::copy_n(want.begin() + order[r] * q.cols, q.cols, p.begin() + r * q.cols);
      want = p;
    }
    EXPECT_EQ(Dequant(g, t), want) << gname << " does not dequantize to the artifact's weights exactly";
    ++checked;
  }
  EXPECT_EQ(checked, 7 * c.num_layers);
  EXPECT_EQ(g.tensors["blk.1.ffn_down.weight"].type, 8u);  // the Q8_0 path was exercised
  fs::remove(out);
  fs::remove_all(artifact);
}

TEST(ExportGgufTest, RefusesNamingTheFirstLayerWithoutAnExactType) {
  const std::string artifact = MakeArtifact("gguf_odd", /*odd=*/true);
  const std::string out = TempDir("gguf_odd_out") + ".gguf";
  absl::Status s = ExportGguf(artifact, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("layer model.layers.1.self_attn.q_proj"), std::string::npos) << s;
  EXPECT_NE(s.message().find("6-bit"), std::string::npos) << s;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(artifact);
}

// `w` ([rows, cols] of HF linear `name`) with q/k rows in llama.cpp's interleaved RoPE order.
std::vector<float> InGgufRowOrder(const std::string& name, std::vector<float> w, const ModelConfig& c) {
  const bool q = name.ends_with("q_proj"), k = name.ends_with("k_proj");
  if (!q && !k) return w;
  const std::vector<int64_t> order = RopeRowOrder(q ? c.num_heads : c.num_kv_heads, c.head_dim, true);
  const size_t cols = w.size() / order.size();
  std::vector<float> p(w.size());
  for (size_t r = 0; r < order.size(); ++r) std::copy_n(w.begin() + order[r] * cols, cols, p.begin() + r * cols);
  return p;
}

std::string GgufName(const std::string& hf, int layer) {
  if (hf == "lm_head") return "output.weight";
  static const std::map<std::string, std::string> kNames = {
      {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"},  {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  return "blk." + std::to_string(layer) + "." + kNames.at(hf.substr(hf.find('.', 13) + 1)) + ".weight";
}

// Every linear of `m` (the tied LM head included, as "output") is in g as `type` (0 = F32: the
// exact values; 1 = F16: each value rounded to fp16), in llama.cpp's row order.
void ExpectDequantizedLinears(const GgufFile& g, const Model& m, uint32_t type) {
  int checked = 0;
  for (const ConstLinearSlot& slot : m.LinearSlots()) {
    const std::string name = GgufName(slot.name, slot.layer);
    ASSERT_EQ(g.tensors.count(name), 1u) << name;
    const GgufTensor& t = g.tensors.at(name);
    EXPECT_EQ(t.type, type) << name;
    EXPECT_EQ(t.ne, (std::vector<uint64_t>{static_cast<uint64_t>(slot.op->in_features()),
                                           static_cast<uint64_t>(slot.op->out_features())}))
        << name;
    std::vector<float> want = InGgufRowOrder(slot.name, slot.op->WeightF32(), m.config);
    if (type == 1) {
      for (float& x : want) x = HalfToFloat(FloatToHalf(x));
    }
    EXPECT_EQ(Dequant(g, t), want) << name << " is not the artifact's dequantized weight";
    ++checked;
  }
  EXPECT_EQ(checked, 7 * m.config.num_layers + 1);
}

// --dtype f32: every quantized linear (6-bit too, which has no exact GGUF type) is written as its
// dequantized fp32 matrix, bit for bit; the tied LM head is written as its own tensor.
TEST(ExportGgufTest, DequantizedF32IsTheArtifactsDequantizationExactly) {
  const std::string artifact = MakeArtifact("gguf_deq", /*odd=*/true);
  ASSERT_FALSE(artifact.empty());
  auto a = quant::LoadArtifact(artifact);
  ASSERT_TRUE(a.ok()) << a.status();
  const Model& m = *a->model;
  ASSERT_TRUE(m.config.tie_word_embeddings);
  for (const char* dtype : {"f32", "f16"}) {
    const std::string out = TempDir(std::string("gguf_deq_") + dtype) + ".gguf";
    absl::Status s = ExportGguf(artifact, out, {.dtype = dtype});
    ASSERT_TRUE(s.ok()) << s;
    GgufFile g = ReadGguf(out);
    const uint32_t type = std::string(dtype) == "f32" ? 0u : 1u;
    EXPECT_EQ(g.tensors.size(), 1 + 2 * m.config.num_layers + 1 + 7 * m.config.num_layers + 1);
    ExpectDequantizedLinears(g, m, type);
    std::vector<float> embed = m.embed;
    if (type == 1) {
      for (float& x : embed) x = HalfToFloat(FloatToHalf(x));
    }
    EXPECT_EQ(g.tensors["token_embd.weight"].type, type);
    EXPECT_EQ(Dequant(g, g.tensors["token_embd.weight"]), embed);
    EXPECT_EQ(g.strings["tokenizer.ggml.model"], "llama");
    fs::remove(out);
  }
  fs::remove_all(artifact);
}

// Grid layers (Grid Games): the exact GGUF export refuses them (its types are uniform), naming the
// layer; the dequantized export writes their grid-dequantized weights bit for bit.
TEST(ExportGgufTest, GridLayersExportDequantizedOnTheirLevels) {
  const std::string artifact = MakeArtifact("gguf_grids", /*odd=*/false, /*grids=*/true);
  ASSERT_FALSE(artifact.empty());
  const std::string exact_out = TempDir("gguf_grids_exact") + ".gguf";
  absl::Status exact = ExportGguf(artifact, exact_out);
  EXPECT_EQ(exact.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(exact.message().find("layer model.layers.0.self_attn.q_proj"), std::string::npos) << exact;
  EXPECT_NE(exact.message().find("grids"), std::string::npos) << exact;
  EXPECT_FALSE(fs::exists(exact_out));
  auto a = quant::LoadArtifact(artifact);
  ASSERT_TRUE(a.ok()) << a.status();
  const Model& m = *a->model;
  const std::string out = TempDir("gguf_grids_f32") + ".gguf";
  absl::Status s = ExportGguf(artifact, out, {.dtype = "f32"});
  ASSERT_TRUE(s.ok()) << s;
  GgufFile g = ReadGguf(out);
  ExpectDequantizedLinears(g, m, 0);
  int grid_layers = 0;
  for (const ConstLinearSlot& slot : m.LinearSlots()) {
    const PackedLinear* p = slot.op->packed();
    if (p == nullptr || p->view.grid_ids == nullptr) continue;
    ++grid_layers;
    // Read as uniform codes, the same layer differs: the export used the grids' levels.
    const auto* ql = dynamic_cast<const quant::QuantizedLinear*>(slot.op);
    ASSERT_NE(ql, nullptr);
    quant::QuantizedMatrix uniform = ql->matrix();
    uniform.grid_ids.clear();
    const std::vector<float> as_uniform = InGgufRowOrder(slot.name, quant::DequantizeOriginalBasis(uniform), m.config);
    EXPECT_NE(Dequant(g, g.tensors.at(GgufName(slot.name, slot.layer))), as_uniform) << slot.name;
  }
  EXPECT_EQ(grid_layers, 2);
  fs::remove(out);
  fs::remove_all(artifact);
}

// S8 layers (compact scales) are, once loaded, ordinary fp16-(s, m) layers: the exact export
// writes them as Q4_1 / Q5_1 (group 32) dequantizing to the artifact's weights bit for bit, the
// f32 / f16 exports write their dequantized weights, and the HF fp32 export's logits are the
// artifact's.
TEST(ExportGgufTest, S8LayersExportExactlyAndDequantized) {
  const std::string artifact = MakeArtifact("gguf_s8", /*odd=*/false, /*grids=*/false, quant::ScaleFormat::kS8);
  ASSERT_FALSE(artifact.empty());
  auto a = quant::LoadArtifact(artifact);
  ASSERT_TRUE(a.ok()) << a.status();
  const Model& m = *a->model;
  EXPECT_EQ(a->manifest["format_version"], quant::kArtifactFormatVersionS8);
  const std::string out = TempDir("gguf_s8_exact") + ".gguf";
  absl::Status s = ExportGguf(artifact, out);
  ASSERT_TRUE(s.ok()) << s;
  GgufFile g = ReadGguf(out);
  int s8 = 0;
  for (const ConstLinearSlot& slot : m.LinearSlots()) {
    if (slot.name == "lm_head") continue;
    const auto* ql = dynamic_cast<const quant::QuantizedLinear*>(slot.op);
    ASSERT_NE(ql, nullptr) << slot.name;
    const GgufTensor& t = g.tensors.at(GgufName(slot.name, slot.layer));
    const int bits = ql->matrix().bits;
    EXPECT_EQ(t.type, bits == 4 ? 3u : bits == 5 ? 7u : 8u) << slot.name;
    EXPECT_EQ(Dequant(g, t), InGgufRowOrder(slot.name, slot.op->WeightF32(), m.config))
        << slot.name << " does not dequantize to the artifact's weights exactly";
    s8 += ql->matrix().has_scale_codes();
  }
  EXPECT_EQ(s8, 13);  // all but layer 1's hand-made 8-bit down_proj
  fs::remove(out);
  for (const char* dtype : {"f32", "f16"}) {
    const std::string deq = TempDir(std::string("gguf_s8_") + dtype) + ".gguf";
    s = ExportGguf(artifact, deq, {.dtype = dtype});
    ASSERT_TRUE(s.ok()) << s;
    ExpectDequantizedLinears(ReadGguf(deq), m, std::string(dtype) == "f32" ? 0u : 1u);
    fs::remove(deq);
  }
  ExpectLogitsClose(artifact, "fp32", 1e-5);
  fs::remove_all(artifact);
}

// A model folder (no manifest.json) exports as its own weights, unquantized.
TEST(ExportGgufTest, BaseModelExportIsTheModelsWeights) {
  const std::string src = testing::ModelsDir() + "/tinystories-656k";
  auto model = LoadModel(src);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string out = TempDir("gguf_base") + ".gguf";
  absl::Status s = ExportGguf(src, out, {.dtype = "f32"});
  ASSERT_TRUE(s.ok()) << s;
  GgufFile g = ReadGguf(out);
  ExpectDequantizedLinears(g, **model, 0);
  EXPECT_EQ(Dequant(g, g.tensors["token_embd.weight"]), (*model)->embed);
  EXPECT_EQ(Dequant(g, g.tensors["output_norm.weight"]), (*model)->final_norm);
  EXPECT_EQ(g.strings["general.name"], "slq export of " + src);
  fs::remove(out);
}

TEST(ExportGgufTest, RefusesAnUnknownDtypeAndAFolderThatIsNoModel) {
  const std::string src = testing::ModelsDir() + "/tinystories-656k";
  const std::string out = TempDir("gguf_bad") + ".gguf";
  absl::Status s = ExportGguf(src, out, {.dtype = "bf16"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("exact"), std::string::npos) << s;
  const std::string empty = TempDir("gguf_empty_dir");
  fs::create_directories(empty);
  s = ExportGguf(empty, out, {.dtype = "f32"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("neither an slq artifact"), std::string::npos) << s;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(empty);
}

TEST(GgufTokenizerTest, ByteFallbackBpeIsLlamaWithMergeRankScores) {
  auto t = GgufTokenizerFromDir(testing::ModelsDir() + "/tinystories-656k", 2048);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->model, "llama");
  ASSERT_EQ(t->tokens.size(), 2048u);
  ASSERT_EQ(t->scores.size(), 2048u);
  EXPECT_TRUE(t->merges.empty());
  // merges[0] = "e ▁", merges[1] = "d ▁": earlier merges score higher (llama.cpp merges best score first).
  auto id = [&](const std::string& s) { return std::find(t->tokens.begin(), t->tokens.end(), s) - t->tokens.begin(); };
  ASSERT_LT(id("e\u2581"), 2048);
  ASSERT_LT(id("d\u2581"), 2048);
  EXPECT_GT(t->scores[id("e\u2581")], t->scores[id("d\u2581")]);
  EXPECT_EQ(t->token_types[0], kUnknown);
  EXPECT_EQ(t->token_types[1], kControl);
  EXPECT_EQ(t->token_types[id("e\u2581")], kNormal);
  EXPECT_EQ(t->bos, 1);
  EXPECT_EQ(t->eos, 2);
  EXPECT_EQ(t->unk, 0);
  EXPECT_EQ(t->pad, 0);
  EXPECT_EQ(t->add_bos, true);
  EXPECT_EQ(t->add_eos, false);
  EXPECT_EQ(t->add_space_prefix, true);
  // A larger embedding than the vocab: padded with unused tokens; a smaller one is refused.
  auto padded = GgufTokenizerFromDir(testing::ModelsDir() + "/tinystories-656k", 2050);
  ASSERT_TRUE(padded.ok()) << padded.status();
  EXPECT_EQ(padded->tokens[2049], "[PAD2049]");
  EXPECT_EQ(padded->token_types[2049], kUnused);
  EXPECT_EQ(GgufTokenizerFromDir(testing::ModelsDir() + "/tinystories-656k", 1000).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GgufTokenizerTest, ByteLevelBpeIsGpt2WithMergesAndPre) {
  auto t = GgufTokenizerFromDir(testing::ModelsDir() + "/docs-19m", 8192);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->model, "gpt2");
  EXPECT_EQ(t->pre, "gpt-2");  // ByteLevel(use_regex) = GPT-2's split regex
  EXPECT_TRUE(t->scores.empty());
  ASSERT_EQ(t->merges.size(), 7933u);
  EXPECT_EQ(t->merges[0], "\u0120 \u0120");  // ["Ġ", "Ġ"]
  EXPECT_EQ(t->tokens[1], "<s>");
  EXPECT_EQ(t->token_types[1], kControl);
  EXPECT_EQ(t->bos, 1);
  EXPECT_EQ(t->eos, 2);
  EXPECT_EQ(t->add_bos, true);  // from the TemplateProcessing post-processor
  EXPECT_EQ(t->add_eos, false);
  EXPECT_FALSE(t->add_space_prefix.has_value());
}

TEST(GgufTokenizerTest, RefusesWhatLlamaCppCannotTokenize) {
  const std::string dir = TempDir("tok_unigram");
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": [["a", -1.0]]}})";
  auto t = GgufTokenizerFromDir(dir, 1);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("'Unigram'"), std::string::npos) << t.status();
  fs::remove_all(dir);
  EXPECT_EQ(GgufTokenizerFromDir(dir, 1).status().code(), absl::StatusCode::kInvalidArgument);  // no tokenizer.json
}

TEST(ExportGgufTest, RefusesAnArtifactWithoutATokenizer) {
  const std::string artifact = MakeArtifact("gguf_notok");
  fs::remove(fs::path(artifact) / "tokenizer.json");
  const std::string out = TempDir("gguf_notok_out") + ".gguf";
  absl::Status s = ExportGguf(artifact, out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tokenizer"), std::string::npos) << s;
  std::cout << s << "\n";
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(artifact);
}

// ---- llama.cpp itself, when its tools are at hand ------------------------------------------

std::string LlamaCppBin(const std::string& tool) {
  const char* dir = std::getenv("SLQ_LLAMA_CPP_BIN_DIR");
  if (dir == nullptr) return "";
  const fs::path p = fs::path(dir) / tool;
  return fs::exists(p) ? p.string() : "";
}

std::string RunCommand(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

// llama-tokenize's ids for `text` (its --ids output "[1, 2, 3]").
std::vector<int32_t> LlamaCppTokenize(const std::string& bin, const std::string& gguf, const std::string& text) {
  const std::string in = TempDir("tok_in") + ".txt";
  std::ofstream(in, std::ios::binary) << text;
  std::string out = RunCommand("timeout 60 " + bin + " -m " + gguf + " -f " + in + " --ids --log-disable 2>/dev/null");
  fs::remove(in);
  std::vector<int32_t> ids;
  const size_t open = out.rfind('['), close = out.rfind(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return ids;
  std::stringstream ss(out.substr(open + 1, close - open - 1));
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (end != item.c_str()) ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

// Tokenization in llama.cpp vs slq's tokenizer (which matches HF tokenizers): a few fixed
// strings exactly, and the agreement over validation lines reported. SLQ_EXPORT_EXTRA_GGUF
// (FILE.gguf=TOKENIZER_DIR) adds an already exported file (e.g. docs-19m).
TEST(ExportGgufTest, LlamaCppTokenizesLikeSlq) {
  const std::string bin = LlamaCppBin("llama-tokenize");
  if (bin.empty()) GTEST_SKIP() << "no llama-tokenize in SLQ_LLAMA_CPP_BIN_DIR: llama.cpp tokenization not compared";
  const std::string artifact = MakeArtifact("gguf_tok");
  const std::string out = TempDir("gguf_tok_out") + ".gguf";
  ASSERT_TRUE(ExportGguf(artifact, out).ok());
  std::vector<std::pair<std::string, std::string>> files = {{out, artifact}};
  if (const char* extra = std::getenv("SLQ_EXPORT_EXTRA_GGUF")) {
    const std::string e = extra;
    files.push_back({e.substr(0, e.find('=')), e.substr(e.find('=') + 1)});
  }
  std::vector<std::string> lines;
  for (const char* data : {"tinystories-valid-part1.txt", "debian-docs-val-part1.txt"}) {
    std::ifstream f(testing::SharedDir() + "/data/" + data);
    std::string line;
    for (int i = 0; i < 100 && std::getline(f, line);) {
      if (!line.empty()) lines.push_back(line), ++i;
    }
  }
  for (const auto& [gguf, dir] : files) {
    auto tok = Tokenizer::FromHfDir(dir);
    ASSERT_TRUE(tok.ok()) << tok.status();
    for (const std::string s : {"Once upon a time", "The little dog", "Hello world", "The kernel"}) {
      EXPECT_EQ(LlamaCppTokenize(bin, gguf, s), (*tok)->Encode(s)) << gguf << ": '" << s << "'";
    }
    int same = 0;
    for (const std::string& l : lines) same += LlamaCppTokenize(bin, gguf, l) == (*tok)->Encode(l);
    std::cout << gguf << ": llama.cpp tokenizes " << same << " of " << lines.size() << " lines exactly as slq\n";
  }
  fs::remove(out);
  fs::remove_all(artifact);
}

// llama.cpp loads the file and its greedy continuation equals slq's (token by token for 32 tokens).
void ExpectLlamaCppGeneratesLikeSlq(const std::string& bin, bool odd, const std::string& dtype) {
  const std::string artifact = MakeArtifact("gguf_gen", odd);
  const std::string out = TempDir("gguf_gen_out") + ".gguf";
  ASSERT_TRUE(ExportGguf(artifact, out, {.dtype = dtype}).ok());
  auto a = quant::LoadArtifact(artifact);
  ASSERT_TRUE(a.ok());
  auto tok = Tokenizer::FromHfDir(artifact);
  ASSERT_TRUE(tok.ok());
  std::vector<int32_t> ids = (*tok)->Encode("Once upon a time");
  const size_t prompt = ids.size();
  for (int i = 0; i < 32; ++i) {
    auto logits = TeacherForcedLogits(*a->model, ids);
    ASSERT_TRUE(logits.ok());
    const float* last = logits->data() + logits->size() - a->model->config.vocab_size;
    ids.push_back(static_cast<int32_t>(std::max_element(last, last + a->model->config.vocab_size) - last));
  }
  const std::string want = (*tok)->Decode(std::span<const int32_t>(ids).subspan(prompt));
  const std::string got = RunCommand("timeout 120 " + bin + " -m " + out + " -n 32 'Once upon a time' 2>/dev/null");
  EXPECT_NE(got.find(want), std::string::npos) << dtype << " llama.cpp: " << got << "\nslq: " << want;
  fs::remove(out);
  fs::remove_all(artifact);
}

TEST(ExportGgufTest, LlamaCppGeneratesLikeSlq) {
  const std::string bin = LlamaCppBin("llama-simple");
  if (bin.empty()) GTEST_SKIP() << "no llama-simple in SLQ_LLAMA_CPP_BIN_DIR: loading in llama.cpp not tested";
  ExpectLlamaCppGeneratesLikeSlq(bin, /*odd=*/false, "exact");
}

// The dequantized f32 export (a 6-bit layer included) in llama.cpp continues like the artifact.
TEST(ExportGgufTest, LlamaCppGeneratesLikeSlqFromTheDequantizedExport) {
  const std::string bin = LlamaCppBin("llama-simple");
  if (bin.empty()) GTEST_SKIP() << "no llama-simple in SLQ_LLAMA_CPP_BIN_DIR: loading in llama.cpp not tested";
  ExpectLlamaCppGeneratesLikeSlq(bin, /*odd=*/true, "f32");
}

}  // namespace
}  // namespace slq::exporter
