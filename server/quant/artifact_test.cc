#include "server/quant/artifact.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "gtest/gtest.h"
#include "kernels/grids.h"
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
                 int64_t group_size = 64) {
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
  for (const char* t : {".codes", ".scales", ".zeros", ".grid_ids"}) {
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
  EXPECT_EQ(manifest["format_version"], kArtifactFormatVersion);
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

}  // namespace
}  // namespace slq::quant
