#include "server/model/tokenizer/bpe_model.h"

#include <gtest/gtest.h>

#include <chrono>

namespace slq::tok {
namespace {

using nlohmann::json;

std::unique_ptr<BpeModel> Make(json model) {
  model["type"] = "BPE";
  auto m = BpeModel::FromJson(model);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

std::vector<int32_t> Tok(const BpeModel& m, std::string_view word) {
  std::vector<int32_t> ids;
  m.Tokenize(word, &ids);
  return ids;
}

json SmallVocab() {
  return {{"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"aa", 6}}},
          {"merges", {"a b", "b c", "ab c", "a a"}}};
}

TEST(BpeModelTest, MergesByRank) {
  auto m = Make(SmallVocab());
  EXPECT_EQ(Tok(*m, "abc"), (std::vector<int32_t>{5}));  // a b (rank 0), then ab c
  EXPECT_EQ(Tok(*m, "bcab"), (std::vector<int32_t>{4, 3}));
  EXPECT_EQ(Tok(*m, "cba"), (std::vector<int32_t>{2, 1, 0}));
}

TEST(BpeModelTest, EqualRankMergesLeftmostFirst) {
  auto m = Make(SmallVocab());
  EXPECT_EQ(Tok(*m, "aaa"), (std::vector<int32_t>{6, 0}));
  EXPECT_EQ(Tok(*m, "aaaa"), (std::vector<int32_t>{6, 6}));
}

TEST(BpeModelTest, NewFormatMergePairs) {
  json j = SmallVocab();
  j["merges"] = json::array({json::array({"a", "b"}), json::array({"ab", "c"})});
  auto m = Make(j);
  EXPECT_EQ(Tok(*m, "abc"), (std::vector<int32_t>{5}));
  EXPECT_EQ(Tok(*m, "bc"), (std::vector<int32_t>{1, 2}));  // "b c" is not a merge here
}

TEST(BpeModelTest, ByteFallbackForUnknownCharacters) {
  json j = SmallVocab();
  j["vocab"]["<0xC3>"] = 10;
  j["vocab"]["<0xA9>"] = 11;
  j["byte_fallback"] = true;
  auto m = Make(j);
  EXPECT_EQ(Tok(*m,
                "a\xC3\xA9"
                "b"),
            (std::vector<int32_t>{0, 10, 11, 1}));
}

TEST(BpeModelTest, UnknownCharactersFuseIntoOneUnk) {
  json j = SmallVocab();
  j["vocab"]["<unk>"] = 9;
  j["unk_token"] = "<unk>";
  j["fuse_unk"] = true;
  auto fused = Make(j);
  EXPECT_EQ(Tok(*fused, "xyab"), (std::vector<int32_t>{9, 3}));
  j["fuse_unk"] = false;
  auto unfused = Make(j);
  EXPECT_EQ(Tok(*unfused, "xyab"), (std::vector<int32_t>{9, 9, 3}));
}

TEST(BpeModelTest, IgnoreMergesTakesWholeWordFromVocab) {
  json j = {
      {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"ba", 3}, {"aba", 4}}}, {"merges", {"a b"}}, {"ignore_merges", true}};
  auto m = Make(j);
  EXPECT_EQ(Tok(*m, "aba"), (std::vector<int32_t>{4}));
  EXPECT_EQ(Tok(*m, "abab"), (std::vector<int32_t>{2, 2}));
}

TEST(BpeModelTest, CachedResultsStayCorrect) {
  auto m = Make(SmallVocab());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Tok(*m, "abcab"), (std::vector<int32_t>{5, 3}));
}

TEST(BpeModelTest, LongWordIsNotQuadratic) {
  auto m = Make(SmallVocab());
  std::string word;
  for (int i = 0; i < 200000; ++i) word += "abc";
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = Tok(*m, word);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(ids.size(), 200000u);
  EXPECT_LT(s, 5.0) << "600k-char word took " << s << " s";
}

TEST(BpeModelTest, Errors) {
  json j = SmallVocab();
  j["merges"].push_back("a zz");
  auto bad_merge = BpeModel::FromJson(j);
  ASSERT_FALSE(bad_merge.ok());
  EXPECT_NE(bad_merge.status().message().find("merge #4"), std::string_view::npos) << bad_merge.status();
  EXPECT_FALSE(BpeModel::FromJson(json{{"merges", json::array()}}).ok());
  EXPECT_FALSE(BpeModel::FromJson(json{{"vocab", {{"a", 0}}}}).ok());
  json neg = SmallVocab();
  neg["vocab"]["x"] = -4;
  EXPECT_FALSE(BpeModel::FromJson(neg).ok());
  json malformed = SmallVocab();
  malformed["merges"] = json::array({"abc"});
  EXPECT_FALSE(BpeModel::FromJson(malformed).ok());
}

}  // namespace
}  // namespace slq::tok
