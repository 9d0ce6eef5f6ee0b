// Tokenizer::FromHfDir on the real test models and on small synthetic tokenizer.json files.
#include <gtest/gtest.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/test_paths.h"
#include "server/model/tokenizer/hf_tokenizer.h"
#include "server/model/tokenizer/tokenizer.h"

namespace slq {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> LoadModel(const std::string& name) {
  auto t = Tokenizer::FromHfDir(testing::ModelsDir() + "/" + name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::string ReadData(const std::string& name, size_t max_bytes = std::string::npos) {
  auto text = ReadFile(testing::DataDir() + "/" + name);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? text->substr(0, max_bytes) : "";
}

// ---- real models --------------------------------------------------------------------

TEST(HfTokenizerTest, TinyStoriesBasics) {
  auto t = LoadModel("tinystories-656k");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->vocab_size(), 2048);
  EXPECT_TRUE(t->IsSpecial(0) && t->IsSpecial(1) && t->IsSpecial(2));
  EXPECT_FALSE(t->IsSpecial(3));
  const Ids ids = t->Encode("Once upon a time");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_LE(ids.size(), 8u);
  // HF parity quirk: normalized added tokens decode as their normalized form and are not
  // skipped, so BOS shows up (see Tokenizer::Decode).
  EXPECT_EQ(t->Decode(ids), "<|start_story|> Once upon a time");
  EXPECT_FALSE(t->DecodeSkips(1));
  EXPECT_EQ(t->Decode(t->Encode("Once upon a time", false)), "Once upon a time");
  EXPECT_EQ(t->Encode(""), Ids{1});
  EXPECT_TRUE(t->Encode("", false).empty());
  EXPECT_EQ(Ids(ids.begin() + 1, ids.end()), t->Encode("Once upon a time", false));
  // Each token's bytes use ' ' for '▁'; the first word's token starts with the space.
  EXPECT_EQ(t->TokenBytes(ids[1])[0], ' ');
}

TEST(HfTokenizerTest, TinyStoriesSpecialTokenInText) {
  auto t = LoadModel("tinystories-656k");
  ASSERT_NE(t, nullptr);
  // The tokens are normalized=true: matched on the normalized text as "▁<|end_story|>".
  const Ids ids = t->Encode("The end. <|end_story|>");
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(t->Decode(ids), "<|start_story|> The end. <|end_story|>");
  // Without the space the token is not recognized (its normalized pattern starts with '▁').
  const Ids glued = t->Encode("The end.<|end_story|>", false);
  EXPECT_EQ(std::count(glued.begin(), glued.end(), 2), 0);
  EXPECT_EQ(t->Decode(glued), "The end.<|end_story|>");
}

TEST(HfTokenizerTest, TinyStoriesRoundTripOnStories) {
  auto t = LoadModel("tinystories-656k");
  ASSERT_NE(t, nullptr);
  // '\r' is not in this 2048-token vocab (no byte fallback): use '\n' line ends.
  const std::string text = absl::StrReplaceAll(ReadData("tinystories-valid-part1.txt", 4000), {{"\r\n", "\n"}});
  const Ids ids = t->Encode(text, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << "unexpected <unk>";
  EXPECT_EQ(t->Decode(ids), text);
}

TEST(HfTokenizerTest, DocsByteLevelBasics) {
  auto t = LoadModel("docs-19m");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->vocab_size(), 8192);
  EXPECT_EQ(t->Encode("<s>", false), Ids{1});
  const Ids ids = t->Encode("The kernel");
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(t->Decode(ids), "The kernel");
  // Byte-level: the token for " kernel" (or its last piece) maps back to plain bytes.
  EXPECT_EQ(t->TokenBytes(ids.back()).back(), 'l');
}

TEST(HfTokenizerTest, DocsByteLevelIsLossless) {
  auto t = LoadModel("docs-19m");
  ASSERT_NE(t, nullptr);
  for (const std::string& text :
       {ReadData("debian-docs-val-part1.txt", 60000), ReadData("wikitext-2-raw-test.txt", 60000),
        std::string("emoji \xF0\x9F\x98\x80\xF0\x9F\x98\x81 CJK \xE6\x97\xA5\xE6\x9C\xAC "
                    "tabs\t\tand  \r\n\r\n spaces   "),
        std::string("12345678 3.14159 ''quoted'' it's"), std::string(" ")}) {
    EXPECT_EQ(t->Decode(t->Encode(text)), text) << text.substr(0, 80);
  }
}

TEST(HfTokenizerTest, ConcurrentEncodeMatchesSerial) {
  auto t = LoadModel("docs-19m");
  ASSERT_NE(t, nullptr);
  const std::string text = ReadData("wikitext-2-raw-test.txt", 80000);
  std::vector<std::string> chunks;
  for (size_t i = 0; i < 4; ++i) chunks.push_back(text.substr(i * 20000, 20000));
  std::vector<Ids> serial, parallel(4);
  for (const auto& c : chunks) serial.push_back(t->Encode(c));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int rep = 0; rep < 3; ++rep) parallel[i] = t->Encode(chunks[i]);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(serial, parallel);
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Encode speed on WikiText-2 (1.29 MB), in CPU time of this thread (the CI machine's 2 cores
// are shared, so wall time is noisy). For tinystories-656k (no pre-tokenizer) the whole text
// is ONE BPE word of 1.29M symbols: a quadratic merge loop would not finish.
TEST(HfTokenizerTest, EncodeSpeed) {
  const std::string text = ReadData("wikitext-2-raw-test.txt");
  for (const char* name : {"docs-19m", "tinystories-656k"}) {
    auto t = LoadModel(name);
    ASSERT_NE(t, nullptr);
    const double c0 = ThreadCpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    const Ids ids = t->Encode(text);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double s = ThreadCpuSeconds() - c0;
    std::printf(
        "[speed] %s: %zu chars -> %zu tokens in %.3f s CPU (%.3f s wall): "
        "%.2f M chars/s, %.2f M tokens/s\n",
        name, text.size(), ids.size(), s, wall, text.size() / s / 1e6, ids.size() / s / 1e6);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    EXPECT_GT(text.size() / s, 5e5) << name;
#endif
  }
}

// Llama-3 layout (Split regex + ByteLevel without regex, ignore_merges) on the docs-19m vocab.
TEST(HfTokenizerTest, Llama3StylePipelineOnDocsVocab) {
  auto json_text = ReadFile(testing::ModelsDir() + "/docs-19m/tokenizer.json");
  ASSERT_TRUE(json_text.ok());
  json j = json::parse(*json_text);
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array(
           {{{"type", "Split"},
             {"pattern",
              {{"Regex",
                R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  j["model"]["ignore_merges"] = true;
  auto t = tok::LoadHfTokenizer(j.dump(), {"", "", ""});
  ASSERT_TRUE(t.ok()) << t.status();
  const std::string text = ReadData("wikitext-2-raw-test.txt", 30000);
  EXPECT_EQ((*t)->Decode((*t)->Encode(text)), text);
  // \p{N}{1,3}: no token may span the 3/4 digit boundary of "12345".
  const Ids ids = (*t)->Encode("12345", false);
  std::string joined;
  bool boundary = false;
  for (int32_t id : ids) {
    joined += (*t)->TokenBytes(id);
    boundary = boundary || joined == "123";
  }
  EXPECT_EQ(joined, "12345");
  EXPECT_TRUE(boundary);
}

// ---- synthetic tokenizer.json -----------------------------------------------------------

json SentencePieceStyle() {
  const std::string sp = "\xE2\x96\x81";  // ▁
  json j;
  j["added_tokens"] =
      json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
                   {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                   {{"id", 11}, {"content", "<mask>"}, {"special", true}, {"normalized", false}, {"lstrip", true}}});
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", sp}, {"prepend_scheme", "first"}, {"split", false}};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", sp}}}, {"content", " "}},
                                            {{"type", "ByteFallback"}},
                                            {{"type", "Fuse"}},
                                            {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  j["model"] = {{"type", "BPE"},
                {"byte_fallback", true},
                {"unk_token", "<unk>"},
                {"fuse_unk", true},
                {"vocab",
                 {{"<unk>", 0},
                  {"<s>", 1},
                  {"</s>", 2},
                  {sp, 3},
                  {"h", 4},
                  {"i", 5},
                  {sp + "h", 6},
                  {sp + "hi", 7},
                  {"<0xE2>", 8},
                  {"<0x82>", 9},
                  {"<0xAC>", 10}}},
                {"merges", {sp + " h", sp + "h i"}}};
  return j;
}

std::unique_ptr<Tokenizer> Load(const json& j) {
  auto t = tok::LoadHfTokenizer(j.dump(), {"", "", ""});
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(HfTokenizerSyntheticTest, MetaspaceByteFallbackAndTemplate) {
  auto t = Load(SentencePieceStyle());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Encode("hi hi"), (Ids{1, 7, 7}));
  // prepend_scheme "first": no '▁' in front of text that follows an added token.
  EXPECT_EQ(t->Encode("<s>hi"), (Ids{1, 1, 4, 5}));
  EXPECT_EQ(t->Encode("\xE2\x82\xAC", false), (Ids{3, 8, 9, 10}));  // ▁ then € as bytes
  EXPECT_EQ(t->Decode(Ids{1, 7, 7}), "hi hi");
  EXPECT_EQ(t->Decode(Ids{3, 8, 9, 10}), "\xE2\x82\xAC");
  // An invalid byte run decodes to one U+FFFD per byte (HF ByteFallback).
  EXPECT_EQ(t->Decode(Ids{8, 9}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t->TokenBytes(8), "\xE2");
  EXPECT_EQ(t->TokenBytes(7), " hi");
  EXPECT_EQ(t->leading_spaces_stripped(), 1);
  EXPECT_TRUE(t->replaces_invalid_per_byte());
}

TEST(HfTokenizerSyntheticTest, AddedTokenLstrip) {
  auto t = Load(SentencePieceStyle());
  ASSERT_NE(t, nullptr);
  // "<mask>" has lstrip: it swallows the space before it.
  EXPECT_EQ(t->Encode("hi <mask>hi", false), (Ids{7, 11, 4, 5}));
  EXPECT_EQ(t->Decode(Ids{7, 11, 4, 5}, false), "hi<mask>hi");
}

TEST(HfTokenizerSyntheticTest, UnknownCharactersBecomeUnk) {
  auto t = Load(SentencePieceStyle());
  ASSERT_NE(t, nullptr);
  // 'x', 'y' are neither in the vocab nor fully covered by byte tokens: one fused <unk>.
  EXPECT_EQ(t->Encode("xyhi", false), (Ids{3, 0, 4, 5}));
}

void ExpectError(const json& j, const std::string& needle) {
  auto t = tok::LoadHfTokenizer(j.dump(), {"", "", ""});
  ASSERT_FALSE(t.ok()) << "expected an error mentioning " << needle;
  EXPECT_NE(t.status().message().find(needle), std::string_view::npos) << t.status();
}

TEST(HfTokenizerSyntheticTest, MalformedFilesGiveClearErrors) {
  auto bad = tok::LoadHfTokenizer("{\"model\": ", {"", "", ""});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not valid JSON"), std::string_view::npos);

  json j = SentencePieceStyle();
  j["model"]["type"] = "WordPiece";
  ExpectError(j, "WordPiece");
  j = SentencePieceStyle();
  j["model"].erase("vocab");
  ExpectError(j, "vocab");
  j = SentencePieceStyle();
  j["model"]["merges"].push_back("h zz");
  ExpectError(j, "merge #2");
  j = SentencePieceStyle();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  ExpectError(j, "Whitespace");
  j = SentencePieceStyle();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}};
  ExpectError(j, "\\w+");
  j = SentencePieceStyle();
  j["added_tokens"][0]["id"] = "zero";
  ExpectError(j, "unexpected structure");
  j = SentencePieceStyle();
  j.erase("model");
  ExpectError(j, "model");
}

TEST(HfTokenizerSyntheticTest, MissingDirectoryIsNotFound) {
  auto t = Tokenizer::FromHfDir("/nonexistent/slq/tokenizer");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace slq
