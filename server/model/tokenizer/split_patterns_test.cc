#include "server/model/tokenizer/split_patterns.h"

#include <gtest/gtest.h>

#include <string>

namespace slq::tok {
namespace {

std::vector<std::string> Split(SplitPattern p, std::string_view text) {
  std::vector<ByteRange> m;
  FindPatternMatches(p, text, &m);
  std::vector<std::string> out;
  for (auto [b, e] : m) out.emplace_back(text.substr(b, e - b));
  return out;
}

// Expected values below come from Python's `regex` module running the same patterns.
constexpr std::string_view kText1 = "Hello world's  test 12345!!\n\n  x";
constexpr std::string_view kText2 =
    "I'M here,\tdon'T \r\n\r\n  go 2024 \xC2\xBD \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
    "\xF0\x9F\x98\x80 ";

TEST(SplitPatternsTest, Gpt2) {
  EXPECT_EQ(Split(SplitPattern::kGpt2, kText1),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " test", " 12345", "!!", "\n\n ", " x"}));
  EXPECT_EQ(Split(SplitPattern::kGpt2, kText2),
            (std::vector<std::string>{"I", "'", "M", " here", ",", "\t", "don", "'", "T", " \r\n\r\n ", " go", " 2024",
                                      " \xC2\xBD", " \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", " \xF0\x9F\x98\x80", " "}));
}

TEST(SplitPatternsTest, Llama3) {
  EXPECT_EQ(Split(SplitPattern::kLlama3, kText1),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " test", " ", "123", "45", "!!\n\n", " ", " x"}));
  EXPECT_EQ(
      Split(SplitPattern::kLlama3, kText2),
      (std::vector<std::string>{"I", "'M", " here", ",", "\tdon", "'T", " \r\n\r\n", " ", " go", " ", "202", "4", " ",
                                "\xC2\xBD", " \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", " \xF0\x9F\x98\x80", " "}));
}

TEST(SplitPatternsTest, Qwen2SplitsDigitsSingly) {
  EXPECT_EQ(Split(SplitPattern::kQwen2, kText1),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " test", " ", "1", "2", "3", "4", "5", "!!\n\n",
                                      " ", " x"}));
}

TEST(SplitPatternsTest, MatchesCoverAllTextAndInvalidBytes) {
  const std::string text = "a\xFF\xFE b\x80";
  std::vector<ByteRange> m;
  FindPatternMatches(SplitPattern::kGpt2, text, &m);
  size_t pos = 0;
  for (auto [b, e] : m) {
    EXPECT_EQ(b, pos);
    pos = e;
  }
  EXPECT_EQ(pos, text.size());
}

TEST(SplitPatternsTest, Identify) {
  EXPECT_EQ(IdentifySplitPattern(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"),
            SplitPattern::kGpt2);
  EXPECT_EQ(
      IdentifySplitPattern(
          R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
      SplitPattern::kLlama3);
  EXPECT_EQ(IdentifySplitPattern(R"(\w+)"), std::nullopt);
}

}  // namespace
}  // namespace slq::tok
