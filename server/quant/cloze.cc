// FindClozeItems / ClozeHits / TaskFromHits: see cloze.h.
#include "server/quant/cloze.h"

#include <algorithm>
#include <cmath>

#include "server/quant/tl_power.h"

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

ClozeTask SelectClozeTask(const std::vector<std::vector<int32_t>>& windows, const Tokenizer& tokenizer,
                          int64_t min_context, int64_t want) {
  ClozeTask task;
  const std::vector<ClozeItem> all = FindClozeItems(windows, tokenizer, min_context, 0);
  task.available = static_cast<int64_t>(all.size());
  const int64_t w = static_cast<int64_t>(windows.size());
  std::vector<int64_t> per_window(static_cast<size_t>(w), 0);
  for (const ClozeItem& it : all) ++per_window[static_cast<size_t>(it.seq)];
  // The fewest evenly spaced windows (window i * w / m for i < m) whose items reach `want`.
  auto pick = [&](int64_t m) {
    std::vector<int64_t> chosen;
    for (int64_t i = 0; i < m; ++i) chosen.push_back(i * w / m);
    return chosen;
  };
  auto count = [&](const std::vector<int64_t>& chosen) {
    int64_t n = 0;
    for (int64_t c : chosen) n += per_window[static_cast<size_t>(c)];
    return n;
  };
  int64_t m = w;
  if (want > 0 && task.available > want) {
    int64_t lo = 1, hi = w;  // the item count grows with m up to the spacing's rounding: bisect, then step up
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (count(pick(mid)) >= want) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    m = lo;
    while (m < w && count(pick(m)) < want) ++m;
  }
  std::vector<ClozeItem> kept;
  for (int64_t c : pick(m)) {
    if (per_window[static_cast<size_t>(c)] == 0) continue;
    const int64_t seq = static_cast<int64_t>(task.windows.size());
    task.windows.push_back(windows[static_cast<size_t>(c)]);
    for (const ClozeItem& it : all) {
      if (it.seq != c) continue;
      kept.push_back(it);
      kept.back().seq = seq;
    }
  }
  const int64_t k = static_cast<int64_t>(kept.size());
  if (want <= 0 || k <= want) {
    task.items = std::move(kept);
  } else {
    for (int64_t i = 0; i < want; ++i) task.items.push_back(kept[static_cast<size_t>(i * k / want)]);
  }
  // Scoring reads a window only up to its last item's passage: drop the rest (and windows left
  // without items), so the teacher-forced pass runs over no more tokens than the items need.
  std::vector<int64_t> end(task.windows.size(), 0);
  for (const ClozeItem& it : task.items)
    end[static_cast<size_t>(it.seq)] = std::max(end[static_cast<size_t>(it.seq)], it.pos);
  std::vector<int64_t> renum(task.windows.size(), -1);
  std::vector<std::vector<int32_t>> trimmed;
  for (size_t i = 0; i < task.windows.size(); ++i) {
    if (end[i] == 0) continue;
    renum[i] = static_cast<int64_t>(trimmed.size());
    trimmed.emplace_back(task.windows[i].begin(), task.windows[i].begin() + end[i]);
  }
  for (ClozeItem& it : task.items) it.seq = renum[static_cast<size_t>(it.seq)];
  task.windows = std::move(trimmed);
  return task;
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
    const bool b = base[static_cast<size_t>(i)] != 0, q = quant[static_cast<size_t>(i)] != 0;
    r.hits_base += b;
    r.hits_quant += q;
    r.base_only += b && !q;
    r.quant_only += q && !b;
  }
  if (r.items == 0) return r;
  const double n = static_cast<double>(r.items);
  r.acc_base = static_cast<double>(r.hits_base) / n;
  r.acc_quant = static_cast<double>(r.hits_quant) / n;
  r.se_base = std::sqrt(r.acc_base * (1 - r.acc_base) / n);
  r.min_detectable_diff = MinDetectableDifference(r.acc_base, r.items);
  r.items_for_5pt = ItemsToDetect(r.acc_base, kTlDetectableDifference, r.items);
  const bool within = std::fabs(r.acc_quant - r.acc_base) <= kTlZAlpha * r.se_base + 1e-12;
  r.tl_holds = within && TlConclusive(r.acc_base, r.items);
  if (!within) {
    r.verdict = "not task-lossless";
  } else if (r.tl_holds) {
    r.verdict = "task-lossless";
  } else if (r.min_detectable_diff > kTlDetectableDifference) {
    r.verdict = "inconclusive: too few items";
  } else {
    r.verdict = "inconclusive: base accuracy too close to 0 or 1";
  }
  return r;
}

}  // namespace slq::quant
