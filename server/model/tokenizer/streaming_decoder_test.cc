#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/test_paths.h"
#include "server/model/tokenizer/hf_tokenizer.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/model/tokenizer/utf8.h"

namespace slq {
namespace {

using Ids = std::vector<int32_t>;

// Feeds ids one by one; checks every delta is whole UTF-8 and returns their concatenation.
std::string Stream(const Tokenizer& t, const Ids& ids, bool skip_special = true, int* partial_tokens = nullptr) {
  StreamingDecoder dec(&t, skip_special);
  std::string all;
  for (int32_t id : ids) {
    const std::string delta = dec.Add(id);
    EXPECT_TRUE(tok::IsValidUtf8(delta)) << "delta splits a character after id " << id;
    if (partial_tokens && !tok::IsValidUtf8(t.TokenBytes(id))) ++*partial_tokens;
    all += delta;
  }
  all += dec.Flush();
  return all;
}

std::unique_ptr<Tokenizer> LoadHf(const std::string& name) {
  auto t = Tokenizer::FromHfDir(testing::ModelsDir() + "/" + name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(StreamingDecoderTest, TinyStoriesMatchesDecode) {
  auto t = LoadHf("tinystories-656k");
  ASSERT_NE(t, nullptr);
  auto text = ReadFile(testing::DataDir() + "/tinystories-valid-part1.txt");
  ASSERT_TRUE(text.ok());
  const Ids ids = t->Encode(text->substr(0, 3000));
  EXPECT_EQ(Stream(*t, ids), t->Decode(ids));
  EXPECT_EQ(Stream(*t, ids, false), t->Decode(ids, false));
  const Ids with_unk = t->Encode("caf\xC3\xA9 au lait", false);  // 'é' is <unk> here
  EXPECT_EQ(Stream(*t, with_unk), t->Decode(with_unk));
}

TEST(StreamingDecoderTest, ByteLevelNeverSplitsCharacters) {
  auto t = LoadHf("docs-19m");
  ASSERT_NE(t, nullptr);
  const std::string text =
      "Emoji \xF0\x9F\x98\x80\xF0\x9F\x8E\x89 and CJK \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E, "
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 caf\xC3\xA9 \xE2\x82\xAC"
      "5";
  const Ids ids = t->Encode(text);
  int partial = 0;
  EXPECT_EQ(Stream(*t, ids, true, &partial), text);
  EXPECT_EQ(t->Decode(ids), text);
  EXPECT_GT(partial, 0) << "test text should contain tokens holding partial characters";
}

TEST(StreamingDecoderTest, EmojiSplitAcrossByteFallbackTokens) {
  auto t = Tokenizer::FromLlama2c(testing::ModelsDir() + "/stories260k/tok512.bin", 512);
  ASSERT_TRUE(t.ok()) << t.status();
  const Ids ids = (*t)->Encode("Hi \xF0\x9F\x98\x80!");
  StreamingDecoder dec(t->get());
  std::vector<std::string> deltas;
  for (int32_t id : ids) deltas.push_back(dec.Add(id));
  deltas.push_back(dec.Flush());
  std::string all;
  int held = 0;
  for (const std::string& d : deltas) {
    EXPECT_TRUE(tok::IsValidUtf8(d));
    if (d.empty()) ++held;
    all += d;
  }
  EXPECT_EQ(all, "Hi \xF0\x9F\x98\x80!");
  EXPECT_EQ(all, (*t)->Decode(ids));
  EXPECT_GE(held, 3);  // BOS plus at least 3 of the 4 emoji bytes produce no text yet
  const auto emoji = std::find(deltas.begin(), deltas.end(), "\xF0\x9F\x98\x80");
  EXPECT_NE(emoji, deltas.end()) << "the emoji should arrive as one delta";
}

TEST(StreamingDecoderTest, InvalidBytesBecomeReplacementCharacters) {
  auto t = Tokenizer::FromLlama2c(testing::ModelsDir() + "/stories260k/tok512.bin", 512);
  ASSERT_TRUE(t.ok());
  StreamingDecoder dec(t->get());
  EXPECT_EQ(dec.Add(3 + 0xE2), "");  // start of a 3-byte character: held back
  EXPECT_EQ(dec.Add(3 + 'a'),
            "\xEF\xBF\xBD"
            "a");  // broken by 'a': U+FFFD then 'a'
  EXPECT_EQ(dec.Add(3 + 0xF0), "");
  EXPECT_EQ(dec.Add(3 + 0x9F), "");
  EXPECT_EQ(dec.Flush(), "\xEF\xBF\xBD");  // truncated at the end
}

TEST(StreamingDecoderTest, PerByteReplacementFollowsByteFallbackDecoder) {
  // Minimal sentencepiece-style tokenizer with a ByteFallback decoder.
  nlohmann::json j;
  j["model"] = {{"type", "BPE"},
                {"byte_fallback", true},
                {"vocab", {{"<s>", 0}, {"a", 1}, {"<0xE2>", 2}, {"<0x82>", 3}, {"<0xAC>", 4}}},
                {"merges", nlohmann::json::array()}};
  j["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}};
  auto t = tok::LoadHfTokenizer(j.dump(), {"", "", ""});
  ASSERT_TRUE(t.ok()) << t.status();
  for (const Ids& ids : {Ids{1, 2, 3, 4, 1}, Ids{1, 2, 3, 1}, Ids{2, 1, 2}, Ids{2, 3}}) {
    EXPECT_EQ(Stream(**t, ids), (*t)->Decode(ids));
  }
}

TEST(StreamingDecoderTest, FlushResetsForTheNextText) {
  auto t = LoadHf("tinystories-656k");
  ASSERT_NE(t, nullptr);
  const Ids ids = t->Encode("The cat sat.", false);
  StreamingDecoder dec(t.get());
  for (int round = 0; round < 2; ++round) {
    std::string all;
    for (int32_t id : ids) all += dec.Add(id);
    all += dec.Flush();
    EXPECT_EQ(all, "The cat sat.");
  }
}

}  // namespace
}  // namespace slq
