#include "server/quant/pipeline.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"
#include "server/quant/artifact.h"
#include "server/quant/choice.h"
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
  // The TL cloze is in every certificate, with its power: this text's 110 items detect only a
  // ~0.12 difference, so the verdict is inconclusive (information; the target is EAR).
  ASSERT_TRUE(c["heldout"].contains("task"));
  const auto& t = c["heldout"]["task"];
  EXPECT_GT(t["items"].get<int64_t>(), 50);
  EXPECT_EQ(t["items"], t["items_in_text"]);  // the whole text's items (fewer than the 2000 wanted)
  EXPECT_GT(t["acc_base"].get<double>(), 0.1);
  EXPECT_GT(t["min_detectable_diff"].get<double>(), 0.05);
  EXPECT_GT(t["items_for_5pt"].get<int64_t>(), t["items"].get<int64_t>());
  EXPECT_FALSE(t["tl_holds"].get<bool>());
  EXPECT_EQ(t["verdict"], "inconclusive: too few items");
}

// A tl target is refused before profiling when the cloze cannot detect a 5-point difference
// with 80% power; the error names the items, the items needed and the text to add.
TEST(PipelineTest, TlTargetRefusedWithoutPower) {
  PipelineOptions o;
  o.model_path = testing::ModelsDir() + "/tinystories-656k";
  o.data_path = testing::DataDir() + "/tinystories-valid-part1.txt";  // 10 KB: 110 items
  o.target = "tl";
  std::vector<std::string> stages;
  auto s = QuantizationSession::Open(o, [&](const std::string& stage, double) { stages.push_back(stage); });
  ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
  const std::string m(s.status().message());
  EXPECT_NE(m.find("the task-lossless cloze has 110 items"), std::string::npos) << m;
  EXPECT_NE(m.find("needs >= 636 items"), std::string::npos) << m;  // 7.848880 x 0.2818 x 0.7182 / 0.0025
  EXPECT_NE(m.find("KB more held-out text"), std::string::npos) << m;
  EXPECT_NE(m.find("--eval"), std::string::npos) << m;
  EXPECT_EQ(std::count(stages.begin(), stages.end(), "profile"), 0);
  // Turned off: refused too.
  o.cloze_max_items = 0;
  EXPECT_NE(QuantizationSession::Open(o).status().message().find("turned off"), std::string::npos);
  // Another target on the same text runs, and a reused session refuses tl the same way.
  o.cloze_max_items = 2000;
  o.target = "ear>=0.99";
  auto ok = QuantizationSession::Open(o);
  ASSERT_TRUE(ok.ok()) << ok.status();
  PipelineOptions tl = o;
  tl.target = "tl<=0.02";
  const absl::Status r = (*ok)->Retarget(tl);
  EXPECT_EQ(r.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.message().find("needs >= 636 items"), std::string::npos) << r.message();
  EXPECT_EQ((*ok)->target().kind, Target::Kind::kEar);  // unchanged
}

// A held-out text in another domain: enough items, but the base model completes almost none,
// so a 5-point loss cannot show: refused, saying so.
TEST(PipelineTest, TlTargetRefusedWhenTheBaseModelCannotDoTheTask) {
  PipelineOptions o;
  o.model_path = testing::ModelsDir() + "/tinystories-656k";
  o.data_path = testing::DataDir() + "/tinystories-valid-part1.txt";
  o.heldout_path = testing::DataDir() + "/debian-docs-val-part1.txt";
  o.target = "tl";
  o.uniform_bits = 8;
  o.cloze_max_items = 300;
  auto s = QuantizationSession::Open(o);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
  EXPECT_NE(s.status().message().find("cannot show both ways"), std::string::npos) << s.status();
}

