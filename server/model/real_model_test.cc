// End-to-end checks on the real models in ../shared/models: loading (F32 tied, BF16 sharded
// untied, llama2.c), perplexity on held-out TinyStories text against the README's independent
// reference, and coherent greedy generation. Tokenization here is a deliberately minimal
// re-implementation (llama2.c's encode(); a whole-string BPE for tinystories-656k's
// tokenizer.json) so this test does not depend on the tokenizer module.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/test_paths.h"
#include "server/model/forward.h"
#include "server/model/generate.h"
#include "server/model/model_loader.h"

namespace slq {
namespace {

// ---- minimal tokenizers -------------------------------------------------------------------
std::vector<std::string> Utf8Chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

struct Llama2cVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::map<std::string, int> ids;
  explicit Llama2cVocab(const std::string& path, int n) {
    std::string d = *ReadFile(path);
    size_t p = 4;  // max_token_length
    for (int i = 0; i < n; ++i) {
      float sc;
      int32_t len;
      std::memcpy(&sc, d.data() + p, 4);
      std::memcpy(&len, d.data() + p + 4, 4);
      pieces.push_back(d.substr(p + 8, len));
      scores.push_back(sc);
      ids.emplace(pieces.back(), i);
      p += 8 + len;
    }
  }
  // run.c's encode(): dummy-prefix space, code points (byte fallback +3), best-score merges.
  std::vector<int32_t> Encode(const std::string& text) const {
    std::vector<int32_t> t = {1, ids.at(" ")};
    for (const std::string& ch : Utf8Chars(text)) {
      auto it = ids.find(ch);
      if (it != ids.end()) {
        t.push_back(it->second);
      } else {
        for (unsigned char b : ch) t.push_back(b + 3);
      }
    }
    std::unordered_map<uint64_t, int> pair_id;  // (a << 32 | b) -> merged id or -1
    auto merged = [&](int32_t a, int32_t b) {
      const uint64_t key = (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
      auto it = pair_id.find(key);
      if (it != pair_id.end()) return it->second;
      auto v = ids.find(pieces[a] + pieces[b]);
      return pair_id[key] = v == ids.end() ? -1 : v->second;
    };
    while (true) {
      float best = -1e10f;
      int best_id = -1, best_i = -1;
      for (size_t i = 1; i + 1 < t.size(); ++i) {
        const int m = merged(t[i], t[i + 1]);
        if (m >= 0 && scores[m] > best) {
          best = scores[m];
          best_id = m;
          best_i = static_cast<int>(i);
        }
      }
      if (best_i < 0) break;
      t[best_i] = best_id;
      t.erase(t.begin() + best_i + 1);
    }
    return t;
  }
};

struct HfBpe {
  std::map<std::string, int> vocab;
  std::vector<std::string> pieces;
  std::unordered_map<uint64_t, std::pair<int, int32_t>> ranks;  // (a << 32 | b) -> (rank, merged)
  explicit HfBpe(const std::string& dir) {
    auto j = nlohmann::json::parse(*ReadFile(dir + "/tokenizer.json"));
    for (auto it = j["model"]["vocab"].begin(); it != j["model"]["vocab"].end(); ++it) {
      vocab[it.key()] = it.value().get<int>();
    }
    pieces.resize(vocab.size());
    for (const auto& [p, id] : vocab) pieces[id] = p;
    int r = 0;
    for (const auto& m : j["model"]["merges"]) {
      std::string s = m.get<std::string>();
      size_t sp = s.find(' ');
      const std::string a = s.substr(0, sp), b = s.substr(sp + 1);
      const uint64_t key = (static_cast<uint64_t>(vocab.at(a)) << 32) | vocab.at(b);
      ranks[key] = {r++, vocab.at(a + b)};
    }
  }
  // Prepend "▁", spaces -> "▁", then lowest-rank merges over the whole string.
  std::vector<int32_t> Encode(const std::string& text) const {
    std::string norm = "\xE2\x96\x81";
    for (char c : text) norm += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    std::vector<int32_t> sym;  // characters missing from the vocab become <unk> (0)
    for (const std::string& ch : Utf8Chars(norm)) {
      auto it = vocab.find(ch);
      sym.push_back(it == vocab.end() ? 0 : it->second);
    }
    while (true) {
      int best = INT32_MAX;
      size_t bi = 0;
      int32_t best_id = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = ranks.find((static_cast<uint64_t>(sym[i]) << 32) | static_cast<uint32_t>(sym[i + 1]));
        if (it != ranks.end() && it->second.first < best) {
          best = it->second.first;
          best_id = it->second.second;
          bi = i;
        }
      }
      if (best == INT32_MAX) break;
      sym[bi] = best_id;
      sym.erase(sym.begin() + bi + 1);
    }
    sym.insert(sym.begin(), 1);
    return sym;
  }
  std::string Decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (int32_t id : ids) out += pieces[id];
    std::string res;
    for (size_t i = 0; i < out.size();) {
      if (out.compare(i, 3, "\xE2\x96\x81") == 0) {
        res += ' ';
        i += 3;
      } else {
        res += out[i++];
      }
    }
    return res;
  }
};

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) {
    if (!l.empty()) lines.push_back(l);
  }
  return lines;
}

