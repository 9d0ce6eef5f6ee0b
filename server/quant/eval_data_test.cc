// Tests of the Gram windows (eval_data.h AddGramWindows): never a calibration or held-out
// window, never from a document a calibration window comes from, and RTN-only data unchanged.
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/common/test_paths.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/eval_data.h"
#include "server/quant/pipeline.h"

namespace slq::quant {
namespace {

using Windows = std::vector<std::vector<int32_t>>;

std::unique_ptr<Tokenizer> Tok(const std::string& model) {
  auto tok = Tokenizer::FromHfDir(testing::ModelsDir() + "/" + model);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

std::string Text(const std::string& name) {
  auto t = ReadFile(testing::DataDir() + "/" + name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : std::string();
}

// No window of `a` equals a window of `b`.
void ExpectNoCommonWindow(const Windows& a, const Windows& b) {
  std::set<std::vector<int32_t>> sb(b.begin(), b.end());
  for (const auto& w : a) EXPECT_FALSE(sb.count(w));
}

// Large text: the Gram windows come from calibration-side documents without calibration
// windows; calibration and held-out stay exactly what PrepareEvalData made.
TEST(GramWindowsTest, LargeTextIsDisjointAndLeavesCalibrationUnchanged) {
  auto tok = Tok("docs-19m");
  ASSERT_TRUE(tok);
  const std::string text = Text("debian-docs-val-part1.txt");
  const EvalDataOptions o;
  auto base = PrepareEvalData(text, *tok, o);
  ASSERT_TRUE(base.ok()) << base.status();
  EvalData d = *base;
  ASSERT_TRUE(AddGramWindows(text, *tok, o, GramDataOptions{}, &d).ok());
  EXPECT_EQ(d.gram_scheme, "disjoint");
  EXPECT_EQ(d.calibration, base->calibration);
  EXPECT_EQ(d.heldout, base->heldout);
  EXPECT_GE(static_cast<int64_t>(d.gram.size()), GramDataOptions{}.min_disjoint_sequences);
  EXPECT_LE(static_cast<int64_t>(d.gram.size()), GramDataOptions{}.max_sequences);
  int64_t tokens = 0;
  for (const auto& w : d.gram) tokens += static_cast<int64_t>(w.size());
  EXPECT_EQ(d.GramTokens(), tokens);
  ExpectNoCommonWindow(d.gram, d.calibration);
  ExpectNoCommonWindow(d.gram, d.heldout);
  std::set<std::vector<int32_t>> distinct(d.gram.begin(), d.gram.end());
  EXPECT_EQ(distinct.size(), d.gram.size());
  // Fewer allowed: exactly that many, all of them among the ones above (evenly spaced).
  EvalData fewer = *base;
  ASSERT_TRUE(AddGramWindows(text, *tok, o, GramDataOptions{.max_sequences = 50}, &fewer).ok());
  EXPECT_EQ(fewer.gram.size(), 50u);
  std::set<std::vector<int32_t>> all(d.gram.begin(), d.gram.end());
  if (d.gram.size() < static_cast<size_t>(GramDataOptions{}.max_sequences)) {  // d holds every candidate
    for (const auto& w : fewer.gram) EXPECT_TRUE(all.count(w));
  }
  // Deterministic, and refused twice.
  EvalData again = *base;
  ASSERT_TRUE(AddGramWindows(text, *tok, o, GramDataOptions{}, &again).ok());
  EXPECT_EQ(again.gram, d.gram);
  EXPECT_EQ(AddGramWindows(text, *tok, o, GramDataOptions{}, &again).code(), absl::StatusCode::kInvalidArgument);
  // The JSON round trip keeps them; data without Gram windows writes no Gram keys.
  nlohmann::json j = d;
  EXPECT_EQ(j.get<EvalData>().gram, d.gram);
  EXPECT_FALSE(nlohmann::json(*base).contains("gram"));
}

// Small text (tinystories-valid-part1: every calibration-side document holds calibration
// windows): the calibration windows are split by document; the Gram takes no calibration window
// that is still measured and the held-out side is untouched.
TEST(GramWindowsTest, SmallTextSplitsTheCalibrationWindowsByDocument) {
  auto tok = Tok("tinystories-656k");
  ASSERT_TRUE(tok);
  const std::string text = Text("tinystories-valid-part1.txt");
  const EvalDataOptions o;
  auto base = PrepareEvalData(text, *tok, o);
  ASSERT_TRUE(base.ok()) << base.status();
  EvalData d = *base;
  ASSERT_TRUE(AddGramWindows(text, *tok, o, GramDataOptions{}, &d).ok());
  EXPECT_EQ(d.gram_scheme, "split-calibration");
  EXPECT_EQ(d.heldout, base->heldout);
  EXPECT_GE(static_cast<int64_t>(d.calibration.size()), o.min_sequences);
  EXPECT_FALSE(d.gram.empty());
  ExpectNoCommonWindow(d.gram, d.calibration);
  ExpectNoCommonWindow(d.gram, d.heldout);
  // Every window still measured was a calibration window; together with the Gram's share they
  // are all of them (no left-out windows on this text).
  std::set<std::vector<int32_t>> before(base->calibration.begin(), base->calibration.end());
  for (const auto& w : d.calibration) EXPECT_TRUE(before.count(w));
  EXPECT_EQ(d.calibration.size() + d.gram.size(), base->calibration.size());
  // Too little text for both halves: a clear error.
  EvalDataOptions tiny = o;
  tiny.max_calibration_sequences = 4;
  auto small = PrepareEvalData(text, *tok, tiny);
  ASSERT_TRUE(small.ok());
  const absl::Status s = AddGramWindows(text, *tok, tiny, GramDataOptions{.min_disjoint_sequences = 1000}, &*small);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--quantizers rtn"), std::string::npos) << s;
  EXPECT_EQ(AddGramWindows(text, *tok, o, GramDataOptions{.max_sequences = 0}, &d).code(),
            absl::StatusCode::kInvalidArgument);
}

// By document: documents made of one distinct word each; no word of a Gram window appears in a
// calibration window (a window of one document never lands on both sides), in both schemes.
TEST(GramWindowsTest, GramAndCalibrationNeverShareADocument) {
  auto tok = Tok("tinystories-656k");
  ASSERT_TRUE(tok);
  const std::vector<std::string> words = {"cat",  "dog",  "sun",  "tree", "ball", "fish", "bird", "frog",
                                          "duck", "milk", "rain", "boat", "star", "moon", "shoe", "king",
                                          "book", "door", "lamp", "kite", "bear", "cow",  "pig",  "hat"};
  for (int64_t max_calibration : {4, 16}) {  // 4 of ~48 windows: disjoint; 16: split-calibration
    std::string text;
    for (const std::string& w : words) {
      for (int i = 0; i < 150; ++i) absl::StrAppend(&text, i == 0 ? "" : " ", w);
      text += "\n\n";
    }
    EvalDataOptions o;
    o.max_calibration_sequences = max_calibration;
    auto d = PrepareEvalData(text, *tok, o);
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_TRUE(AddGramWindows(text, *tok, o, GramDataOptions{.min_disjoint_sequences = 8}, &*d).ok());
    EXPECT_EQ(d->gram_scheme, max_calibration == 4 ? "disjoint" : "split-calibration");
    auto words_of = [&](const Windows& ws) {
      std::set<std::string> out;
      for (const auto& w : ws) {
        for (absl::string_view s : absl::StrSplit(tok->Decode(w), ' ', absl::SkipWhitespace())) {
          out.insert(std::string(s));
        }
      }
      return out;
    };
    const std::set<std::string> g = words_of(d->gram), c = words_of(d->calibration);
    EXPECT_FALSE(g.empty());
    for (const std::string& w : words) EXPECT_FALSE(g.count(w) && c.count(w)) << w << " on both sides";
  }
}

// Through the pipeline: an RTN-only run has no Gram windows, measures PrepareEvalData's
// calibration windows and writes neither Gram keys nor Gram options (its certificate is what it
// was); a gptq run records where its Gram came from and measures fewer, Gram-free windows.
TEST(GramWindowsTest, RtnRunsAreUnchangedAndGptqRunsRecordTheirGram) {
  PipelineOptions o;
  o.model_path = testing::ModelsDir() + "/tinystories-656k";
  o.data_path = testing::DataDir() + "/tinystories-valid-part1.txt";
  o.group_size = 64;
  o.uniform_bits = 4;
  o.target = "kl<=10";
  auto tok = Tok("tinystories-656k");
  ASSERT_TRUE(tok);
  auto base = PrepareEvalData(Text("tinystories-valid-part1.txt"), *tok, o.data);
  ASSERT_TRUE(base.ok());
  o.quantizers = "rtn";
  auto rtn = QuantizeModel(o);
  ASSERT_TRUE(rtn.ok()) << rtn.status();
  const nlohmann::json& c = rtn->certificate;
  EXPECT_EQ(c["calibration"]["sequences"], base->calibration.size());
  EXPECT_EQ(c["calibration"]["tokens"], base->CalibrationTokens());
  EXPECT_FALSE(c["calibration"].contains("gram"));
  EXPECT_FALSE(c["options"].contains("gram_data"));
  EXPECT_FALSE(c["options"].contains("gptq_act_order"));
  // A uniform baseline over several roundings rounds with rtn: no Gram windows either (the
  // default quantizers of slq quantize are rtn,gptq).
  o.quantizers = "rtn,gptq";
  EXPECT_FALSE(UsesGram(o));
  auto uniform = QuantizeModel(o);
  ASSERT_TRUE(uniform.ok()) << uniform.status();
  EXPECT_EQ(uniform->certificate["calibration"], c["calibration"]);
  EXPECT_EQ(uniform->certificate["heldout"], c["heldout"]);
  o.quantizers = "gptq";
  o.gptq_act_order = true;
  EXPECT_TRUE(UsesGram(o));
  auto gptq = QuantizeModel(o);
  ASSERT_TRUE(gptq.ok()) << gptq.status();
  const nlohmann::json& g = gptq->certificate;
  EXPECT_EQ(g["calibration"]["gram"]["scheme"], "split-calibration");
  EXPECT_GT(g["calibration"]["gram"]["tokens"].get<int64_t>(), 0);
  EXPECT_LT(g["calibration"]["sequences"].get<size_t>(), base->calibration.size());
  EXPECT_EQ(g["heldout"]["sequences"], c["heldout"]["sequences"]);
  EXPECT_EQ(g["options"]["gram_data"]["max_sequences"], GramDataOptions{}.max_sequences);
  EXPECT_EQ(g["options"]["gptq_act_order"], true);
  EXPECT_TRUE(g["options"].get<PipelineOptions>().gptq_act_order);
}

// A `bits<=X` target (no closed-loop acceptance to bias) fits the Gram on every calibration-side
// window, the measured ones included; fidelity targets keep the disjoint windows.
TEST(GramWindowsTest, BudgetTargetsUseEveryCalibrationWindow) {
  PipelineOptions o;
  o.quantizers = "rtn,gptq";
  o.target = "bits<=5";
  EXPECT_EQ(EffectiveGramData(o).scheme, "all-calibration");
  o.target = "ear>=0.99";
  EXPECT_EQ(EffectiveGramData(o).scheme, "");
  o.target = "bits<=5";
  o.gram_data.scheme = "all-calibration";
  EXPECT_EQ(EffectiveGramData(o).scheme, "all-calibration");

  auto tok = Tok("tinystories-656k");
  ASSERT_TRUE(tok);
  const std::string text = Text("tinystories-valid-part1.txt");
  const EvalDataOptions eo;
  auto base = PrepareEvalData(text, *tok, eo);
  ASSERT_TRUE(base.ok()) << base.status();
  EvalData d = *base;
  GramDataOptions g;
  g.scheme = "all-calibration";
  ASSERT_TRUE(AddGramWindows(text, *tok, eo, g, &d).ok());
  EXPECT_EQ(d.gram_scheme, "all-calibration");
  EXPECT_EQ(d.calibration, base->calibration);  // nothing leaves the loop
  EXPECT_EQ(d.heldout, base->heldout);
  // (No held-out check by content: lines 1 and 2 of this text differ only in "once"/"Once", and
  // their tail windows, one per side, are the same tokens.)
  EXPECT_GE(d.gram.size(), d.calibration.size());  // the measured windows (here all 12 of the side)
  std::set<std::vector<int32_t>> gram(d.gram.begin(), d.gram.end());
  for (const auto& w : d.calibration) EXPECT_TRUE(gram.count(w));  // the measured windows are in it
  EvalData bad = *base;
  g.scheme = "everything";
  EXPECT_EQ(AddGramWindows(text, *tok, eo, g, &bad).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace slq::quant