// docs-19m on debian-docs (2239 held-out items): too few items asked for -> the error says how
// many to allow.
TEST(PipelineTest, TlTargetAsksForMoreItemsWhenTheTextHasThem) {
  PipelineOptions o;
  o.model_path = testing::ModelsDir() + "/docs-19m";
  o.data_path = testing::DataDir() + "/debian-docs-val-part1.txt";
  o.target = "tl";
  o.uniform_bits = 8;
  o.data.max_calibration_sequences = 4;
  o.data.max_heldout_sequences = 8;
  o.cloze_max_items = 150;
  auto few = QuantizationSession::Open(o);
  ASSERT_EQ(few.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(few.status().message().find("The held-out text has 2239 items: allow >= "), std::string::npos)
      << few.status();
  // The run with enough items: pipeline_slow_test.cc (PipelineSlowTest.Docs19mTlTarget).
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
  // The relative weight error is served from the cache too (its third entry), equal.
  for (size_t i = 0; i < p1->layers.size(); ++i) {
    EXPECT_EQ(p2->layers[i].rel_err, p1->layers[i].rel_err) << i;
    EXPECT_EQ(p1->layers[i].rel_err.size(), 3u) << i;
  }
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
      if (l["quantized"] == true) {
        EXPECT_EQ(l["quantizer"], o.quantizers) << name;
      }
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

// --symmetry both --group-sizes 64,128: the profile measures every width x symmetry x group,
// the search charges each its exact bits, and the artifact's manifest records each layer's
// variant as the certificate names it; the loader reads it back bit-exactly and reproduces the
// certified held-out numbers.
TEST(PipelineTest, SearchChoosesSymmetryAndGroupPerLayerAndTheArtifactKeepsThem) {
  PipelineOptions o = TinyOptions();
  o.group_size = 128;
  o.symmetry = "both";
  o.group_sizes = "64,128";
  o.formats = "4,8";
  o.target = "bits<=5";
  o.output_dir = TmpDir("variants");
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  // Base variant (asym g128) first, with the codes of the width-only search.
  const ChoiceBase base{false, 128};
  std::vector<int> want;
  for (bool sym : {false, true}) {
    for (int64_t g : {128, 64}) {
      for (int b : {4, 8}) want.push_back(*EncodeChoice(Choice{b, Rounding::kRtn, sym, g}, base));
    }
  }
  EXPECT_EQ(p->bits, want);
  EXPECT_EQ(p->bits[0], 4);
  EXPECT_EQ(p->bits[1], 8);
  auto a = (*s)->Search(*p);
  ASSERT_TRUE(a.ok()) << a.status();
  auto h = (*s)->Verify(a->bits);
  ASSERT_TRUE(h.ok()) << h.status();
  auto r = (*s)->Finish(*p, *a, *h);
  ASSERT_TRUE(r.ok()) << r.status();
  const nlohmann::json& outcome = r->certificate["search"]["outcome"];
  ASSERT_TRUE(outcome.contains("variants")) << outcome.dump();
  auto art = LoadArtifact(o.output_dir);
  ASSERT_TRUE(art.ok()) << art.status();
  const nlohmann::json& linears = art->manifest["linears"];
  std::map<std::string, const LinearOp*> loaded;
  for (const LinearSlot& sl : art->model->LinearSlots()) loaded[sl.name] = sl.op->get();
  std::set<std::string> names;
  double num = 0, den = 0;
  for (const auto& [name, code] : a->bits) {
    auto c = DecodeChoice(code, base);
    ASSERT_TRUE(c.ok()) << c.status();
    names.insert(c->Name());
    EXPECT_EQ(outcome["variants"][name], c->Name());
    EXPECT_EQ(outcome["choices"][name], code);
    const nlohmann::json& l = linears.at(name);
    EXPECT_EQ(l["bits"], c->bits) << name;
    EXPECT_EQ(l["symmetric"], c->symmetric) << name;
    EXPECT_EQ(l["group_size"], c->group_size) << name;
    EXPECT_DOUBLE_EQ(l["bits_per_param"].get<double>(),
                     c->BitsPerParam(l["rows"].get<int64_t>(), l["cols"].get<int64_t>()))
        << name;
    const PackedLinear* q = loaded.at(name)->packed();
    ASSERT_NE(q, nullptr) << name;
    EXPECT_EQ(q->view.group_size, c->group_size) << name;
    EXPECT_EQ(q->view.symmetric, c->symmetric) << name;
    const double params = l["rows"].get<double>() * l["cols"].get<double>();
    num += params * c->BitsPerParam(l["rows"].get<int64_t>(), l["cols"].get<int64_t>());
    den += params;
  }
  // The search used more than the base variant here (measured: the budget takes symmetric
  // and/or g64 layers), and its bits are the layers' exact ones.
  EXPECT_GT(names.size(), 1u);
  EXPECT_TRUE(std::any_of(a->bits.begin(), a->bits.end(), [](const auto& kv) { return kv.second >= 64; }));
  EXPECT_NEAR(a->avg_bits, num / den, 1e-12);
  EXPECT_LE(a->avg_bits, 5 + 1e-9);
  // The loaded artifact reproduces the certified held-out EAR.
  auto session = QuantizationSession::Open([&] {
    PipelineOptions q = o;
    q.output_dir = "";
    return q;
  }());
  ASSERT_TRUE(session.ok());
  auto dense = LoadModel(o.model_path);
  ASSERT_TRUE(dense.ok());
  auto bl = ComputeLogits(**dense, (*session)->data().heldout);
  auto per = CompareModel(*art->model, (*session)->data().heldout, *bl, 1.0);
  ASSERT_TRUE(per.ok());
  auto rep = Summarize(*per, {1000, o.seed});
  EXPECT_DOUBLE_EQ(rep->ear.mean, r->certificate["heldout"]["ear"]["mean"].get<double>());
  // The outcome (codes + names) round-trips through JSON.
  nlohmann::json aj = *a;
  EXPECT_EQ(aj.get<SearchOutcome>().bits, a->bits);
  EXPECT_EQ(aj.get<SearchOutcome>().variants, a->variants);
  fs::remove_all(o.output_dir);
}

// A group size >= a layer's width quantizes it like per-row groups: the profile measures such
// twins once (tinystories-656k: 12 of 14 layers have 128 input columns, down_proj 384).
TEST(ProfilerTest, ChoicesWithIdenticalWeightsAreMeasuredOnce) {
  PipelineOptions o = TinyOptions();
  o.group_size = 128;
  o.group_sizes = "128,-1";
  o.formats = "4";
  o.target = "bits<=6";
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  const int row = *EncodeChoice(Choice{4, Rounding::kRtn, false, -1}, {false, 128});
  ASSERT_EQ(p->bits, (std::vector<int>{4, row}));
  int narrow = 0;
  for (const LayerProfile& l : p->layers) {
    if (l.cols == 128) {
      ++narrow;
      EXPECT_EQ(l.kl.at(row), l.kl.at(4)) << l.name;
      EXPECT_EQ(l.one_minus_ear.at(row), l.one_minus_ear.at(4)) << l.name;
    } else {
      EXPECT_NE(l.kl.at(row), l.kl.at(4)) << l.name;  // 384 columns: 3 groups vs 1
    }
  }
  EXPECT_EQ(narrow, 12);
  EXPECT_EQ(p->twins, narrow);
}

// The defaults are the width-only search: spelling the base variant out (asym, the one group)
// changes nothing, bit for bit; bad variant options are refused naming the fix.
TEST(PipelineTest, DefaultVariantsAreTheWidthOnlySearch) {
  PipelineOptions o = TinyOptions();
  o.formats = "4,8";
  o.target = "bits<=6";
  auto run = [](const PipelineOptions& x) { return QuantizeModel(x); };
  auto plain = run(o);
  ASSERT_TRUE(plain.ok()) << plain.status();
  PipelineOptions spelled = o;
  spelled.symmetry = "asym";
  spelled.group_sizes = "64";
  auto same = run(spelled);
  ASSERT_TRUE(same.ok()) << same.status();
  const nlohmann::json &a = plain->certificate, &b = same->certificate;
  EXPECT_EQ(a["search"]["outcome"]["bits"], b["search"]["outcome"]["bits"]);
  EXPECT_FALSE(a["search"]["outcome"].contains("choices"));
  EXPECT_FALSE(a["search"]["outcome"].contains("variants"));
  EXPECT_EQ(a["heldout"], b["heldout"]);
  EXPECT_EQ(a["layers"], b["layers"]);
  // --symmetric and symmetry "sym" are the same run.
  PipelineOptions sym = o, sym2 = o;
  sym.symmetric = true;
  sym2.symmetry = "sym";
  auto s1 = run(sym), s2 = run(sym2);
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_EQ(s1->certificate["heldout"], s2->certificate["heldout"]);
  EXPECT_EQ(s1->certificate["layers"], s2->certificate["layers"]);
  PipelineOptions bad = o;
  bad.group_sizes = "32,128";  // lacks the base group 64
  auto e = QuantizationSession::Open(bad);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("does not contain group_size 64"), std::string::npos) << e.status();
  bad = o;
  bad.symmetry = "asym";
  bad.symmetric = true;
  EXPECT_EQ(QuantizationSession::Open(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = o;
  bad.symmetry = "mixed";
  EXPECT_EQ(QuantizationSession::Open(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// --grids both: the profile measures each asymmetric candidate and its grid twin (codes + 1024,
// after the uniform ones), the search charges the grid index exactly, and the certificate names
// the grid layers; --grids on offers the grid twins alone, and a uniform baseline with it puts
// every layer on grids. Bad values are refused naming the fix.
TEST(PipelineTest, SearchChoosesGridsPerLayerAndChargesTheirIndex) {
  PipelineOptions o = TinyOptions();
  o.formats = "3,4";
  o.target = "bits<=3.8";
  o.grids = "both";
  o.output_dir = TmpDir("grids");
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->bits, (std::vector<int>{3, 4, 3 + kChoiceGrid, 4 + kChoiceGrid}));
  auto a = (*s)->Search(*p);
  ASSERT_TRUE(a.ok()) << a.status();
  const ChoiceBase base = (*s)->choice_base();
  int grid_layers = 0;
  double num = 0, den = 0;
  for (const auto& [name, code] : a->bits) {
    auto c = DecodeChoice(code, base);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(a->variants.at(name), c->Name());
    if (c->grids) {
      ++grid_layers;
      EXPECT_NE(c->Name().find(" grid"), std::string::npos);
    }
  }
  for (const LayerProfile& l : p->layers) {
    const int code = a->bits.at(l.name);
    const double params = static_cast<double>(l.rows * l.cols);
    num += params * DecodeChoice(code, base)->BitsPerParam(l.rows, l.cols);
    den += params;
    // Same width: the grid twin is charged 2 bits per group more (g64).
    EXPECT_DOUBLE_EQ(DecodeChoice(4 + kChoiceGrid, base)->BitsPerParam(l.rows, l.cols),
                     DecodeChoice(4, base)->BitsPerParam(l.rows, l.cols) + 2.0 * ((l.cols + 63) / 64) / l.cols);
  }
  EXPECT_NEAR(a->avg_bits, num / den, 1e-12);
  EXPECT_LE(a->avg_bits, 3.8 + 1e-9);
  // Measured: at this budget the search takes grids on some layers (they cut RTN's weight error
  // at 3 and 4 bits for 2 bits per 64 weights).
  EXPECT_GT(grid_layers, 0);
  // The grid twins' measured KL is below the uniform one's on (nearly) every layer (measured:
  // 14 of 14 at 3 and at 4 bits, 0.67-0.91x): the forward pass runs the grids the profile chose.
  int lower = 0;
  for (const LayerProfile& l : p->layers) {
    lower += l.kl.at(3 + kChoiceGrid) < l.kl.at(3);
    lower += l.kl.at(4 + kChoiceGrid) < l.kl.at(4);
  }
  EXPECT_GE(lower, 24) << "of " << 2 * p->layers.size();
  nlohmann::json aj = *a;
  EXPECT_EQ(aj.get<SearchOutcome>().bits, a->bits);
  EXPECT_EQ(aj.get<SearchOutcome>().variants, a->variants);
  // The artifact records each layer's grids as the certificate names them, and the loaded model
  // reproduces the certified held-out EAR.
  auto h = (*s)->Verify(a->bits);
  ASSERT_TRUE(h.ok()) << h.status();
  auto fin = (*s)->Finish(*p, *a, *h);
  ASSERT_TRUE(fin.ok()) << fin.status();
  auto art = LoadArtifact(o.output_dir);
  ASSERT_TRUE(art.ok()) << art.status();
  for (const auto& [name, code] : a->bits) {
    EXPECT_EQ(art->manifest["linears"].at(name)["grids"], ChoiceGrids(code)) << name;
    EXPECT_EQ(fin->certificate["search"]["outcome"]["variants"][name], a->variants.at(name));
  }
  auto dense = LoadModel(o.model_path);
  ASSERT_TRUE(dense.ok());
  auto base_logits = ComputeLogits(**dense, (*s)->data().heldout);
  auto per = CompareModel(*art->model, (*s)->data().heldout, *base_logits, 1.0);
  ASSERT_TRUE(per.ok());
  auto rep = Summarize(*per, {1000, o.seed});
  EXPECT_DOUBLE_EQ(rep->ear.mean, fin->certificate["heldout"]["ear"]["mean"].get<double>());
  fs::remove_all(o.output_dir);
  // "on": the grid twins replace the uniform candidates; the uniform baseline is on grids too.
  PipelineOptions on = o;
  on.output_dir = "";
  on.grids = "on";
  on.target = "bits<=4.6";
  auto son = QuantizationSession::Open(on);
  ASSERT_TRUE(son.ok()) << son.status();
  auto pon = (*son)->Profile();
  ASSERT_TRUE(pon.ok()) << pon.status();
  EXPECT_EQ(pon->bits, (std::vector<int>{3 + kChoiceGrid, 4 + kChoiceGrid}));
  for (const LayerProfile& l : pon->layers) {  // the same (deterministic) measurement as in "both"
    const size_t i = &l - pon->layers.data();
    EXPECT_EQ(l.kl.at(4 + kChoiceGrid), p->layers[i].kl.at(4 + kChoiceGrid)) << l.name;
  }
  PipelineOptions uni = on;
  uni.uniform_bits = 4;
  auto r = QuantizeModel(uni);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& [name, v] : r->certificate["search"]["outcome"]["variants"].items()) {
    EXPECT_EQ(v, "rtn4 asym g64 grid") << name;
  }
  // Refused, naming the fix.
  PipelineOptions bad = o;
  bad.grids = "sometimes";
  auto e = QuantizationSession::Open(bad);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("not one of off, on, both"), std::string::npos) << e.status();
  bad = o;
  bad.grids = "on";
  bad.symmetric = true;
  e = QuantizationSession::Open(bad);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("needs asymmetric scales"), std::string::npos) << e.status();
  bad = o;
  bad.cloze_max_items = -1;
  EXPECT_EQ(QuantizationSession::Open(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// S8 scales in the search: "both" offers each candidate's s8 twin, charged its exact bits (an
// 8-bit code + a width-bit zero-point per group and the 32-bit base per matrix instead of 32
// bits per group), the knapsack at a tight budget takes s8 on some layers, the certificate names
// them, the manifest records each layer's "scales", and the artifact's model reproduces the
// certified held-out EAR. With --group-sizes
// 64,128 all four (group, scales) combinations are offered. "s8" alone replaces fp16 (also in a
// uniform baseline). A budget between the shape-free floor and the exact one (the s8 base) is
// refused at Open, naming the exact floor; s8 with rotate is refused.
TEST(PipelineTest, SearchChoosesS8ScalesPerLayerAndChargesThemExactly) {
  PipelineOptions o = TinyOptions();
  o.formats = "3,4";
  o.target = "bits<=3.6";
  o.scales = "both";
  o.output_dir = TmpDir("s8");
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->bits, (std::vector<int>{3, 4, 3 + kChoiceS8, 4 + kChoiceS8}));
  auto a = (*s)->Search(*p);
  ASSERT_TRUE(a.ok()) << a.status();
  const ChoiceBase base = (*s)->choice_base();
  int s8_layers = 0;
  double num = 0, den = 0;
  for (const LayerProfile& l : p->layers) {
    const int code = a->bits.at(l.name);
    auto c = DecodeChoice(code, base);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(a->variants.at(l.name), c->Name());
    if (c->s8) {
      ++s8_layers;
      EXPECT_NE(c->Name().find(" s8"), std::string::npos);
    }
    const double params = static_cast<double>(l.rows * l.cols);
    num += params * c->BitsPerParam(l.rows, l.cols);
    den += params;
    const double groups = static_cast<double>((l.cols + 63) / 64);
    EXPECT_DOUBLE_EQ(DecodeChoice(4 + kChoiceS8, base)->BitsPerParam(l.rows, l.cols),
                     4 + 12.0 * groups / l.cols + 32.0 / params);
    EXPECT_DOUBLE_EQ(DecodeChoice(4, base)->BitsPerParam(l.rows, l.cols), 4 + 32.0 * groups / l.cols);
  }
  EXPECT_NEAR(a->avg_bits, num / den, 1e-12);
  EXPECT_LE(a->avg_bits, 3.6 + 1e-9);
  // At 3.6 bits fp16 g64 affords 3.5-bit layers almost everywhere; s8 leaves room for 4 bits.
  EXPECT_GT(s8_layers, 0);
  auto h = (*s)->Verify(a->bits);
  ASSERT_TRUE(h.ok()) << h.status();
  auto fin = (*s)->Finish(*p, *a, *h);
  ASSERT_TRUE(fin.ok()) << fin.status();
  for (const auto& [name, v] : a->variants) {
    EXPECT_EQ(fin->certificate["search"]["outcome"]["variants"][name], v) << name;
  }
  EXPECT_EQ(fin->certificate["options"]["scales"], "both");
  auto art = LoadArtifact(o.output_dir);
  ASSERT_TRUE(art.ok()) << art.status();
  for (const auto& [name, code] : a->bits) {  // the manifest records each layer's scales
    EXPECT_EQ(art->manifest["linears"].at(name)["scales"], ChoiceS8(code) ? "s8" : "fp16") << name;
  }
  auto dense = LoadModel(o.model_path);
  ASSERT_TRUE(dense.ok());
  auto base_logits = ComputeLogits(**dense, (*s)->data().heldout);
  auto per = CompareModel(*art->model, (*s)->data().heldout, *base_logits, 1.0);
  ASSERT_TRUE(per.ok());
  EXPECT_DOUBLE_EQ(Summarize(*per, {1000, o.seed})->ear.mean, fin->certificate["heldout"]["ear"]["mean"].get<double>());
  fs::remove_all(o.output_dir);
  // Both group sizes x both scales: four candidates per width, the base (g64 fp16) first.
  PipelineOptions four = o;
  four.output_dir = "";
  four.formats = "4";
  four.target = "bits<=4.3";
  four.group_sizes = "64,128";
  auto s4 = QuantizationSession::Open(four);
  ASSERT_TRUE(s4.ok()) << s4.status();
  auto p4 = (*s4)->Profile();
  ASSERT_TRUE(p4.ok()) << p4.status();
  const int g128 = *EncodeChoice(Choice{4, Rounding::kRtn, false, 128}, base);
  EXPECT_EQ(p4->bits, (std::vector<int>{4, 4 + kChoiceS8, g128, g128 + kChoiceS8}));
  // "s8": the twins replace fp16; a uniform baseline is s8 too.
  PipelineOptions uni = four;
  uni.group_sizes = "";
  uni.scales = "s8";
  uni.uniform_bits = 4;
  auto r = QuantizeModel(uni);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& [name, v] : r->certificate["search"]["outcome"]["variants"].items()) {
    EXPECT_EQ(v, "rtn4 asym g64 s8") << name;
  }
  // bits<=X at the shape-free floor (4 + 12/64) passes spec validation but not the exact floor,
  // which adds the 32-bit base of every matrix: refused before any profiling, naming the floor.
  PipelineOptions tight = uni;
  tight.uniform_bits = 0;
  tight.target = "bits<=4.1875";
  auto e = QuantizationSession::Open(tight);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("raise the budget to at least 4.18"), std::string::npos) << e.status();
  tight.target = "bits<=4.19";  // above the exact floor (the base adds < 0.001 here)
  EXPECT_TRUE(QuantizationSession::Open(tight).ok());
  PipelineOptions bad = o;
  bad.scales = "s4";
  e = QuantizationSession::Open(bad);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("not one of fp16, s8, both"), std::string::npos) << e.status();
  bad = o;
  bad.quantizers = "rtn";
  bad.rotate = true;
  e = QuantizationSession::Open(bad);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("cannot be combined with rotate"), std::string::npos) << e.status();
}