// Perplexity over sequences (each scored from position 1), each cut to its first 256 tokens
// (keeps this test fast: attention over long contexts dominates for these tiny models).
double Perplexity(const Model& m, const std::vector<std::vector<int32_t>>& seqs) {
  double nll = 0;
  int64_t n = 0;
  const int64_t V = m.config.vocab_size;
  const size_t max_len = std::min<int64_t>(256, m.config.max_position_embeddings);
  for (auto ids : seqs) {
    if (ids.size() > max_len) ids.resize(max_len);
    auto logits = TeacherForcedLogits(m, ids);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return 0;
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      const float* row = logits->data() + t * V;
      double mx = *std::max_element(row, row + V), z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      nll += mx + std::log(z) - row[ids[t + 1]];
      ++n;
    }
  }
  return std::exp(nll / n);
}

std::string Models() { return slq::testing::ModelsDir(); }
std::string Data() { return slq::testing::DataDir(); }

std::vector<int32_t> Greedy(const Model& m, int n) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  o.use_model_eos = false;
  const int32_t bos = 1;
  auto r = Generate(m, std::span(&bos, 1), o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->tokens : std::vector<int32_t>{};
}

// ---- tests -------------------------------------------------------------------------------
TEST(RealModelTest, Stories260k) {
  auto m = LoadModel(Models() + "/stories260k/stories260K.bin");
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  EXPECT_EQ(model.files.at(0).sha256, "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696");
  EXPECT_EQ(model.config.rope_style, RopeStyle::kInterleaved);
  Llama2cVocab vocab(Models() + "/stories260k/tok512.bin", 512);
  std::vector<std::vector<int32_t>> seqs;
  for (const std::string& l : Lines(Data() + "/tinystories-valid-part1.txt")) {
    seqs.push_back(vocab.Encode(l));
  }
  const double ppl = Perplexity(model, seqs);
  std::cout << "stories260K perplexity: " << ppl << " (README reference 4.90)\n";
  EXPECT_GT(ppl, 3.5);
  EXPECT_LT(ppl, 7.0);
  std::string text;
  for (int32_t id : Greedy(model, 40)) text += vocab.pieces[id];
  std::cout << "stories260K greedy: " << text << "\n";
  EXPECT_THAT(text, ::testing::StartsWith(" Once upon a time"));
}

TEST(RealModelTest, TinyStories656k) {
  auto m = LoadModel(Models() + "/tinystories-656k");
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  ASSERT_EQ(model.files.size(), 2u);
  EXPECT_EQ(model.files[1].name, "model.safetensors");
  EXPECT_EQ(model.files[1].sha256, "187d0d5e8360d9625e40e0b35ec57d1ef0eea1a60ddcf09412246bed3484852f");
  EXPECT_TRUE(model.config.tie_word_embeddings);
  EXPECT_EQ(model.ParamCount(), 656000);  // README: 656,000 (tied head counted once)
  HfBpe bpe(Models() + "/tinystories-656k");
  std::vector<std::vector<int32_t>> seqs;
  for (const std::string& l : Lines(Data() + "/tinystories-valid-part1.txt")) {
    seqs.push_back(bpe.Encode(l));
  }
  const double ppl = Perplexity(model, seqs);
  std::cout << "TinyStories-656K perplexity: " << ppl << " (README reference 26.9)\n";
  EXPECT_GT(ppl, 15.0);
  EXPECT_LT(ppl, 45.0);
  std::string text = bpe.Decode(Greedy(model, 40));
  text.erase(0, text.find_first_not_of(' '));  // the decoder strips the leading space
  std::cout << "TinyStories-656K greedy: " << text << "\n";
  EXPECT_THAT(text, ::testing::StartsWith("Once upon a time"));
}

TEST(RealModelTest, Docs19mShardedBf16) {
  auto m = LoadModel(Models() + "/docs-19m");
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  EXPECT_EQ(model.files.size(), 5u);  // config, index, 3 shards
  EXPECT_FALSE(model.config.tie_word_embeddings);
  EXPECT_EQ(model.ParamCount(), 18880896);
  EXPECT_EQ((*m)->LinearSlots().size(), 8u * 7 + 1);
  // Untied: the head differs from the embeddings.
  const auto& head = dynamic_cast<const DenseLinear&>(*model.lm_head).weight();
  EXPECT_NE(head, model.embed);
  // Greedy decoding is deterministic and batched prefill agrees with incremental decode.
  std::vector<int32_t> a = Greedy(model, 24), b = Greedy(model, 24);
  EXPECT_EQ(a, b);
  std::vector<int32_t> seq = {1};
  seq.insert(seq.end(), a.begin(), a.end());
  auto logits = TeacherForcedLogits(model, seq);
  ASSERT_TRUE(logits.ok());
  const int64_t V = model.config.vocab_size;
  for (size_t t = 0; t + 1 < seq.size(); ++t) {
    const float* row = logits->data() + t * V;
    EXPECT_EQ(std::max_element(row, row + V) - row, seq[t + 1]) << t;
  }
}

}  // namespace
}  // namespace slq
