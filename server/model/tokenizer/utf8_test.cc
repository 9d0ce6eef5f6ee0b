#include "server/model/tokenizer/utf8.h"

#include <gtest/gtest.h>

#include "server/model/tokenizer/byte_level.h"
#include "server/model/tokenizer/unicode_tables.h"

namespace slq::tok {
namespace {

const std::string kFffd(kReplacementChar);

TEST(Utf8Test, DecodeAndAppendRoundTrip) {
  for (char32_t cp : {0x24u, 0xA2u, 0x20ACu, 0x10348u, 0x1F600u, 0x10FFFFu}) {
    std::string s;
    AppendUtf8(cp, &s);
    char32_t back;
    EXPECT_EQ(DecodeUtf8(s, 0, &back), s.size());
    EXPECT_EQ(back, cp);
  }
}

TEST(Utf8Test, DecodeInvalidGivesOneByte) {
  char32_t cp;
  EXPECT_EQ(DecodeUtf8("\xE2\x82", 0, &cp), 1u);  // truncated
  EXPECT_EQ(cp, kInvalidCodePoint);
  EXPECT_EQ(DecodeUtf8("\xC0\xAF", 0, &cp), 1u);      // overlong
  EXPECT_EQ(DecodeUtf8("\xED\xA0\x80", 0, &cp), 1u);  // surrogate
  EXPECT_EQ(cp, kInvalidCodePoint);
}

TEST(Utf8Test, LossyUsesMaximalSubparts) {
  EXPECT_EQ(Utf8Lossy("ok \xF0\x9F\x98\x80"), "ok \xF0\x9F\x98\x80");
  EXPECT_EQ(Utf8Lossy("\xE2\x82"), kFffd);  // one truncated sequence
  EXPECT_EQ(Utf8Lossy("a\xFF"
                      "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(Utf8Lossy("\xC0\xAF"), kFffd + kFffd);  // C0 is never a lead byte
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(Utf8Lossy("\xF0\x9F\x98"
                      "x"),
            kFffd + "x");
}

TEST(Utf8Test, LossyPerByte) {
  EXPECT_EQ(Utf8Lossy("\xE2\x82", /*per_byte=*/true), kFffd + kFffd);
  EXPECT_EQ(Utf8Lossy("a\xE2\x82\xAC", true), "a\xE2\x82\xAC");
}

TEST(Utf8Test, CompletePrefixHoldsBackOnlyTruncatedSequences) {
  EXPECT_EQ(Utf8CompletePrefix("ab"), 2u);
  EXPECT_EQ(Utf8CompletePrefix("ab\xF0\x9F"), 2u);
  EXPECT_EQ(Utf8CompletePrefix("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(Utf8CompletePrefix("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(Utf8CompletePrefix("\xFF"), 1u);       // invalid, cannot become valid
  EXPECT_EQ(Utf8CompletePrefix("a\xE2\x28"), 3u);  // broken sequence is not held
  EXPECT_EQ(Utf8CompletePrefix("\xE2"), 0u);
}

TEST(Utf8Test, IsValid) {
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo \xE6\x97\xA5"));
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xE6\x97"));
}

TEST(UnicodeTablesTest, Categories) {
  EXPECT_TRUE(IsLetter('a'));
  EXPECT_TRUE(IsLetter(0x65E5));  // 日
  EXPECT_TRUE(IsLetter(0x00E9));  // é
  EXPECT_FALSE(IsLetter('1'));
  EXPECT_FALSE(IsLetter(0x1F600));  // emoji
  EXPECT_TRUE(IsNumber('7'));
  EXPECT_TRUE(IsNumber(0x00BD));  // ½ (No)
  EXPECT_TRUE(IsNumber(0x0663));  // Arabic-Indic three (Nd)
  EXPECT_TRUE(IsNumber(0x216B));  // Roman numeral twelve (Nl)
  EXPECT_FALSE(IsNumber('x'));
  EXPECT_TRUE(IsWhitespace('\t'));
  EXPECT_TRUE(IsWhitespace(0x3000));
  EXPECT_TRUE(IsWhitespace(0x85));
  EXPECT_FALSE(IsWhitespace(0x1E));    // record separator is not White_Space
  EXPECT_FALSE(IsWhitespace(0x200B));  // zero-width space neither
}

TEST(ByteLevelTest, KnownMappingsAndRoundTrip) {
  EXPECT_EQ(ByteLevelChar(' '), "\xC4\xA0");   // Ġ
  EXPECT_EQ(ByteLevelChar('\n'), "\xC4\x8A");  // Ċ
  EXPECT_EQ(ByteLevelChar('a'), "a");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string encoded, decoded;
  ByteLevelEncode(all, &encoded);
  EXPECT_TRUE(IsValidUtf8(encoded));
  ByteLevelDecodeToken(encoded, &decoded);
  EXPECT_EQ(decoded, all);
  // A token with a character outside the alphabet is passed through unchanged.
  std::string raw;
  ByteLevelDecodeToken("a b", &raw);
  EXPECT_EQ(raw, "a b");
}

}  // namespace
}  // namespace slq::tok