// The proxy handles grid candidates: each grid twin's relative weight error is RTN's on grids
// (never above the uniform grid's per group at the same scale and zero), and gptq on grids is
// scaled by its output-error ratio like gptq: it ranks below rtn on grids on every layer.
TEST(ProfilerTest, ProxyHandlesGridCandidates) {
  PipelineOptions o = TinyOptions();
  o.estimator = "proxy";
  o.quantizers = "rtn,gptq";
  o.formats = "4";
  o.grids = "both";
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  const int rtn = 4, rtn_grid = 4 + kChoiceGrid, gptq_grid = EncodeChoice(4, Rounding::kGptq) + kChoiceGrid;
  ASSERT_NE(std::find(p->bits.begin(), p->bits.end(), gptq_grid), p->bits.end());
  for (size_t i = 0; i < p->layers.size(); ++i) {
    const LayerProfile& l = p->layers[i];
    EXPECT_LT(l.rel_err.at(rtn_grid), l.rel_err.at(rtn)) << l.name;
    EXPECT_LT(l.rel_err.at(gptq_grid), l.rel_err.at(rtn_grid)) << l.name;
    EXPECT_LT(p->Damage(i, rtn_grid, DamageMetric::kKl), p->Damage(i, rtn, DamageMetric::kKl)) << l.name;
  }
}

