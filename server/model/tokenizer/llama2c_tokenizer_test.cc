#include "server/model/tokenizer/llama2c_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "server/common/file_util.h"
#include "server/common/test_paths.h"

namespace slq {
namespace {

using Ids = std::vector<int32_t>;

// A direct port of llama2.c's O(n^2) encode() loop, as the reference for the heap version.
class ReferenceEncoder {
 public:
  explicit ReferenceEncoder(const std::string& data) {
    size_t pos = 4;
    while (pos < data.size()) {
      float score;
      int32_t len;
      std::memcpy(&score, data.data() + pos, 4);
      std::memcpy(&len, data.data() + pos + 4, 4);
      pieces_.push_back(data.substr(pos + 8, len));
      scores_.push_back(score);
      pos += 8 + len;
    }
    for (int i = static_cast<int>(pieces_.size()) - 1; i >= 0; --i) lookup_[pieces_[i]] = i;
  }
  Ids Encode(const std::string& text) const {
    Ids t = {1};
    if (!text.empty()) t.push_back(Find(" "));
    std::string buf;
    for (size_t i = 0; i < text.size(); ++i) {
      if ((text[i] & 0xC0) != 0x80) buf.clear();
      buf += text[i];
      if (i + 1 < text.size() && (text[i + 1] & 0xC0) == 0x80 && buf.size() < 4) continue;
      const int id = Find(buf);
      if (id >= 0) {
        t.push_back(id);
      } else {
        for (char c : buf) t.push_back(static_cast<uint8_t>(c) + 3);
      }
      buf.clear();
    }
    while (true) {
      float best = -1e10f;
      int best_id = -1, best_idx = -1;
      for (size_t i = 1; i + 1 < t.size(); ++i) {  // index 0 is BOS: never merged with text
        const int id = Find(pieces_[t[i]] + pieces_[t[i + 1]]);
        if (id >= 0 && scores_[id] > best) {
          best = scores_[id];
          best_id = id;
          best_idx = static_cast<int>(i);
        }
      }
      if (best_idx < 0) break;
      t[best_idx] = best_id;
      t.erase(t.begin() + best_idx + 1);
    }
    return t;
  }

 private:
  int Find(const std::string& s) const {
    auto it = lookup_.find(s);
    return it == lookup_.end() ? -1 : it->second;
  }
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::map<std::string, int> lookup_;
};

std::string ModelFile(const std::string& rel) { return testing::ModelsDir() + "/" + rel; }

std::unique_ptr<Tokenizer> Load(const std::string& rel, int vocab) {
  auto t = Tokenizer::FromLlama2c(ModelFile(rel), vocab);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(Llama2cTokenizerTest, OnceUponATime) {
  auto t = Load("stories260k/tok512.bin", 512);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->vocab_size(), 512);
  const Ids ids = t->Encode("Once upon a time");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_LE(ids.size(), 12u);  // merged into words, not one id per byte
  for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 512);
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_GE(ids[i], 3 + 256) << "byte fallback at " << i;
  EXPECT_EQ(t->Decode(ids), "Once upon a time");
  EXPECT_EQ(t->TokenBytes(ids[1])[0], ' ');  // the dummy prefix merged into the first word
}

TEST(Llama2cTokenizerTest, MatchesReferenceAndRoundTripsOnStories) {
  auto data = ReadFile(ModelFile("stories260k/tok512.bin"));
  ASSERT_TRUE(data.ok()) << data.status();
  ReferenceEncoder ref(*data);
  auto t = Load("stories260k/tok512.bin", 512);
  ASSERT_NE(t, nullptr);
  auto text = ReadFile(testing::DataDir() + "/tinystories-valid-part1.txt");
  ASSERT_TRUE(text.ok());
  for (size_t pos = 0; pos < 6000; pos += 600) {
    const std::string chunk = text->substr(pos, 600);
    const Ids ids = t->Encode(chunk);
    EXPECT_EQ(ids, ref.Encode(chunk)) << chunk;
    EXPECT_EQ(t->Decode(ids), chunk);
  }
}

TEST(Llama2cTokenizerTest, Llama32kMatchesReference) {
  auto data = ReadFile(ModelFile("tokenizer_llama32k.bin"));
  ASSERT_TRUE(data.ok()) << data.status();
  ReferenceEncoder ref(*data);
  auto t = Load("tokenizer_llama32k.bin", 32000);
  ASSERT_NE(t, nullptr);
  for (const std::string& s : {std::string("Once upon a time"), std::string("The quick brown fox, 1234 jumps!"),
                               std::string("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 emoji")}) {
    const Ids ids = t->Encode(s);
    EXPECT_EQ(ids, ref.Encode(s)) << s;
    EXPECT_EQ(t->Decode(ids), s);
  }
}

TEST(Llama2cTokenizerTest, ByteFallbackRoundTrip) {
  auto t = Load("stories260k/tok512.bin", 512);
  ASSERT_NE(t, nullptr);
  const std::string s = "\xF0\x9F\x98\x80 \xE6\x97\xA5";
  const Ids ids = t->Encode(s, false);
  EXPECT_EQ(t->TokenBytes(3 + 0xF0), "\xF0");
  EXPECT_EQ(t->Decode(ids), s);
}

// A vocab without the 256 byte-fallback tokens (ids 3..258): bytes it cannot spell become
// <unk> instead of ids past the vocab (fuzz/llama2c_tokenizer_fuzz found the out-of-range read).
TEST(Llama2cTokenizerTest, SmallVocabByteFallbackStaysInVocab) {
  std::string bin(4, '\0');  // max_token_length (unused)
  for (const std::string piece : {"<unk>", "<s>", "</s>", " ", "a", " a"}) {
    const float score = 1.0f;
    const int32_t len = static_cast<int32_t>(piece.size());
    bin.append(reinterpret_cast<const char*>(&score), sizeof(score));
    bin.append(reinterpret_cast<const char*>(&len), sizeof(len));
    bin += piece;
  }
  auto t = tok::LoadLlama2cTokenizer(bin, 6);
  ASSERT_TRUE(t.ok()) << t.status();
  const Ids ids = (*t)->Encode("a b\xff\xc3\xa9 a", true);
  ASSERT_FALSE(ids.empty());
  for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 6) << "id " << id << " outside the vocab of 6";
  EXPECT_EQ(ids[1], 5) << "' a' still merges";
  EXPECT_NE(std::find(ids.begin(), ids.end(), 0), ids.end()) << "'b' has no token: <unk>";
}

TEST(Llama2cTokenizerTest, BadFiles) {
  auto data = ReadFile(ModelFile("stories260k/tok512.bin"));
  ASSERT_TRUE(data.ok());
  auto wrong_size = tok::LoadLlama2cTokenizer(*data, 500);
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.status().message().find("vocab_size"), std::string_view::npos);
  EXPECT_FALSE(tok::LoadLlama2cTokenizer(*data, 600).ok());
  EXPECT_FALSE(tok::LoadLlama2cTokenizer(data->substr(0, 1000), 512).ok());
  EXPECT_FALSE(tok::LoadLlama2cTokenizer("", 512).ok());
  EXPECT_FALSE(tok::LoadLlama2cTokenizer(*data, -1).ok());
  EXPECT_FALSE(Tokenizer::FromLlama2c("/nonexistent.bin", 512).ok());
}

}  // namespace
}  // namespace slq
