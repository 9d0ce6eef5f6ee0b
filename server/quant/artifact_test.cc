#include "server/quant/artifact.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "gtest/gtest.h"
#include "kernels/grids.h"
#include "kernels/scale_codes.h"
#include "server/common/sha256.h"
#include "server/common/test_paths.h"
#include "server/model/forward.h"
#include "server/model/model_loader.h"
#include "server/model/safetensors.h"
#include "server/quant/quantized_linear.h"

namespace slq::quant {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const std::string d =
      (fs::temp_directory_path() / ("slq_artifact_test_" + name + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  return d;
}

// Quantizes every transformer linear of the model in place (lm_head kept dense).
void QuantizeAll(Model& m, int bits, bool rotate, bool symmetric_mlp = false, bool grids = false,
                 int64_t group_size = 64, ScaleFormat scales = ScaleFormat::kFp16) {
  for (LinearSlot& s : m.LinearSlots()) {
    if (s.layer < 0) continue;
    const auto* d = dynamic_cast<const DenseLinear*>(s.op->get());
    ASSERT_NE(d, nullptr);
    QuantConfig cfg;
    cfg.bits = bits;
    cfg.group_size = group_size;
    cfg.rotate = rotate && s.layer == 0;
    cfg.symmetric = symmetric_mlp && s.name.find("mlp") != std::string::npos;
    cfg.grids = grids && !cfg.symmetric;
    cfg.scales = scales;
    auto q = QuantizeMatrix(d->weight().data(), d->out_features(), d->in_features(), cfg);
    ASSERT_TRUE(q.ok());
    *s.op = std::make_unique<QuantizedLinear>(std::move(*q));
  }
}

TEST(ArtifactTest, RoundTripsRealModelBitExactlyAndRefusesCorruption) {
  auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(model.ok()) << model.status();
  QuantizeAll(**model, 4, /*rotate=*/true);
  const std::string dir = FreshDir("rt");
  ArtifactWriteOptions opts;
  opts.certificate = {{"target", "ear>=0.99"}};
  opts.extra_files = {testing::ModelsDir() + "/tinystories-656k/tokenizer.json"};
  ASSERT_TRUE(WriteArtifact(**model, dir, opts).ok());
  EXPECT_EQ(WriteArtifact(**model, dir, opts).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(fs::exists(dir + "/tokenizer.json"));

  auto loaded = LoadArtifact(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->manifest["certificate"]["target"], "ear>=0.99");
  int packed = 0;
  for (LinearSlot& s : loaded->model->LinearSlots()) {
    packed += (*s.op)->packed() != nullptr;
  }
  EXPECT_EQ(packed, 14);
  const std::vector<int32_t> tokens = {1, 400, 52, 9, 300, 17, 1000, 5};
  auto a = TeacherForcedLogits(**model, tokens);
  auto b = TeacherForcedLogits(*loaded->model, tokens);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);  // identical weights -> identical logits

  // Flip one byte of the weights: refused, naming the file.
  {
    std::fstream f(dir + "/weights.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    char c;
    f.read(&c, 1);
    f.seekp(1000);
    c ^= 1;
    f.write(&c, 1);
  }
  auto bad = LoadArtifact(dir);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("weights.safetensors"), std::string::npos);
  // Truncated tokenizer file: refused, naming it.
  fs::resize_file(dir + "/tokenizer.json", 10);
  const std::string dir2 = FreshDir("rt2");
  ASSERT_TRUE(WriteArtifact(**model, dir2, opts).ok());
  fs::resize_file(dir2 + "/tokenizer.json", 10);
  auto trunc = LoadArtifact(dir2);
  EXPECT_EQ(trunc.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(trunc.status().message().find("tokenizer.json"), std::string::npos);
  EXPECT_FALSE(LoadArtifact(FreshDir("missing")).ok());
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

// A manifest whose fields have the wrong type, are missing or disagree with the model config
// is refused with a status (found by fuzz/artifact_manifest_fuzz: json exceptions escaped and
// linear shapes were not checked against the config).
TEST(ArtifactTest, RefusesMalformedManifests) {
  auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(model.ok()) << model.status();
  QuantizeAll(**model, 4, /*rotate=*/false);
  const std::string dir = FreshDir("badmanifest");
  ASSERT_TRUE(WriteArtifact(**model, dir, {}).ok());
  std::string text;
  {
    std::ifstream in(dir + "/manifest.json");
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const nlohmann::json good = nlohmann::json::parse(text);
  auto load_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json m = good;
    edit(m);
    std::ofstream(dir + "/manifest.json", std::ios::trunc) << m.dump();
    return LoadArtifact(dir).status();
  };
  EXPECT_TRUE(load_with([](nlohmann::json&) {}).ok());
  EXPECT_EQ(load_with([](auto& m) { m.erase("model_config"); }).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(load_with([](auto& m) { m.erase("linears"); }).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(load_with([](auto& m) { m["linears"] = 7; }).code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(load_with([](auto& m) { m["format"] = 5; }).ok());
  EXPECT_FALSE(load_with([](auto& m) { m["format_version"] = "one"; }).ok());
  EXPECT_EQ(load_with([](auto& m) { m["files"]["weights.safetensors"] = 5; }).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(load_with([](auto& m) { m["files"]["weights.safetensors"]["bytes"] = "many"; }).code(),
            absl::StatusCode::kDataLoss);
  // Linear shapes that disagree with the config (a dense q_proj claiming 1 x 1).
  const std::string q = "model.layers.0.self_attn.q_proj";
  EXPECT_FALSE(load_with([&](auto& m) { m["linears"][q]["rows"] = int64_t{1} << 40; }).ok());
  EXPECT_FALSE(load_with([&](auto& m) { m["linears"][q]["cols"] = -3; }).ok());
  fs::remove_all(dir);
}

TEST(ArtifactTest, SymmetricLayersStoreNoZerosAndLoadBitExactly) {
  auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(model.ok()) << model.status();
  QuantizeAll(**model, 5, /*rotate=*/false, /*symmetric_mlp=*/true);
  const std::string dir = FreshDir("sym");
  ASSERT_TRUE(WriteArtifact(**model, dir, {}).ok());
  auto st = SafetensorsFile::Open(dir + "/weights.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ((*st)->Find("model.layers.0.mlp.up_proj.zeros"), nullptr);
  EXPECT_NE((*st)->Find("model.layers.0.mlp.up_proj.scales"), nullptr);
  EXPECT_NE((*st)->Find("model.layers.0.self_attn.q_proj.zeros"), nullptr);
  auto loaded = LoadArtifact(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto orig = (*model)->LinearSlots();
  auto back = loaded->model->LinearSlots();
  ASSERT_EQ(orig.size(), back.size());
  int sym = 0;
  for (size_t i = 0; i < orig.size(); ++i) {
    const PackedLinear* a = (*orig[i].op)->packed();
    const PackedLinear* b = (*back[i].op)->packed();
    if (a == nullptr) continue;
    ASSERT_NE(b, nullptr);
    const kernels::PackedMatrixView &va = a->view, &vb = b->view;
    ASSERT_EQ(va.rows, vb.rows);
    ASSERT_EQ(va.cols, vb.cols);
    ASSERT_EQ(va.bits, vb.bits);
    ASSERT_EQ(va.group_size, vb.group_size);
    const int64_t nz = va.rows * kernels::GroupsPerRow(va.cols, va.group_size);
    const int64_t nc = va.rows * kernels::WordsPerRow(va.cols, va.bits);
    EXPECT_TRUE(std::equal(va.zeros, va.zeros + nz, vb.zeros)) << orig[i].name;
    EXPECT_TRUE(std::equal(va.codes, va.codes + nc, vb.codes)) << orig[i].name;
    sym += vb.symmetric;
  }
  EXPECT_EQ(sym, 6);
  fs::remove_all(dir);
}

nlohmann::json ReadManifest(const std::string& dir) {
  std::ifstream in(dir + "/manifest.json");
  return nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
}

// Bits the artifact stores for a packed linear: its codes, scales, zeros and grid ids tensors.
int64_t StoredBits(const SafetensorsFile& st, const std::string& slot) {
  int64_t bytes = 0;
  for (const char* t : {".codes", ".scales", ".zeros", ".grid_ids", ".scale_codes", ".zero_points"}) {
    if (const TensorView* v = st.Find(slot + t)) bytes += static_cast<int64_t>(v->bytes.size());
  }
  return 8 * bytes;
}

// Grid layers (Grid Games) round-trip bit-exactly (codes, scales, zeros, grid ids, logits), and
// the bits the artifact stores are BitsPerParam's count plus only the word padding of each row's
// code and grid-id streams.
TEST(ArtifactTest, GridLayersRoundTripBitExactlyAndStoreExactlyTheirBits) {
  auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(model.ok()) << model.status();
  QuantizeAll(**model, 3, /*rotate=*/true, /*symmetric_mlp=*/true, /*grids=*/true);
  const std::string dir = FreshDir("grids");
  ASSERT_TRUE(WriteArtifact(**model, dir, {}).ok());
  const nlohmann::json manifest = ReadManifest(dir);
  EXPECT_EQ(manifest["format_version"], kArtifactFormatVersionGrids);
  EXPECT_EQ(manifest["linears"]["model.layers.0.self_attn.q_proj"]["grids"], true);
  EXPECT_EQ(manifest["linears"]["model.layers.0.self_attn.q_proj"]["grid"], kGridTablesName);
  EXPECT_EQ(manifest["linears"]["model.layers.0.mlp.up_proj"]["grids"], false);  // symmetric
  auto st = SafetensorsFile::Open(dir + "/weights.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_NE((*st)->Find("model.layers.1.self_attn.o_proj.grid_ids"), nullptr);
  EXPECT_EQ((*st)->Find("model.layers.1.mlp.down_proj.grid_ids"), nullptr);

  auto loaded = LoadArtifact(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto orig = (*model)->LinearSlots();
  auto back = loaded->model->LinearSlots();
  ASSERT_EQ(orig.size(), back.size());
  int grid_layers = 0;
  for (size_t i = 0; i < orig.size(); ++i) {
    const PackedLinear* a = (*orig[i].op)->packed();
    const PackedLinear* b = (*back[i].op)->packed();
    if (a == nullptr) continue;
    ASSERT_NE(b, nullptr);
    const kernels::PackedMatrixView &va = a->view, &vb = b->view;
    const int64_t gpr = kernels::GroupsPerRow(va.cols, va.group_size);
    const int64_t wpr = kernels::WordsPerRow(va.cols, va.bits), ipr = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
    ASSERT_EQ(va.grid_ids == nullptr, vb.grid_ids == nullptr) << orig[i].name;
    if (va.grid_ids != nullptr) {
      EXPECT_TRUE(std::equal(va.grid_ids, va.grid_ids + va.rows * ipr, vb.grid_ids)) << orig[i].name;
      ++grid_layers;
    }
    EXPECT_TRUE(std::equal(va.codes, va.codes + va.rows * wpr, vb.codes)) << orig[i].name;
    EXPECT_EQ((*orig[i].op)->WeightF32(), (*back[i].op)->WeightF32()) << orig[i].name;
    EXPECT_EQ(a->bits_per_param, b->bits_per_param) << orig[i].name;
    const int64_t padding = va.rows * (32 * wpr - va.cols * va.bits + (vb.grid_ids ? 32 * ipr - 2 * gpr : 0));
    const double charged = b->bits_per_param * static_cast<double>(va.rows * va.cols);
    EXPECT_DOUBLE_EQ(static_cast<double>(StoredBits(**st, orig[i].name) - padding), charged) << orig[i].name;
  }
  EXPECT_EQ(grid_layers, 8);  // 14 linears, the 6 symmetric MLP ones without grids
  const std::vector<int32_t> tokens = {1, 400, 52, 9, 300, 17, 1000, 5};
  auto a = TeacherForcedLogits(**model, tokens);
  auto b = TeacherForcedLogits(*loaded->model, tokens);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  fs::remove_all(dir);
}

// With groups of 8 (128 and 384 columns) neither stream pads: the stored bits are exactly
// BitsPerParam x params (codes + fp16 scale + fp16 zero + 2-bit grid id per group).
TEST(ArtifactTest, GridBitsPerParamIsExactlyTheStoredBytes) {
  auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(model.ok()) << model.status();
  QuantizeAll(**model, 3, /*rotate=*/false, /*symmetric_mlp=*/false, /*grids=*/true, /*group_size=*/8);
  const std::string dir = FreshDir("gridbits");
  ASSERT_TRUE(WriteArtifact(**model, dir, {}).ok());
  auto st = SafetensorsFile::Open(dir + "/weights.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  int checked = 0;
  for (LinearSlot& s : (*model)->LinearSlots()) {
    const PackedLinear* p = (*s.op)->packed();
    if (p == nullptr) continue;
    const int64_t params = p->view.rows * p->view.cols;
    EXPECT_DOUBLE_EQ(p->bits_per_param, 3 + 34.0 / 8) << s.name;
    EXPECT_EQ(StoredBits(**st, s.name), static_cast<int64_t>(p->bits_per_param * static_cast<double>(params)))
        << s.name;
    ++checked;
  }
  EXPECT_EQ(checked, 14);
  fs::remove_all(dir);
}

// Version rules: an artifact without grids is still written as version 1 (older builds read it)
// and loads without the grid fields (as written before grids existed); a version-1 manifest
// claiming grids, an unknown grid, ids the manifest does not declare, and a future version are
// refused.
TEST(ArtifactTest, GridVersionRulesKeepOldArtifactsLoadingAndRefuseInconsistentOnes) {
  auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(model.ok()) << model.status();
  QuantizeAll(**model, 4, /*rotate=*/false);
  const std::string plain = FreshDir("nogrids");
  ASSERT_TRUE(WriteArtifact(**model, plain, {}).ok());
  const nlohmann::json pm = ReadManifest(plain);
  EXPECT_EQ(pm["format_version"], 1);
  const std::string q = "model.layers.0.self_attn.q_proj";
  EXPECT_EQ(pm["linears"][q]["grids"], false);
  EXPECT_EQ(pm["linears"][q]["grid"], "uniform");
  {  // as written before grids: no grid fields at all
    nlohmann::json old = pm;
    for (auto& [name, l] : old["linears"].items()) {
      l.erase("grids");
      l.erase("grid");
    }
    std::ofstream(plain + "/manifest.json", std::ios::trunc) << old.dump();
    EXPECT_TRUE(LoadArtifact(plain).ok());
  }

  auto gmodel = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(gmodel.ok()) << gmodel.status();
  QuantizeAll(**gmodel, 4, /*rotate=*/false, /*symmetric_mlp=*/false, /*grids=*/true);
  const std::string dir = FreshDir("gridversions");
  ASSERT_TRUE(WriteArtifact(**gmodel, dir, {}).ok());
  const nlohmann::json good = ReadManifest(dir);
  auto load_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json m = good;
    edit(m);
    std::ofstream(dir + "/manifest.json", std::ios::trunc) << m.dump();
    return LoadArtifact(dir).status();
  };
  EXPECT_TRUE(load_with([](nlohmann::json&) {}).ok());
  EXPECT_EQ(load_with([](auto& m) { m["format_version"] = 1; }).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(load_with([&](auto& m) { m["linears"][q]["scales"] = "s8"; }).code(), absl::StatusCode::kDataLoss);
  const absl::Status future = load_with([](auto& m) { m["format_version"] = kArtifactFormatVersion + 1; });
  EXPECT_EQ(future.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(future.message().find("newer slq"), std::string::npos) << future;
  EXPECT_EQ(load_with([&](auto& m) { m["linears"][q]["grid"] = "lloyd-max"; }).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(load_with([&](auto& m) { m["linears"][q]["grids"] = "yes"; }).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(load_with([&](auto& m) {
              m["linears"][q]["grids"] = false;
              m["linears"][q]["grid"] = "uniform";
            }).code(),
            absl::StatusCode::kDataLoss);  // the .grid_ids tensor is there
  EXPECT_EQ(load_with([&](auto& m) { m["linears"][q]["symmetric"] = true; }).code(), absl::StatusCode::kDataLoss);
  fs::remove_all(dir);
  fs::remove_all(plain);
}

// The QuantizedMatrix behind a packed slot of a model.
const QuantizedMatrix& MatrixOf(const LinearSlot& s) {
  const auto* ql = dynamic_cast<const QuantizedLinear*>(s.op->get());
  EXPECT_NE(ql, nullptr) << s.name;
  return ql->matrix();
}

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// S8 layers (compact scales) store scale codes and packed zero-points instead of fp16 scales and
// zeros, and load bit-identical: the expansion, the codes, every s8 field, the logits, and a
// re-save of the loaded model is byte-identical. Covers asymmetric and symmetric layers, with and
// without grids, a ragged last group (g48 on 128 and 384 columns) and per-row groups.
TEST(ArtifactTest, S8LayersRoundTripBitExactlyAndResaveIdentically) {
  struct Case {
    int bits;
    bool rotate_layer0, symmetric_mlp, grids;
    int64_t group_size;
  };
  for (const Case& c :
       {Case{4, false, false, false, 64}, Case{3, false, true, true, 48}, Case{5, false, true, false, -1},
        Case{8, false, false, true, 128}, Case{2, false, false, true, 32}}) {
    SCOPED_TRACE(::testing::Message() << "bits " << c.bits << " g" << c.group_size << " sym_mlp " << c.symmetric_mlp
                                      << " grids " << c.grids);
    auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
    ASSERT_TRUE(model.ok()) << model.status();
    QuantizeAll(**model, c.bits, c.rotate_layer0, c.symmetric_mlp, c.grids, c.group_size, ScaleFormat::kS8);
    const std::string dir = FreshDir("s8"), dir2 = FreshDir("s8resave");
    ASSERT_TRUE(WriteArtifact(**model, dir, {}).ok());
    const nlohmann::json manifest = ReadManifest(dir);
    EXPECT_EQ(manifest["format_version"], kArtifactFormatVersionS8);
    auto st = SafetensorsFile::Open(dir + "/weights.safetensors");
    ASSERT_TRUE(st.ok()) << st.status();
    auto loaded = LoadArtifact(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    auto orig = (*model)->LinearSlots();
    auto back = loaded->model->LinearSlots();
    ASSERT_EQ(orig.size(), back.size());
    int s8 = 0, sym = 0;
    for (size_t i = 0; i < orig.size(); ++i) {
      if ((*orig[i].op)->packed() == nullptr) continue;
      const std::string& name = orig[i].name;
      const QuantizedMatrix& a = MatrixOf(orig[i]);
      const QuantizedMatrix& b = MatrixOf(back[i]);
      ASSERT_TRUE(a.has_scale_codes()) << name;
      const nlohmann::json& entry = manifest["linears"][name];
      EXPECT_EQ(entry["scales"], "s8") << name;
      EXPECT_EQ((*st)->Find(name + ".scales"), nullptr) << name;
      EXPECT_EQ((*st)->Find(name + ".zeros"), nullptr) << name;
      EXPECT_NE((*st)->Find(name + ".scale_codes"), nullptr) << name;
      EXPECT_EQ((*st)->Find(name + ".zero_points") != nullptr, !a.symmetric) << name;
      EXPECT_EQ(b.scale_base, a.scale_base) << name;
      EXPECT_EQ(b.scale_codes, a.scale_codes) << name;
      EXPECT_EQ(b.zero_points, a.zero_points) << name;
      EXPECT_EQ(b.scales, a.scales) << name;
      EXPECT_EQ(b.zeros, a.zeros) << name;
      EXPECT_EQ(b.codes, a.codes) << name;
      EXPECT_EQ(b.grid_ids, a.grid_ids) << name;
      EXPECT_EQ(b.symmetric, a.symmetric) << name;
      EXPECT_EQ(b.BitsPerParam(), a.BitsPerParam()) << name;
      EXPECT_EQ((*orig[i].op)->WeightF32(), (*back[i].op)->WeightF32()) << name;
      s8 += b.has_scale_codes();
      sym += b.symmetric;
    }
    EXPECT_EQ(s8, 14);
    EXPECT_EQ(sym, c.symmetric_mlp ? 6 : 0);
    const std::vector<int32_t> tokens = {1, 400, 52, 9, 300, 17, 1000, 5};
    auto la = TeacherForcedLogits(**model, tokens);
    auto lb = TeacherForcedLogits(*loaded->model, tokens);
    ASSERT_TRUE(la.ok() && lb.ok());
    EXPECT_EQ(*la, *lb);
    ASSERT_TRUE(WriteArtifact(*loaded->model, dir2, {}).ok());
    EXPECT_EQ(FileBytes(dir2 + "/weights.safetensors"), FileBytes(dir + "/weights.safetensors"));
    EXPECT_EQ(ReadManifest(dir2)["linears"], manifest["linears"]);
    fs::remove_all(dir);
    fs::remove_all(dir2);
  }
}

// The bits an s8 layer stores (codes + scale codes + zero-points + grid ids in the tensors, the
// 32-bit base in the manifest) are BitsPerParam x params: exactly with groups of 8 at 4 bits
// (no stream pads on 128 / 384 columns), and up to the word padding of each row's code,
// zero-point and grid-id streams with ragged g48 at 3 bits.
TEST(ArtifactTest, S8BitsPerParamIsExactlyTheStoredBits) {
  for (const int64_t g : {int64_t{8}, int64_t{48}}) {
    const int bits = g == 8 ? 4 : 3;
    auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
    ASSERT_TRUE(model.ok()) << model.status();
    QuantizeAll(**model, bits, /*rotate=*/false, /*symmetric_mlp=*/g == 48, /*grids=*/true, g, ScaleFormat::kS8);
    const std::string dir = FreshDir("s8bits");
    ASSERT_TRUE(WriteArtifact(**model, dir, {}).ok());
    auto st = SafetensorsFile::Open(dir + "/weights.safetensors");
    ASSERT_TRUE(st.ok()) << st.status();
    int checked = 0;
    for (LinearSlot& s : (*model)->LinearSlots()) {
      const PackedLinear* p = (*s.op)->packed();
      if (p == nullptr) continue;
      const kernels::PackedMatrixView& v = p->view;
      const int64_t params = v.rows * v.cols, gpr = kernels::GroupsPerRow(v.cols, v.group_size);
      const int64_t wpr = kernels::WordsPerRow(v.cols, v.bits), ipr = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
      const int64_t zpr = kernels::WordsPerRow(gpr, v.bits);
      const int64_t padding = v.rows * (32 * wpr - v.cols * v.bits + (v.grid_ids ? 32 * ipr - 2 * gpr : 0) +
                                        (v.symmetric ? 0 : 32 * zpr - gpr * v.bits));
      if (g == 8) {
        EXPECT_EQ(padding, 0) << s.name;
      }
      const double stored = static_cast<double>(StoredBits(**st, s.name) - padding + kernels::kScaleBaseBits);
      EXPECT_NEAR(stored, p->bits_per_param * static_cast<double>(params), 1e-6) << s.name;
      ++checked;
    }
    EXPECT_EQ(checked, 14);
    fs::remove_all(dir);
  }
}

// Rewrites weights.safetensors of an artifact after `edit` changed its bytes, and the manifest's
// digest of it (whole-file sha256; the chunk list dropped), so only the edit is wrong.
void RewriteWeights(const std::string& dir, const std::function<void(std::string&)>& edit) {
  std::string bytes = FileBytes(dir + "/weights.safetensors");
  edit(bytes);
  std::ofstream(dir + "/weights.safetensors", std::ios::binary | std::ios::trunc) << bytes;
  nlohmann::json m = ReadManifest(dir);
  auto sha = Sha256File(dir + "/weights.safetensors");
  ASSERT_TRUE(sha.ok());
  nlohmann::json& f = m["files"]["weights.safetensors"];
  f = {{"sha256", *sha}, {"bytes", bytes.size()}};
  std::ofstream(dir + "/manifest.json", std::ios::trunc) << m.dump();
}

// The byte offset of tensor `name`'s data in a safetensors file's bytes.
size_t TensorOffset(const std::string& bytes, const std::string& name) {
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const nlohmann::json h = nlohmann::json::parse(bytes.substr(8, header));
  return 8 + header + h.at(name).at("data_offsets")[0].get<size_t>();
}

// Malformed s8 entries are refused with DataLoss naming the problem: an unknown scale format,
// s8 in a version-2 manifest, a base that is missing, not finite or not positive, fp16 tensors
// beside s8 ones, zero-points on a symmetric layer, bits set past a row's last zero-point; and
// the writer refuses a zero-point that does not fit in `bits`.
TEST(ArtifactTest, S8RefusesMalformedEntries) {
  auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(model.ok()) << model.status();
  QuantizeAll(**model, 4, /*rotate=*/false, /*symmetric_mlp=*/false, /*grids=*/false, 48, ScaleFormat::kS8);
  const std::string dir = FreshDir("s8bad");
  ASSERT_TRUE(WriteArtifact(**model, dir, {}).ok());
  const std::string good_manifest = FileBytes(dir + "/manifest.json");
  const std::string good_weights = FileBytes(dir + "/weights.safetensors");
  const nlohmann::json good = nlohmann::json::parse(good_manifest);
  const std::string q = "model.layers.0.self_attn.q_proj";
  auto load_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json m = good;
    edit(m);
    std::ofstream(dir + "/manifest.json", std::ios::trunc) << m.dump();
    return LoadArtifact(dir).status();
  };
  auto expect_refused = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& says) {
    const absl::Status s = load_with(edit);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(says), std::string::npos) << s;
  };
  EXPECT_TRUE(load_with([](nlohmann::json&) {}).ok());
  expect_refused([](auto& m) { m["format_version"] = kArtifactFormatVersionGrids; }, "s8 needs version 3");
  expect_refused([&](auto& m) { m["linears"][q]["scales"] = "s4"; }, "scales 's4'");
  expect_refused([&](auto& m) { m["linears"][q]["scales"] = "fp16"; }, "s8 scale tensors present");
  expect_refused([&](auto& m) { m["linears"][q].erase("scale_base_bits"); }, "scale_base_bits");
  expect_refused([&](auto& m) { m["linears"][q]["scale_base_bits"] = "x"; }, "scale_base_bits");
  expect_refused([&](auto& m) { m["linears"][q]["scale_base_bits"] = 0x7fc00000u; }, "not a finite positive");
  expect_refused([&](auto& m) { m["linears"][q]["scale_base_bits"] = 0x7f800000u; }, "not a finite positive");
  expect_refused([&](auto& m) { m["linears"][q]["scale_base_bits"] = 0; }, "not a finite positive");
  expect_refused([&](auto& m) { m["linears"][q]["scale_base_bits"] = 0xbf800000u; }, "not a finite positive");
  expect_refused([&](auto& m) { m["linears"][q]["symmetric"] = true; }, "zero-points stored for a symmetric");
  expect_refused([&](auto& m) { m["linears"][q]["group_size"] = 64; }, "scale_codes");

  // A bit past the last zero-point of row 0 (3 groups x 4 bits = 12 of 32 bits used).
  std::ofstream(dir + "/manifest.json", std::ios::trunc) << good_manifest;
  RewriteWeights(dir, [&](std::string& b) { b[TensorOffset(b, q + ".zero_points") + 3] |= 0x10; });
  absl::Status s = LoadArtifact(dir).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("past its last zero-point"), std::string::npos) << s;
  // The same rewrite of the undamaged bytes loads: only the damage was refused.
  std::ofstream(dir + "/manifest.json", std::ios::trunc) << good_manifest;
  RewriteWeights(dir, [&](std::string& b) { b = good_weights; });
  EXPECT_TRUE(LoadArtifact(dir).ok()) << LoadArtifact(dir).status();
  fs::remove_all(dir);

  // The writer: a zero-point of 16 at 4 bits.
  for (LinearSlot& sl : (*model)->LinearSlots()) {
    if (sl.name != q) continue;
    QuantizedMatrix bad = MatrixOf(sl);
    bad.zero_points[5] = 16;
    *sl.op = std::make_unique<QuantizedLinear>(std::move(bad));
  }
  s = WriteArtifact(**model, dir, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("does not fit in 4 bits"), std::string::npos) << s;
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace slq::quant
