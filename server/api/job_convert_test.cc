#include "server/api/job_convert.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace slq::api {
namespace {

slq::v1::JobSpec Spec() {
  slq::v1::JobSpec s;
  s.set_model_uri("file:///models/tiny");
  s.mutable_target()->set_min_ear(0.99);
  s.set_formats("4-5-6-7-8");
  return s;
}

TEST(JobConvertTest, SpecBecomesRequestWithPipelineOptions) {
  auto r = SpecToRequest(Spec(), "key-1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->target, "ear>=0.99");
  EXPECT_EQ(r->group_size, 128);
  EXPECT_EQ(r->idempotency_key, "key-1");
  auto o = nlohmann::json::parse(r->options_json);
  EXPECT_EQ(o["formats"], "4-5-6-7-8");
  EXPECT_EQ(o["model_uri"], "file:///models/tiny");
  EXPECT_EQ(o["quantize_lm_head"], false);
  EXPECT_DOUBLE_EQ(o["temperature"].get<double>(), 1.0);
}

TEST(JobConvertTest, BadSpecsNameTheField) {
  auto bad = [](auto mutate, const std::string& field) {
    slq::v1::JobSpec s = Spec();
    mutate(s);
    auto r = SpecToRequest(s, "");
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status();
  };
  bad([](auto& s) { s.clear_model_uri(); }, "model_uri");
  bad([](auto& s) { s.clear_target(); }, "spec.target");
  bad([](auto& s) { s.mutable_target()->set_min_ear(1.5); },
      "spec.target.min_ear: target 'ear>=1.5': ear must be in (0, 1]");
  bad([](auto& s) { s.mutable_target()->set_max_kl(-1); }, "spec.target");
  bad([](auto& s) { s.mutable_target()->set_max_avg_bits(1); }, "spec.target");
  bad([](auto& s) { s.mutable_target()->set_task_lossless_kl(0); }, "spec.target");
  bad([](auto& s) { s.set_formats("four-eight"); }, "spec.formats");
  bad([](auto& s) { s.set_formats("9-10"); }, "spec.formats '9-10'");
  bad([](auto& s) { s.set_formats("1..8"); }, "spec.formats");
  bad([](auto& s) { s.set_formats("4,4"); }, "4 is listed twice");
  bad([](auto& s) { s.mutable_target()->set_max_avg_bits(2); }, "spec.target");
  bad([](auto& s) { s.set_group_size(100); }, "spec.group_size");
  bad([](auto& s) { s.set_temperature(-1); }, "spec.temperature");
  bad([](auto& s) { s.set_quantizers("rtn,awq"); }, "spec.quantizers: 'awq' is not one of rtn, mse, gptq");
  bad([](auto& s) { s.set_quantizers("gptq,gptq"); }, "spec.quantizers: 'gptq' is listed twice");
  bad(
      [](auto& s) {
        s.set_quantizers("rtn,gptq");
        s.set_hadamard(true);
      },
      "spec.quantizers");
}

// The roundings the search may choose reach the stored options (empty = the default rtn,gptq,
// rtn with hadamard; absent in stored options = rtn, as jobs stored before the field) and come
// back in the job's spec.
TEST(JobConvertTest, QuantizersTravelWithTheJob) {
  slq::v1::JobSpec s = Spec();
  auto plain = SpecToRequest(s, "");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(nlohmann::json::parse(plain->options_json)["quantizers"], "rtn,gptq");
  s.set_hadamard(true);
  auto rotated = SpecToRequest(s, "");
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_FALSE(nlohmann::json::parse(rotated->options_json).contains("quantizers"));  // rtn
  s.set_hadamard(false);
  s.set_quantizers("rtn");
  auto r = SpecToRequest(s, "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(nlohmann::json::parse(r->options_json).contains("quantizers"));  // still selectable
  Job job;
  job.request = *plain;
  EXPECT_EQ(JobToProto(job, "").spec().quantizers(), "rtn,gptq");
  job.request = *r;
  EXPECT_EQ(JobToProto(job, "").spec().quantizers(), "rtn");
}

// The per-layer variants reach the stored options (absent = the base variant only, as jobs
// stored before the fields) and come back in the job's spec; bad ones name the field.
TEST(JobConvertTest, VariantsTravelWithTheJob) {
  slq::v1::JobSpec s = Spec();
  auto plain = SpecToRequest(s, "");
  ASSERT_TRUE(plain.ok()) << plain.status();
  const nlohmann::json po = nlohmann::json::parse(plain->options_json);
  EXPECT_FALSE(po.contains("symmetry"));
  EXPECT_FALSE(po.contains("group_sizes"));
  s.set_symmetry("both");
  s.set_group_sizes("64,128");
  auto r = SpecToRequest(s, "");
  ASSERT_TRUE(r.ok()) << r.status();
  const nlohmann::json o = nlohmann::json::parse(r->options_json);
  EXPECT_EQ(o["symmetry"], "both");
  EXPECT_EQ(o["group_sizes"], "64,128");
  Job job;
  job.request = *r;
  EXPECT_EQ(JobToProto(job, "").spec().symmetry(), "both");
  EXPECT_EQ(JobToProto(job, "").spec().group_sizes(), "64,128");
  job.request = *plain;
  EXPECT_EQ(JobToProto(job, "").spec().symmetry(), "");
  s.set_group_sizes("64");  // lacks the base group (128)
  auto bad = SpecToRequest(s, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("spec.group_sizes"), std::string::npos) << bad.status();
  s.set_group_sizes("");
  s.set_symmetry("half");
  bad = SpecToRequest(s, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("spec.symmetry"), std::string::npos) << bad.status();
}

// grids and cloze_items reach the stored options (absent = off / the engine's default, as jobs
// stored before the fields) and come back in the job's spec; bad ones name the field.
TEST(JobConvertTest, GridsAndClozeItemsTravelWithTheJob) {
  slq::v1::JobSpec s = Spec();
  auto plain = SpecToRequest(s, "");
  ASSERT_TRUE(plain.ok()) << plain.status();
  const nlohmann::json po = nlohmann::json::parse(plain->options_json);
  EXPECT_FALSE(po.contains("grids"));
  EXPECT_FALSE(po.contains("cloze_items"));
  s.set_grids("both");
  s.set_cloze_items(0);
  auto r = SpecToRequest(s, "");
  ASSERT_TRUE(r.ok()) << r.status();
  const nlohmann::json o = nlohmann::json::parse(r->options_json);
  EXPECT_EQ(o["grids"], "both");
  EXPECT_EQ(o["cloze_items"], 0);
  Job job;
  job.request = *r;
  EXPECT_EQ(JobToProto(job, "").spec().grids(), "both");
  EXPECT_TRUE(JobToProto(job, "").spec().has_cloze_items());
  EXPECT_EQ(JobToProto(job, "").spec().cloze_items(), 0);
  job.request = *plain;
  EXPECT_EQ(JobToProto(job, "").spec().grids(), "");
  EXPECT_FALSE(JobToProto(job, "").spec().has_cloze_items());
  s.set_grids("maybe");
  auto bad = SpecToRequest(s, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("spec.grids"), std::string::npos) << bad.status();
  s.set_grids("on");
  s.set_cloze_items(-5);
  bad = SpecToRequest(s, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("spec.cloze_items"), std::string::npos) << bad.status();
}

// scales reaches the stored options (absent = fp16, as jobs stored before the field) and comes
// back in the job's spec; a bad word or s8 with hadamard names the field.
TEST(JobConvertTest, ScalesTravelWithTheJob) {
  slq::v1::JobSpec s = Spec();
  auto plain = SpecToRequest(s, "");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(nlohmann::json::parse(plain->options_json).contains("scales"));
  s.set_scales("both");
  auto r = SpecToRequest(s, "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(nlohmann::json::parse(r->options_json)["scales"], "both");
  Job job;
  job.request = *r;
  EXPECT_EQ(JobToProto(job, "").spec().scales(), "both");
  job.request = *plain;
  EXPECT_EQ(JobToProto(job, "").spec().scales(), "");
  s.set_scales("s16");
  auto bad = SpecToRequest(s, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("spec.scales"), std::string::npos) << bad.status();
  s.set_scales("s8");
  s.set_hadamard(true);
  bad = SpecToRequest(s, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("spec.scales 's8' cannot be combined with hadamard"), std::string::npos)
      << bad.status();
}

TEST(JobConvertTest, TaskLosslessIsTheCliTarget) {
  slq::v1::JobSpec s = Spec();
  s.mutable_target()->set_task_lossless_kl(0.01);
  auto r = SpecToRequest(s, "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->target, "tl");  // as `slq quantize --target tl`, not a plain kl<= budget
  s.mutable_target()->set_task_lossless_kl(0.02);
  EXPECT_EQ(SpecToRequest(s, "")->target, "tl<=0.02");
  EXPECT_DOUBLE_EQ(ParseTargetString("tl")->task_lossless_kl(), 0.01);
  EXPECT_DOUBLE_EQ(ParseTargetString("tl<=0.02")->task_lossless_kl(), 0.02);
}

TEST(JobConvertTest, CertificateJsonFillsTheWireMessage) {
  nlohmann::json c = {
      {"source_model", {{"id", "m"}, {"sha256", "abc"}}},
      {"target", "ear>=0.99"},
      {"target_met", true},
      {"avg_bits_per_param_quantized_layers", 5.25},
      {"layers",
       {{"model.layers.1.mlp.up_proj", {{"layer", 1}, {"quantized", true}, {"bits", 5}, {"params", 10}}},
        {"model.layers.0.mlp.up_proj", {{"layer", 0}, {"quantized", true}, {"bits", 4}, {"params", 10}}},
        {"lm_head", {{"layer", -1}, {"quantized", false}, {"params", 20}}}}},
      {"heldout", {{"ear", {{"mean", 0.995}, {"lo95", 0.993}, {"hi95", 0.997}}}, {"sequences", 32}, {"tokens", 4096}}},
      {"stage_wall_seconds", {{"profile", 1.5}}}};
  slq::v1::Certificate p = CertificateFromJson(c.dump());
  EXPECT_EQ(p.source_model(), "m");
  EXPECT_TRUE(p.target_met());
  EXPECT_DOUBLE_EQ(p.target().min_ear(), 0.99);
  EXPECT_DOUBLE_EQ(p.ear().lower(), 0.993);
  ASSERT_EQ(p.layers_size(), 3);
  EXPECT_EQ(p.layers(0).bits(), 4);  // layer 0 first, the LM head last
  EXPECT_EQ(p.layers(2).name(), "lm_head");
  EXPECT_EQ(p.layers(2).bits(), 16);
  EXPECT_EQ(p.sequences(), 32);
  EXPECT_DOUBLE_EQ(p.stage_seconds().at("profile"), 1.5);
  EXPECT_FALSE(p.json().empty());
  EXPECT_EQ(p.heldout_dataset_sha256(), "");  // none recorded
  c["heldout_dataset"] = {{"id", "file:///texts/eval.txt"}, {"sha256", "e5"}};
  p = CertificateFromJson(c.dump());
  EXPECT_EQ(p.heldout_dataset(), "file:///texts/eval.txt");
  EXPECT_EQ(p.heldout_dataset_sha256(), "e5");
}

}  // namespace
}  // namespace slq::api
