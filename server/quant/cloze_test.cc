// Cloze items on real text with a real tokenizer (multi-word tokens included), hit judging,
// and the TL rule.
#include "server/quant/cloze.h"

#include "gtest/gtest.h"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"

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

TEST(ClozeTest, TaskLosslessRuleUsesBinomialSe) {
  std::vector<uint8_t> base(100, 0), quant(100, 0);
  for (int i = 0; i < 50; ++i) base[static_cast<size_t>(i)] = 1;   // acc_base 0.5, SE 0.05
  for (int i = 0; i < 41; ++i) quant[static_cast<size_t>(i)] = 1;  // 0.41: |d| 0.09 <= 0.098
  TaskResult r = TaskFromHits(base, quant);
  EXPECT_EQ(r.items, 100);
  EXPECT_DOUBLE_EQ(r.acc_base, 0.5);
  EXPECT_NEAR(r.se_base, 0.05, 1e-12);
  EXPECT_TRUE(r.tl_holds);
  quant[40] = 0;  // 0.40: |d| 0.10 > 0.098
  EXPECT_FALSE(TaskFromHits(base, quant).tl_holds);
  EXPECT_EQ(TaskFromHits({}, {}).items, 0);
}

}  // namespace
}  // namespace slq::quant
