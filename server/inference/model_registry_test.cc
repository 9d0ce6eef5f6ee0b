#include "server/inference/model_registry.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "server/common/test_paths.h"
#include "server/inference/test_util.h"
#include "server/model/model_loader.h"
#include "server/model/test_model_util.h"
#if SLQ_HAVE_ARTIFACTS
#include "server/quant/artifact.h"
#endif

namespace slq::inference {
namespace {

RegistryOptions Options() {
  RegistryOptions o;
  o.engine.kv_cache_bytes = 8 << 20;
  o.shadow_fraction = 1.0;
  return o;
}

// An operator's spec (--serve-models): trusted, not confined to allowed roots.
ModelSpec Uri(const std::string& name, const std::string& location) {
  ModelSpec s;
  s.name = name;
  s.location = location;
  s.trusted = true;
  return s;
}
// A client's spec (LoadModel RPC).
ModelSpec Untrusted(const std::string& location) {
  ModelSpec s = Uri("", location);
  s.trusted = false;
  return s;
}

TEST(ModelSource, DefaultNamesAndCertificates) {
  EXPECT_EQ(DefaultModelName("/m/stories260k/stories260K.bin"), "stories260K");
  EXPECT_EQ(DefaultModelName("file:///m/tinystories-656k/"), "tinystories-656k");
  nlohmann::json cert = {{"target", {{"ear", 0.99}}},
                         {"heldout", {{"ear", {{"mean", 0.995}, {"lo", 0.991}, {"hi", 0.997}}}}}};
  EXPECT_DOUBLE_EQ(CertifiedEarLower(cert), 0.991);
  EXPECT_EQ(CertifiedEarLower(nlohmann::json::object()), 0.0);
}

TEST(ModelSource, AllowedRootsAreEnforced) {
  const std::string models = slq::testing::ModelsDir();
  ModelSourceFn src = DefaultModelSource({.allowed_roots = {models + "/stories260k"}});
  ModelSpec ok = Untrusted("file://" + models + "/stories260k/stories260K.bin");
  EXPECT_TRUE(src(ok).ok());
  ModelSpec outside = Untrusted(models + "/stories260k/../tinystories-656k");
  EXPECT_EQ(src(outside).status().code(), absl::StatusCode::kPermissionDenied);
  // Outside the roots, a path that exists and one that does not answer alike (no probe).
  auto a = src(Untrusted("/etc/passwd")), b = src(Untrusted("/etc/no-such-file-here"));
  EXPECT_EQ(a.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kPermissionDenied);
  // The operator's own spec is not confined.
  EXPECT_TRUE(src(Uri("", models + "/tinystories-656k")).ok());
}

TEST(ModelSource, NoRootsMeansNoLoadingByPathForClients) {
  const std::string models = slq::testing::ModelsDir();
  ModelSourceFn src = DefaultModelSource({});
  auto r = src(Untrusted(models + "/tinystories-656k"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("--allowed-roots"), std::string::npos) << r.status();
  EXPECT_TRUE(src(Uri("", models + "/tinystories-656k")).ok());
}

// A model folder inside the roots whose file is a symlink to a file outside them is refused.
TEST(ModelSource, SymlinkedFileInsideAnAllowedFolderIsRefused) {
  namespace fs = std::filesystem;
  const std::string root = slq::testing::MakeTempDir("roots");
  const std::string outside = slq::testing::MakeTempDir("outside");
  const std::string tiny = slq::testing::ModelsDir() + "/tinystories-656k";
  fs::create_directories(root + "/m");
  for (const auto& e : fs::directory_iterator(tiny))
    fs::copy_file(e.path(), root + "/m/" + e.path().filename().string());
  ModelSourceFn src = DefaultModelSource({.allowed_roots = {root}});
  ASSERT_TRUE(src(Untrusted(root + "/m")).ok());
  fs::copy_file(tiny + "/model.safetensors", outside + "/w.safetensors");
  fs::remove(root + "/m/model.safetensors");
  fs::create_symlink(outside + "/w.safetensors", root + "/m/model.safetensors");
  auto r = src(Untrusted(root + "/m"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_NE(r.status().message().find("model.safetensors"), std::string::npos) << r.status();
}

TEST(ModelRegistry, LoadListGetUnload) {
  Metrics metrics;
  ModelRegistry reg(DefaultModelSource({}), Options(), &metrics);
  auto a = reg.Load(Uri("", testing::SharedModel("stories260k/stories260K.bin")));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name, "stories260K");
  EXPECT_EQ(a->context_length, 512);
  EXPECT_FALSE(a->quantized);
  EXPECT_EQ(a->device, "cpu");
  EXPECT_GT(a->memory_bytes, 200000 * 4);
  auto b = reg.Load(Uri("tiny", "file://" + testing::SharedModel("tinystories-656k")));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(reg.List().size(), 2u);
  EXPECT_EQ(metrics.model_memory_bytes("tiny").Value(), static_cast<double>(b->memory_bytes));

  EXPECT_EQ(reg.Load(Uri("tiny", testing::SharedModel("tinystories-656k"))).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(reg.Load(Uri("x", "hf://org/model")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(reg.Load(Uri("y", "/does/not/exist")).ok());

  auto missing = reg.Get("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("stories260K, tiny"), std::string::npos) << missing.status();

  auto m = reg.Get("tiny");
  ASSERT_TRUE(m.ok());
  GenerationRequest r;
  r.prompt_text = "Once upon a time";
  r.max_tokens = 8;
  auto s = (*m)->engine().Submit(r);
  ASSERT_TRUE(s.ok()) << s.status();
  testing::Collected c = testing::Collect(**s);
  EXPECT_TRUE(c.final.status.ok());
  EXPECT_FALSE(c.text.empty());

  EXPECT_TRUE(reg.Unload("tiny").ok());
  EXPECT_EQ(reg.Unload("tiny").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(reg.List().size(), 1u);
  EXPECT_EQ((*m)->engine().Submit(r).status().code(), absl::StatusCode::kUnavailable);
}

#if SLQ_HAVE_ARTIFACTS
TEST(ModelRegistry, ServesAnArtifactWithShadowEvaluation) {
  const std::string base_dir = testing::SharedModel("tinystories-656k");
  auto m = LoadModel(base_dir, {.compute_sha256 = false});
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(testing::QuantizeLinears(m->get(), 8));
  const std::string root = slq::testing::MakeTempDir("artifacts");
  quant::ArtifactWriteOptions wo;
  wo.certificate = {{"heldout", {{"ear", {{"mean", 0.995}, {"lo", 0.99}, {"hi", 0.997}}}}}};
  wo.extra_files = {base_dir + "/tokenizer.json", base_dir + "/config.json"};
  ASSERT_TRUE(quant::WriteArtifact(**m, root + "/a1", wo).ok());

  Metrics metrics;
  ModelRegistry reg(DefaultModelSource({.artifact_root = root}), Options(), &metrics);
  ASSERT_TRUE(reg.Load(Uri("base", base_dir)).ok());
  ModelSpec spec;
  spec.kind = ModelSpec::Kind::kArtifactId;
  spec.location = "a1";
  spec.shadow_base = "base";
  // A client's shadow base given as a path is confined like any model path (no roots: none).
  ModelSpec probe = spec;
  probe.name = "a1-probe";
  probe.shadow_base = base_dir;
  auto refused = reg.Load(probe);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--allowed-roots"), std::string::npos) << refused.status();
  auto info = reg.Load(spec);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, "a1");
  EXPECT_TRUE(info->quantized);
  EXPECT_NEAR(info->avg_bits, 8.0 + 32.0 / 32, 1e-9);  // 8 bits + fp16 scale and zero per 32
  EXPECT_DOUBLE_EQ(info->certified_ear_lower, 0.99);
  EXPECT_DOUBLE_EQ(metrics.certified_ear("a1").Value(), 0.99);

  auto served = *reg.Get("a1");
  for (int i = 0; i < 3; ++i) {
    GenerationRequest r;
    r.prompt_text = "Once upon a time";
    r.max_tokens = 16;
    r.sampling.seed = i;
    testing::Collect(**served->engine().Submit(r));
  }
  ASSERT_NE(served->shadow(), nullptr);
  served->shadow()->WaitIdle();
  EXPECT_EQ(served->shadow()->stats().evaluated, 3);
  EXPECT_GT(served->shadow()->stats().last.ear, 0.95);
  EXPECT_EQ(metrics.shadow_ear("a1").Collect().histogram.sample_count, 3u);

  spec.location = "../etc";
  EXPECT_EQ(reg.Load(spec).status().code(), absl::StatusCode::kInvalidArgument);
}
#endif

}  // namespace
}  // namespace slq::inference