// The proxy handles s8 candidates: each s8 twin's relative weight error is RTN's in s8 scales
// (summed over the layers, s8 at g64 stays below fp16 at g128, as the seam measured: 0.785x),
// and gptq in s8 is scaled by its output-error ratio: it ranks below rtn in s8 on every layer.
TEST(ProfilerTest, ProxyHandlesS8Candidates) {
  PipelineOptions o = TinyOptions();  // base g64
  o.estimator = "proxy";
  o.quantizers = "rtn,gptq";
  o.formats = "4";
  o.group_sizes = "64,128";
  o.scales = "both";
  auto s = QuantizationSession::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto p = (*s)->Profile();
  ASSERT_TRUE(p.ok()) << p.status();
  const ChoiceBase base = (*s)->choice_base();
  const int rtn_s8 = 4 + kChoiceS8, gptq_s8 = EncodeChoice(4, Rounding::kGptq) + kChoiceS8;
  const int rtn_g128 = *EncodeChoice(Choice{4, Rounding::kRtn, false, 128}, base);
  ASSERT_EQ(p->bits.size(), 8u);  // {rtn, gptq} x {g64, g128} x {fp16, s8}
  double s8_g64 = 0, fp16_g128 = 0;
  for (size_t i = 0; i < p->layers.size(); ++i) {
    const LayerProfile& l = p->layers[i];
    EXPECT_GT(l.rel_err.at(rtn_s8), 0) << l.name;
    EXPECT_LT(l.rel_err.at(gptq_s8), l.rel_err.at(rtn_s8)) << l.name;
    EXPECT_LT(p->Damage(i, gptq_s8, DamageMetric::kKl), p->Damage(i, rtn_s8, DamageMetric::kKl)) << l.name;
    const double params = static_cast<double>(l.rows * l.cols);
    s8_g64 += params * l.rel_err.at(rtn_s8);
    fp16_g128 += params * l.rel_err.at(rtn_g128);
  }
  EXPECT_LT(s8_g64, 0.9 * fp16_g128);
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
