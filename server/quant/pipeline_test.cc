#include "server/quant/pipeline.h"

#include <filesystem>
#include <set>

#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"
#include "server/quant/artifact.h"
#include "server/quant/evaluator.h"
#include "server/quant/quantized_linear.h"

namespace slq::quant {
namespace {

namespace fs = std::filesystem;

std::string TmpDir(const std::string& name) {
  const std::string d =
      (fs::temp_directory_path() / ("slq_pipeline_test_" + name + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  return d;
}

PipelineOptions TinyOptions() {
  PipelineOptions o;
  o.model_path = testing::ModelsDir() + "/tinystories-656k";
  o.data_path = testing::DataDir() + "/tinystories-valid-part1.txt";
  o.group_size = 64;
  o.data.seq_len = 64;
  o.data.max_calibration_sequences = 8;
  o.data.max_heldout_sequences = 16;
  return o;
}

TEST(EvalDataTest, SplitIsDeterministicAndDisjointByDocument) {
  std::string rule;
  EXPECT_EQ(SplitDocuments("a\x1e b\x1e\x1e c", &rule).size(), 3u);
  EXPECT_EQ(rule, "record-separator");
  EXPECT_EQ(SplitDocuments("p1\nx\n\np2\n\np3\n\n\np4\n", &rule).size(), 4u);
  EXPECT_EQ(rule, "paragraphs");
  EXPECT_EQ(SplitDocuments("l1\nl2\nl3\n", &rule).size(), 3u);
  EXPECT_EQ(rule, "lines");
  auto text = ReadFile(testing::DataDir() + "/debian-docs-val-part1.txt");
  ASSERT_TRUE(text.ok());
  auto tok = Tokenizer::FromHfDir(testing::ModelsDir() + "/docs-19m");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EvalDataOptions o;
  o.max_calibration_sequences = 1000;
  o.max_heldout_sequences = 1000;
  auto a = PrepareEvalData(*text, **tok, o);
  auto b = PrepareEvalData(*text, **tok, o);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status();
  EXPECT_EQ(a->calibration, b->calibration);
  EXPECT_EQ(a->documents, 59);
  EXPECT_EQ(a->calibration_documents + a->heldout_documents, 59);
  EXPECT_NEAR(a->heldout_documents, 29.5, 1);
  // No window appears on both sides (documents are disjoint).
  std::set<std::vector<int32_t>> cal(a->calibration.begin(), a->calibration.end());
  for (const auto& s : a->heldout) EXPECT_FALSE(cal.count(s));
  EXPECT_EQ(PrepareEvalData("just a few words", **tok, o).status().code(), absl::StatusCode::kInvalidArgument);
}

// `slq split` writes each side with JoinDocuments: with --eval the pipeline must see exactly the
// documents (hence the windows) that its own split gives each side.
TEST(EvalDataTest, SplitSidesJoinBackToTheSameDocuments) {
  for (const char* file : {"/debian-docs-val-part1.txt", "/tinystories-valid-part1.txt"}) {
    auto text = ReadFile(testing::DataDir() + file);
    ASSERT_TRUE(text.ok());
    const DocumentSplit s = SplitCalibrationHeldout(*text, 0.5);
    ASSERT_GE(s.calibration.size(), 4u);
    for (const auto* side : {&s.calibration, &s.heldout}) {
      std::string rule;
      EXPECT_EQ(SplitDocuments(JoinDocuments(*side, s.rule), &rule), *side) << file;
      EXPECT_EQ(rule, s.rule);
    }
    auto tok =
        Tokenizer::FromHfDir(testing::ModelsDir() +
                             (std::string(file) == "/tinystories-valid-part1.txt" ? "/tinystories-656k" : "/docs-19m"));
    ASSERT_TRUE(tok.ok());
    EvalDataOptions o;
    auto whole = PrepareEvalData(*text, **tok, o);
    const std::string held = JoinDocuments(s.heldout, s.rule);
    auto sides = PrepareEvalData(JoinDocuments(s.calibration, s.rule), **tok, o, &held);
    ASSERT_TRUE(whole.ok() && sides.ok()) << whole.status() << sides.status();
    EXPECT_EQ(whole->calibration, sides->calibration) << file;
    EXPECT_EQ(whole->heldout, sides->heldout) << file;
  }
  std::string rule;
  EXPECT_EQ(SplitDocuments(JoinDocuments({"p1\nx\n", "p2\n", "p3\n", "p4\n"}, "paragraphs"), &rule).size(), 4u);
  EXPECT_EQ(rule, "paragraphs");
}

TEST(PipelineTest, EightBitModelIsNearlyLosslessWithCertificate) {
  PipelineOptions o = TinyOptions();
  o.uniform_bits = 8;
  o.target = "ear>=0.99";
  o.output_dir = TmpDir("u8");
  std::vector<std::string> stages;
  auto r = QuantizeModel(o, [&](const std::string& s, double) {
    if (stages.empty() || stages.back() != s) stages.push_back(s);
  });
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& c = r->certificate;
  // Measured: 8-bit g64 RTN gives EAR 0.9921 [0.9918, ...], KL 2.5e-4 on this model (each
  // layer's relative weight error is 2.7e-5, exactly the uniform-noise prediction; the tiny
  // model is that sensitive). EAR > 0.999 is NOT reached at 8 bits here.
  EXPECT_GT(c["heldout"]["ear"]["lo95"].get<double>(), 0.99);
  EXPECT_LT(c["heldout"]["kl"]["hi95"].get<double>(), 1e-3);
  EXPECT_LT(c["heldout"]["flip_rate"]["mean"].get<double>(), 0.02);
  EXPECT_TRUE(r->target_met);
  EXPECT_EQ(r->status, "met");
  EXPECT_NEAR(c["avg_bits_per_param_quantized_layers"].get<double>(), 8.5, 1e-9);  // g = 64
  EXPECT_EQ(c["layers"].size(), 15u);                                              // 14 quantized + lm_head kept
  EXPECT_EQ(c["layers"]["lm_head"]["quantized"], false);
  EXPECT_GE(c["heldout"]["bootstrap_resamples"].get<int>(), 1000);
  for (const char* k : {"source_model", "tokenizer", "dataset", "seeds", "stage_wall_seconds", "tool_version", "target",
                        "target_met", "avg_bits_per_param_whole_model"}) {
    EXPECT_TRUE(c.contains(k)) << k;
  }
  EXPECT_EQ(c["source_model"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(stages, (std::vector<std::string>{"load", "data", "base_logits", "profile", "search", "verify", "write"}));
  // The artifact reproduces the certified numbers: reload and re-evaluate on held-out.
  auto art = LoadArtifact(o.output_dir);
  ASSERT_TRUE(art.ok()) << art.status();
  EXPECT_EQ(art->manifest["certificate"]["target_met"], true);
  auto session = QuantizationSession::Open([&] {
    PipelineOptions p = o;
    p.output_dir = "";
    return p;
  }());
  ASSERT_TRUE(session.ok());
  auto base = LoadModel(o.model_path);
  ASSERT_TRUE(base.ok());
  auto bl = ComputeLogits(**base, (*session)->data().heldout);
  auto per = CompareModel(*art->model, (*session)->data().heldout, *bl, 1.0);
  ASSERT_TRUE(per.ok());
  auto rep = Summarize(*per, {1000, o.seed});
  EXPECT_DOUBLE_EQ(rep->ear.mean, c["heldout"]["ear"]["mean"].get<double>());
  fs::remove_all(o.output_dir);
}

TEST(PipelineTest, SearchMeetsTargetWithFewerBitsThanEight) {
  PipelineOptions o = TinyOptions();
  o.target = "ear>=0.97";
  o.formats = "4-8";
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->layers.size(), 14u);
  for (const auto& l : p->layers) {
    EXPECT_GT(l.kl.at(4), l.kl.at(8)) << l.name;
    EXPECT_GT(l.rel_err.at(4), 10 * l.rel_err.at(8)) << l.name;
  }
  auto a = (*s)->Search(*p);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->calibration_met) << a->note;
  EXPECT_LT(a->avg_bits, 8.5);
  EXPECT_GE(a->avg_bits, 4.5);
  EXPECT_FALSE(a->steps.empty());
  auto h = (*s)->Verify(a->bits);
  ASSERT_TRUE(h.ok());
  auto r = (*s)->Finish(*p, *a, *h);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->target_met, h->ear.lo >= 0.97);
  EXPECT_EQ(r->certificate["search"]["outcome"]["bits"].size(), 14u);
  // Stage outputs survive JSON.
  nlohmann::json pj = *p, aj = *a;
  EXPECT_EQ(pj.get<LayerProfiles>().layers[3].kl, p->layers[3].kl);
  EXPECT_EQ(aj.get<SearchOutcome>().bits, a->bits);
}

TEST(PipelineTest, ImpossibleTargetEndsUnreachableWithFailingArtifact) {
  PipelineOptions o = TinyOptions();
  o.target = "ear>=0.9999999";
  o.formats = "2-3";
  o.estimator = "proxy";
  o.closed_loop_max_evals = 4;
  o.output_dir = TmpDir("impossible");
  auto r = QuantizeModel(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->target_met);
  EXPECT_EQ(r->status.rfind("unreachable: best found EAR", 0), 0u) << r->status;
  auto m = ReadVerifiedManifest(o.output_dir);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)["certificate"]["target_met"], false);
  EXPECT_EQ((*m)["certificate"]["status"], r->status);
  fs::remove_all(o.output_dir);
}

// A held-out text of its own (JobSpec.eval_data): no split, every calibration document stays
// calibration and the held-out side is that text, named by its own sha256.
TEST(EvalDataTest, SeparateHeldoutTextIsNotASplit) {
  auto calib = ReadFile(testing::DataDir() + "/debian-docs-val-part1.txt");
  auto held = ReadFile(testing::DataDir() + "/tinystories-valid-part1.txt");
  ASSERT_TRUE(calib.ok() && held.ok());
  auto tok = Tokenizer::FromHfDir(testing::ModelsDir() + "/docs-19m");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EvalDataOptions o;
  o.max_calibration_sequences = 1000;
  o.max_heldout_sequences = 1000;
  auto split = PrepareEvalData(*calib, **tok, o);
  auto sep = PrepareEvalData(*calib, **tok, o, &*held);
  ASSERT_TRUE(split.ok() && sep.ok()) << sep.status();
  EXPECT_TRUE(split->heldout_sha256.empty());
  EXPECT_EQ(sep->data_sha256, split->data_sha256);
  EXPECT_EQ(sep->heldout_sha256, Sha256Hex(*held));
  EXPECT_EQ(sep->calibration_documents, 59);  // the whole calibration text
  EXPECT_GT(sep->calibration.size(), split->calibration.size());
  std::set<std::vector<int32_t>> split_held(split->heldout.begin(), split->heldout.end());
  for (const auto& w : sep->heldout) EXPECT_FALSE(split_held.count(w));  // other text entirely
}

TEST(PipelineTest, ClearErrorsForBadInput) {
  PipelineOptions o = TinyOptions();
  const std::string short_text = TmpDir("short.txt");
  ASSERT_TRUE(WriteFileAtomic(short_text, "Once upon a time.\nThe end.\n").ok());
  o.data_path = short_text;
  auto r = QuantizeModel(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("text too short"), std::string::npos) << r.status();
  fs::remove(short_text);
  o = TinyOptions();
  o.formats = "4-9";
  EXPECT_EQ(QuantizeModel(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = TinyOptions();
  o.target = "ppl<=3";
  EXPECT_EQ(QuantizeModel(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = TinyOptions();  // the job-spec contract: a budget below the smallest width + overhead is refused
  o.target = "bits<=4.1";
  o.formats = "4-8";
  EXPECT_NE(QuantizeModel(o).status().message().find("unreachable"), std::string::npos);
  o = TinyOptions();
  o.formats = "4,4";
  EXPECT_EQ(QuantizeModel(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = TinyOptions();
  o.model_path = "/nonexistent/model";
  EXPECT_FALSE(QuantizeModel(o).ok());
}

// The case the old closed loop got wrong: tinystories-656k, ear>=0.99 over 2..8 with the CLI's
// default data options. Accepting on the calibration 95% bound picked 7.958 bits and the
// held-out lower bound was 0.98971; accepting on the predicted held-out bound must certify on
// held-out, at fewer bits than uniform 8-bit asymmetric RTN (8.25 at g128).
TEST(PipelineTest, Tinystories656kEar099CertifiesOnHeldoutBelowUniformEight) {
  PipelineOptions o;
  o.model_path = testing::ModelsDir() + "/tinystories-656k";
  o.data_path = testing::DataDir() + "/tinystories-valid-part1.txt";
  o.target = "ear>=0.99";
  o.formats = "2..8";
  auto r = QuantizeModel(o);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& c = r->certificate;
  const double bits = c["avg_bits_per_param_quantized_layers"].get<double>();
  EXPECT_TRUE(r->target_met) << r->status << " at " << bits << " bits; held-out EAR " << c["heldout"]["ear"].dump();
  EXPECT_LT(bits, 8.25);
  EXPECT_EQ(c["search"]["outcome"]["damage_metric"], "kl");
  EXPECT_EQ(c["options"]["transfer_z"].get<double>(), 1.96);
  // The TL cloze is in every certificate; at ~8 bits the quantized model answers like the base.
  ASSERT_TRUE(c["heldout"].contains("task"));
  EXPECT_GT(c["heldout"]["task"]["items"].get<int64_t>(), 50);
  EXPECT_GT(c["heldout"]["task"]["acc_base"].get<double>(), 0.1);
  EXPECT_TRUE(c["heldout"]["task"]["tl_holds"].get<bool>());
}

TEST(ProfilerTest, ProxyAndCacheAgreeInOrdering) {
  PipelineOptions o = TinyOptions();
  o.formats = "3-4-8";
  o.profile_cache_dir = TmpDir("cache");
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok());
  auto p1 = (*s)->Profile();
  auto p2 = (*s)->Profile();
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(p1->cache_hits, 0);
  EXPECT_EQ(p2->cache_hits, 3);
  EXPECT_EQ(p2->layers[5].kl, p1->layers[5].kl);
  PipelineOptions op = o;
  op.estimator = "proxy";
  auto sp = QuantizationSession::Open(op);
  ASSERT_TRUE(sp.ok());
  auto pp = (*sp)->Profile();
  ASSERT_TRUE(pp.ok());
  EXPECT_EQ(pp->cache_hits, 0);
  // A second proxy profile is served from the cache (alphas + one file per bitwidth), equal.
  auto pp2 = (*sp)->Profile();
  ASSERT_TRUE(pp2.ok());
  EXPECT_EQ(pp2->cache_hits, 4);
  for (size_t i = 0; i < pp->layers.size(); ++i) {
    EXPECT_EQ(pp2->layers[i].alpha_kl, pp->layers[i].alpha_kl);
    EXPECT_EQ(pp2->layers[i].rel_err, pp->layers[i].rel_err);
  }
  // The proxy's total predicted KL at 3 and 4 bits is within an order of magnitude of the
  // measured one (linearity theorem), and both rank 3 bits worse than 4 bits.
  for (int b : {3, 4}) {
    double meas = 0, prox = 0;
    for (size_t i = 0; i < pp->layers.size(); ++i) {
      meas += p1->Damage(i, b, DamageMetric::kKl);
      prox += pp->Damage(i, b, DamageMetric::kKl);
      EXPECT_GT(pp->layers[i].alpha_kl, 0);
    }
    EXPECT_GT(prox, meas / 10) << b;
    EXPECT_LT(prox, meas * 10) << b;
  }
  fs::remove_all(o.profile_cache_dir);
}

}  // namespace
}  // namespace slq::quant

namespace slq::quant {
namespace {

// A session is reusable for options that need the same model, text and quantizer: Retarget
// takes the new target/formats; anything that would need another model is refused.
TEST(PipelineTest, RetargetReusesTheSessionAndRefusesAnotherModel) {
  PipelineOptions o = TinyOptions();
  o.target = "ear>=0.99";
  o.formats = "4-8";
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->eval_device(), "cpu");
  PipelineOptions b = o;
  b.target = "bits<=5";
  b.formats = "4,8";
  b.solver = "lagrangian";
  b.output_dir = "/nonexistent/elsewhere";
  EXPECT_EQ(QuantizationSession::ReuseKey(o), QuantizationSession::ReuseKey(b));
  ASSERT_TRUE((*s)->Retarget(b).ok());
  EXPECT_EQ((*s)->formats(), (std::vector<int>{4, 8}));
  EXPECT_EQ((*s)->options().output_dir, "/nonexistent/elsewhere");
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->bits, (std::vector<int>{4, 8}));
  auto a = (*s)->Search(*p);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_LE(a->avg_bits, 5.0 + 1e-9);  // the new target, not the session's first one
  PipelineOptions g = o;
  g.group_size = 128;  // another quantizer
  EXPECT_NE(QuantizationSession::ReuseKey(o), QuantizationSession::ReuseKey(g));
  EXPECT_EQ((*s)->Retarget(g).code(), absl::StatusCode::kFailedPrecondition);
  PipelineOptions bad = o;
  bad.target = "ear>=2";
  EXPECT_EQ((*s)->Retarget(bad).code(), absl::StatusCode::kInvalidArgument);
}

// The ModelQuantizer tells its observer of every change, and only of changes.
TEST(ModelQuantizerTest, ObserverSeesEveryChangeOnce) {
  auto m = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(m.ok()) << m.status();
  QuantConfig cfg;
  cfg.group_size = 64;
  ModelQuantizer mq(m->get(), cfg, false);
  ASSERT_TRUE(mq.Init().ok());
  std::vector<std::string> seen;
  mq.set_on_change([&](const std::string& name, const LinearOp& op) {
    seen.push_back(name + " " + op.Describe());
    return absl::OkStatus();
  });
  const std::string slot = mq.slots()[0].name;
  ASSERT_TRUE(mq.SetBits(slot, 4).ok());
  ASSERT_TRUE(mq.SetBits(slot, 4).ok());  // no change
  ASSERT_TRUE(mq.SetBits(slot, 8).ok());
  ASSERT_TRUE(mq.Restore(slot).ok());
  ASSERT_TRUE(mq.Restore(slot).ok());  // already dense
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_NE(seen[0].find("q4"), std::string::npos) << seen[0];
  EXPECT_NE(seen[1].find("q8"), std::string::npos) << seen[1];
  EXPECT_NE(seen[2].find("dense"), std::string::npos) << seen[2];
  mq.set_on_change([](const std::string&, const LinearOp&) { return absl::InternalError("mirror is gone"); });
  EXPECT_EQ(mq.SetBits(slot, 4).code(), absl::StatusCode::kInternal);  // the caller hears of it
}

}  // namespace
}  // namespace slq::quant

namespace slq::quant {
namespace {

// --quantizers: uniform 4 bits with GPTQ records gptq on every layer and, on held-out text, has
// less KL than uniform 4-bit RTN; a search over rtn,gptq profiles both roundings of each width.
TEST(PipelineTest, QuantizersOptionReachesTheCertificate) {
  PipelineOptions o = TinyOptions();
  o.uniform_bits = 4;
  o.target = "kl<=10";
  double kl[2];
  for (int i = 0; i < 2; ++i) {
    o.quantizers = i == 0 ? "rtn" : "gptq";
    auto r = QuantizeModel(o);
    ASSERT_TRUE(r.ok()) << r.status();
    kl[i] = r->certificate["heldout"]["kl"]["mean"].get<double>();
    EXPECT_EQ(r->certificate["options"]["quantizers"], o.quantizers);
    for (auto& [name, l] : r->certificate["layers"].items()) {
      if (l["quantized"] == true) EXPECT_EQ(l["quantizer"], o.quantizers) << name;
    }
    EXPECT_NEAR(r->certificate["avg_bits_per_param_quantized_layers"].get<double>(), 4.5, 1e-9);  // g = 64
  }
  EXPECT_LT(kl[1], kl[0]);
  o.uniform_bits = 0;
  o.quantizers = "rtn,gptq";
  o.formats = "4,8";
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->bits, (std::vector<int>{4, 8, EncodeChoice(4, Rounding::kGptq), EncodeChoice(8, Rounding::kGptq)}));
  o.quantizers = "rtn,awq";
  EXPECT_EQ(QuantizationSession::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.quantizers = "gptq";
  o.rotate = true;
  EXPECT_EQ(QuantizationSession::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
}

// The certificate's search outcome names widths under "bits" and keeps the choice codes (width +
// rounding) under "choices" only when a layer is not plain RTN; both round-trip exactly.
TEST(PipelineTest, SearchOutcomeJsonNamesWidthsAndKeepsChoices) {
  SearchOutcome s;
  s.bits = {{"a", 4}, {"b", EncodeChoice(5, Rounding::kGptq)}, {"c", 16}, {"d", EncodeChoice(3, Rounding::kMse)}};
  s.avg_bits = 4.4;
  nlohmann::json j = s;
  EXPECT_EQ(j["bits"], (nlohmann::json{{"a", 4}, {"b", 5}, {"c", 16}, {"d", 3}}));
  EXPECT_EQ(j["choices"]["b"], EncodeChoice(5, Rounding::kGptq));
  EXPECT_EQ(j.get<SearchOutcome>().bits, s.bits);
  s.bits = {{"a", 4}, {"c", 16}};
  j = s;
  EXPECT_FALSE(j.contains("choices"));
  EXPECT_EQ(j.get<SearchOutcome>().bits, s.bits);
}

// The proxy scales RTN's weight error by the output-error ratio: gptq (fitted on these inputs)
// predicts less damage than RTN at the same width on every layer.
TEST(ProfilerTest, ProxyRanksGptqBelowRtnAtEqualWidth) {
  PipelineOptions o = TinyOptions();
  o.estimator = "proxy";
  o.quantizers = "rtn,gptq";
  o.formats = "4,8";
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  for (size_t i = 0; i < p->layers.size(); ++i) {
    for (int b : {4, 8}) {
      EXPECT_LT(p->layers[i].rel_err.at(EncodeChoice(b, Rounding::kGptq)), p->layers[i].rel_err.at(b))
          << p->layers[i].name;
      EXPECT_LT(p->Damage(i, EncodeChoice(b, Rounding::kGptq), DamageMetric::kKl), p->Damage(i, b, DamageMetric::kKl));
    }
  }
}

}  // namespace
}  // namespace slq::quant
