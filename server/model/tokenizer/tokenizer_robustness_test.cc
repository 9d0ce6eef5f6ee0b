// Arbitrary bytes and damaged files never crash the tokenizers.
#include <gtest/gtest.h>

#include <random>

#include "server/common/file_util.h"
#include "server/common/test_paths.h"
#include "server/model/tokenizer/hf_tokenizer.h"
#include "server/model/tokenizer/llama2c_tokenizer.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/model/tokenizer/utf8.h"

namespace slq {
namespace {

// Random strings mixing ASCII, multi-byte UTF-8, invalid bytes and special-token fragments.
std::string RandomText(std::mt19937& rng) {
  static const char* kAtoms[] = {"a",
                                 " ",
                                 "  ",
                                 "\n",
                                 "\r\n",
                                 "\t",
                                 "The",
                                 "'s",
                                 "123",
                                 "\xC3\xA9",
                                 "\xF0\x9F\x98\x80",
                                 "\xE6\x97\xA5",
                                 "\xFF",
                                 "\x80",
                                 "\xE2\x82",
                                 "<s>",
                                 "</s>",
                                 "<|end_story|>",
                                 " <|start_story|>",
                                 "<unk>",
                                 "\xE2\x96\x81",
                                 "\x00"};
  std::uniform_int_distribution<int> len(0, 40), pick(0, std::size(kAtoms) - 1);
  std::string s;
  for (int i = len(rng); i > 0; --i) {
    const char* a = kAtoms[pick(rng)];
    s += a[0] == '\0' ? std::string(1, '\0') : std::string(a);
  }
  return s;
}

void CheckNoCrash(const Tokenizer& t, bool lossless_on_valid_utf8) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 400; ++i) {
    const std::string text = RandomText(rng);
    const std::vector<int32_t> ids = t.Encode(text);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < t.vocab_size()) << id;
    const std::string back = t.Decode(ids);
    EXPECT_TRUE(tok::IsValidUtf8(back));
    if (lossless_on_valid_utf8 && tok::IsValidUtf8(text)) {
      EXPECT_EQ(t.Decode(t.Encode(text, false), false), text);
    }
    StreamingDecoder dec(&t);
    std::string streamed;
    for (int32_t id : ids) streamed += dec.Add(id);
    streamed += dec.Flush();
    EXPECT_TRUE(tok::IsValidUtf8(streamed));
  }
  // Out-of-range ids are ignored, not a crash.
  const std::vector<int32_t> junk = {-5, static_cast<int32_t>(t.vocab_size()), 1 << 30};
  EXPECT_EQ(t.Decode(junk), "");
  EXPECT_EQ(t.TokenBytes(-1), "");
}

TEST(TokenizerRobustnessTest, RandomInputs) {
  for (const char* name : {"tinystories-656k", "docs-19m"}) {
    auto t = Tokenizer::FromHfDir(testing::ModelsDir() + "/" + name);
    ASSERT_TRUE(t.ok()) << t.status();
    CheckNoCrash(**t, std::string(name) == "docs-19m");
  }
  auto l = Tokenizer::FromLlama2c(testing::ModelsDir() + "/stories260k/tok512.bin", 512);
  ASSERT_TRUE(l.ok()) << l.status();
  CheckNoCrash(**l, false);
}

TEST(TokenizerRobustnessTest, TruncatedFilesGiveErrors) {
  auto json = ReadFile(testing::ModelsDir() + "/tinystories-656k/tokenizer.json");
  ASSERT_TRUE(json.ok());
  for (size_t cut = 0; cut < json->size(); cut += json->size() / 23 + 1) {
    EXPECT_FALSE(tok::LoadHfTokenizer(json->substr(0, cut), {"", "", ""}).ok()) << cut;
  }
  auto bin = ReadFile(testing::ModelsDir() + "/stories260k/tok512.bin");
  ASSERT_TRUE(bin.ok());
  for (size_t cut = 0; cut < bin->size(); cut += bin->size() / 23 + 1) {
    EXPECT_FALSE(tok::LoadLlama2cTokenizer(bin->substr(0, cut), 512).ok()) << cut;
  }
}

TEST(TokenizerRobustnessTest, WrongTypesInsideValidJson) {
  for (const char* text : {"[]", "{}", "{\"model\": 5}", "{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2]}}",
                           "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}",
                           "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [5]}}",
                           "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"decoder\": 7}",
                           "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, "
                           "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": 3}}",
                           "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, "
                           "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                           "[{\"SpecialToken\": {\"id\": \"<s>\"}}], \"special_tokens\": {}}}"}) {
    EXPECT_FALSE(tok::LoadHfTokenizer(text, {"", "", ""}).ok()) << text;
  }
}

}  // namespace
}  // namespace slq
