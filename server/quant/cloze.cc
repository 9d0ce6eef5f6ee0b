// FindClozeItems / ClozeHits / TaskFromHits: see cloze.h.
#include "server/quant/cloze.h"

#include <cmath>

#include "server/common/status_macros.h"
#include "server/model/generate.h"

namespace slq::quant {
namespace {

bool Letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

enum class Verdict { kHit, kMiss, kOpen };

// Does continuation text `t` spell `word` + a non-letter? kOpen: t is a prefix of word (or word
// itself with nothing after it yet).
Verdict Judge(const std::string& t, const std::string& word) {
  const size_t n = std::min(t.size(), word.size());
  if (t.compare(0, n, word, 0, n) != 0) return Verdict::kMiss;
  if (t.size() <= word.size()) return Verdict::kOpen;
  return Letter(t[word.size()]) ? Verdict::kMiss : Verdict::kHit;
}

}  // namespace

std::vector<ClozeItem> FindClozeItems(const std::vector<std::vector<int32_t>>& seqs, const Tokenizer& tokenizer,
                                      int64_t min_context, int64_t max_items) {
  std::vector<ClozeItem> all;
  for (size_t s = 0; s < seqs.size(); ++s) {
    std::string text;
    std::vector<int64_t> token_at;  // token_at[c] = index of the token starting at char c, or -1
    for (size_t i = 0; i < seqs[s].size(); ++i) {
      const std::string b = tokenizer.TokenBytes(seqs[s][i]);
      if (b.empty()) continue;
      token_at.resize(text.size() + b.size(), -1);
      token_at[text.size()] = static_cast<int64_t>(i);
      text += b;
    }
    for (size_t c = 1; c < text.size(); ++c) {
      if (text[c] != '.' && text[c] != '!' && text[c] != '?') continue;
      size_t a = c;
      while (a > 0 && Letter(text[a - 1])) --a;
      if (a == c || a == 0 || (text[a - 1] != ' ' && text[a - 1] != '\n')) continue;
      // The word starts a token ("Lily. She ") or its space does (" Lily": SentencePiece and
      // byte-level BPE put the space in front); the continuation must spell what follows.
      int64_t pos = token_at[a];
      std::string target = text.substr(a, c - a);
      if (pos < 0 && token_at[a - 1] >= 0) {
        pos = token_at[a - 1];
        target = text.substr(a - 1, c - a + 1);
      }
      if (pos < std::max<int64_t>(1, min_context)) continue;
      all.push_back({static_cast<int64_t>(s), pos, text.substr(a, c - a), target});
    }
  }
  if (max_items <= 0 || static_cast<int64_t>(all.size()) <= max_items) return all;
  std::vector<ClozeItem> out;
  for (int64_t i = 0; i < max_items; ++i) {
    out.push_back(all[static_cast<size_t>(i * static_cast<int64_t>(all.size()) / max_items)]);
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> ClozeHits(const Model& model, const Tokenizer& tokenizer,
                                               const std::vector<std::vector<int32_t>>& seqs,
                                               const std::vector<ClozeItem>& items, const FirstTokenFn& first_token) {
  std::vector<uint8_t> hits;
  for (const ClozeItem& it : items) {
    const std::vector<int32_t>& ids = seqs.at(static_cast<size_t>(it.seq));
    const int32_t t0 = first_token(it.seq, it.pos);
    std::string text = tokenizer.TokenBytes(t0);
    Verdict v = Judge(text, it.target);
    if (v == Verdict::kOpen && !text.empty()) {
      std::vector<int32_t> prompt(ids.begin(), ids.begin() + it.pos);
      prompt.push_back(t0);
      GenerateOptions o;
      o.max_new_tokens = 8;
      o.sampling.temperature = 0;
      SLQ_RETURN_IF_ERROR(Generate(model, prompt, o, [&](int32_t id) {
                            text += tokenizer.TokenBytes(id);
                            v = Judge(text, it.target);
                            return v == Verdict::kOpen;
                          }).status());
    }
    hits.push_back(v == Verdict::kHit);
  }
  return hits;
}

TaskResult TaskFromHits(const std::vector<uint8_t>& base, const std::vector<uint8_t>& quant) {
  TaskResult r;
  r.task = "cloze-last-word";
  r.spelling = "word or space + word, as the tokenizer starts it";
  r.items = static_cast<int64_t>(std::min(base.size(), quant.size()));
  for (int64_t i = 0; i < r.items; ++i) {
    r.hits_base += base[static_cast<size_t>(i)];
    r.hits_quant += quant[static_cast<size_t>(i)];
  }
  if (r.items == 0) return r;
  const double n = static_cast<double>(r.items);
  r.acc_base = static_cast<double>(r.hits_base) / n;
  r.acc_quant = static_cast<double>(r.hits_quant) / n;
  r.se_base = std::sqrt(r.acc_base * (1 - r.acc_base) / n);
  r.tl_holds = std::fabs(r.acc_quant - r.acc_base) <= 1.96 * r.se_base + 1e-12;
  return r;
}

}  // namespace slq::quant
