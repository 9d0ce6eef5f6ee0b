// Cloze items on real text with a real tokenizer (multi-word tokens included), hit judging,
// the TL rule with its power, and the choice of items and windows.
#include "server/quant/cloze.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "gtest/gtest.h"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"
#include "server/quant/eval_data.h"

namespace slq::quant {
namespace {

const char kText[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "sunshine. One day, she saw a big dog!";

TEST(ClozeTest, FindsSentenceFinalWordsAtTokenBoundaries) {
  auto tok = Tokenizer::FromHfDir(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<int32_t> ids = (*tok)->Encode(kText, false);
  auto items = FindClozeItems({ids}, **tok, /*min_context=*/4, 0);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].word, "Lily");
  EXPECT_EQ(items[1].word, "sunshine");
  EXPECT_EQ(items[2].word, "dog");
  for (const auto& it : items) {
    EXPECT_EQ(it.target, it.word);  // this tokenizer ends tokens with the space ("named ")
    // The passage is a token prefix and the word starts the next token's text.
    EXPECT_EQ((*tok)->TokenBytes(ids[static_cast<size_t>(it.pos)]).rfind(it.word.substr(0, 3), 0), 0u) << it.word;
    std::vector<int32_t> prefix(ids.begin(), ids.begin() + it.pos);
    const std::string passage = (*tok)->Decode(prefix);
    EXPECT_EQ(passage.back(), ' ') << passage;
  }
  EXPECT_EQ(FindClozeItems({ids}, **tok, 4, 2).size(), 2u);   // evenly spaced subset
  EXPECT_LT(FindClozeItems({ids}, **tok, 10, 0).size(), 3u);  // context requirement
}

// Byte-level BPE (docs-19m) and SentencePiece (stories260k) put the space in the word's token:
// the passage ends before the space and the continuation must spell " word".
TEST(ClozeTest, WordsWhoseTokenCarriesTheLeadingSpace) {
  auto bpe = Tokenizer::FromHfDir(testing::ModelsDir() + "/docs-19m");
  auto sp = Tokenizer::FromLlama2c(testing::ModelsDir() + "/stories260k/tok512.bin", 512);
  ASSERT_TRUE(bpe.ok() && sp.ok());
  for (const Tokenizer* tok : {bpe->get(), sp->get()}) {
    const std::vector<int32_t> ids = tok->Encode(kText, false);
    auto items = FindClozeItems({ids}, *tok, 4, 0);
    ASSERT_EQ(items.size(), 3u);
    EXPECT_EQ(items[0].word, "Lily");
    EXPECT_EQ(items[2].word, "dog");
    for (const auto& it : items) {
      EXPECT_EQ(it.target, " " + it.word);
      EXPECT_EQ(tok->TokenBytes(ids[static_cast<size_t>(it.pos)])[0], ' ');
    }
  }
}

TEST(ClozeTest, HitsFromTheFirstGreedyTokenAndByGeneration) {
  auto model = LoadModel(testing::ModelsDir() + "/tinystories-656k");
  auto tok = Tokenizer::FromHfDir(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(model.ok() && tok.ok());
  const std::vector<int32_t> ids = (*tok)->Encode(kText, false);
  auto items = FindClozeItems({ids}, **tok, 4, 0);
  ASSERT_EQ(items.size(), 3u);
  // The true next token spells the word + '.'/'!' (or starts it: "sun" then generation).
  auto truth = ClozeHits(**model, **tok, {ids}, items, [&](int64_t s, int64_t p) {
    return ids[static_cast<size_t>(p)] + 0 * static_cast<int32_t>(s);
  });
  ASSERT_TRUE(truth.ok()) << truth.status();
  EXPECT_EQ((*truth)[0], 1);  // "Lily. She " decides at once
  // A token that does not start the word is a miss.
  auto wrong = ClozeHits(**model, **tok, {ids}, items, [&](int64_t, int64_t) { return ids[1]; });
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ((*wrong)[0], 0);
  EXPECT_EQ((*wrong)[1], 0);
}

TEST(ClozeTest, TaskLosslessRuleUsesBinomialSeAndPower) {
  // 1000 items, acc_base 0.5: SE = sqrt(0.25 / 1000) = 0.0158114, 1.96 x SE = 0.0309900;
  // the test detects 2.801585 x SE = 0.0442970 <= 0.05 with 80% power: conclusive.
  std::vector<uint8_t> base(1000, 0), quant(1000, 0);
  for (int i = 0; i < 500; ++i) base[static_cast<size_t>(i)] = 1;
  for (int i = 30; i < 500; ++i) quant[static_cast<size_t>(i)] = 1;  // 0.470: |d| 0.030 <= 0.03099
  TaskResult r = TaskFromHits(base, quant);
  EXPECT_EQ(r.items, 1000);
  EXPECT_DOUBLE_EQ(r.acc_base, 0.5);
  EXPECT_NEAR(r.se_base, 0.0158114, 1e-7);
  EXPECT_NEAR(r.min_detectable_diff, 0.0442970, 1e-7);
  EXPECT_EQ(r.items_for_5pt, 785);  // 7.848880 x 0.25 / 0.0025 = 784.888
  EXPECT_EQ(r.base_only, 30);
  EXPECT_EQ(r.quant_only, 0);
  EXPECT_TRUE(r.tl_holds);
  EXPECT_EQ(r.verdict, "task-lossless");
  quant[900] = 1;
  quant[30] = 0;
  quant[31] = 0;  // 0.469: |d| 0.031 > 0.03099
  r = TaskFromHits(base, quant);
  EXPECT_FALSE(r.tl_holds);
  EXPECT_EQ(r.verdict, "not task-lossless");
  EXPECT_EQ(r.base_only, 32);
  EXPECT_EQ(r.quant_only, 1);
  // 100 items (the old check's size), same accuracies 0.5 vs 0.49: within 1.96 x SE = 0.098, but
  // the test only detects 2.801585 x 0.05 = 0.140: inconclusive, not held.
  std::vector<uint8_t> b100(100, 0), q100(100, 0);
  for (int i = 0; i < 50; ++i) b100[static_cast<size_t>(i)] = 1;
  for (int i = 0; i < 49; ++i) q100[static_cast<size_t>(i)] = 1;
  r = TaskFromHits(b100, q100);
  EXPECT_NEAR(r.min_detectable_diff, 0.1400793, 1e-6);
  EXPECT_FALSE(r.tl_holds);
  EXPECT_EQ(r.verdict, "inconclusive: too few items");
  EXPECT_EQ(TaskFromHits({}, {}).items, 0);
}

// Items from many windows: the fewest evenly spaced windows that reach the wanted count.
TEST(ClozeTest, SelectClozeTaskReachesTheCountWithFewWindows) {
  auto tok = Tokenizer::FromHfDir(testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<int32_t> ids = (*tok)->Encode(kText, false);  // 3 items per window
  const std::vector<int32_t> none = (*tok)->Encode("no sentence ends here at all in this window", false);
  std::vector<std::vector<int32_t>> windows;
  for (int i = 0; i < 40; ++i) windows.push_back(i % 4 == 3 ? none : ids);  // 30 windows with 3 items
  ClozeTask all = SelectClozeTask(windows, **tok, 4, 0);
  EXPECT_EQ(all.available, 90);
  EXPECT_EQ(all.items.size(), 90u);
  EXPECT_EQ(all.windows.size(), 30u);  // windows without items are not scored
  ClozeTask some = SelectClozeTask(windows, **tok, 4, 20);
  EXPECT_EQ(some.available, 90);
  ASSERT_EQ(some.items.size(), 20u);
  EXPECT_LE(some.windows.size(), 8u);  // ~7 windows of 3 items, not 20 windows of one
  for (const ClozeItem& it : some.items) {
    ASSERT_LT(it.seq, static_cast<int64_t>(some.windows.size()));
    const std::vector<int32_t>& w = some.windows[static_cast<size_t>(it.seq)];
    ASSERT_LE(it.pos, static_cast<int64_t>(w.size()));
    EXPECT_TRUE(std::equal(w.begin(), w.end(), ids.begin()));  // a prefix of its window
  }
  for (const auto& w : all.windows) EXPECT_EQ(w.size(), static_cast<size_t>(all.items.back().pos));  // up to "dog"
  // On real text: the held-out side of debian-docs-val-part1.txt (619 KB) with the docs-19m
  // tokenizer has >= 2000 items (2239 measured on 2026-12-02), 7 items per KB of held-out text.
  auto bpe = Tokenizer::FromHfDir(testing::ModelsDir() + "/docs-19m");
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  std::ifstream f(testing::DataDir() + "/debian-docs-val-part1.txt", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto data = PrepareEvalData(text, **bpe, EvalDataOptions{});
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->heldout.size(), 32u);
  EXPECT_GT(data->heldout_all.size(), 500u);
  ClozeTask docs = SelectClozeTask(data->heldout_all, **bpe, 8, 2000);
  EXPECT_GE(docs.available, 2000);
  EXPECT_EQ(docs.items.size(), 2000u);
  EXPECT_GT(static_cast<double>(docs.available) / (static_cast<double>(data->heldout_bytes) / 1024), 4.0);
  EXPECT_EQ(SelectClozeTask(windows, **tok, 4, 500).items.size(), 90u);  // capped by the text
}

}  // namespace
}  // namespace slq::quant
