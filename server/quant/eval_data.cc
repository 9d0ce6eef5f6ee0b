#include "server/quant/eval_data.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/sha256.h"

namespace slq::quant {
namespace {

bool Blank(absl::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

// doc_of (optional): the index in docs of each window's document.
std::vector<std::vector<int32_t>> Windows(const std::vector<std::string>& docs, const Tokenizer& tok,
                                          const EvalDataOptions& o, std::vector<size_t>* doc_of = nullptr) {
  std::vector<std::vector<int32_t>> out;
  for (size_t di = 0; di < docs.size(); ++di) {
    const std::string& d = docs[di];
    const std::vector<int32_t> ids = tok.Encode(d, /*add_special_tokens=*/false);
    const size_t body = static_cast<size_t>(o.seq_len) - (tok.bos_id() >= 0 ? 1 : 0);
    for (size_t b = 0; b < ids.size(); b += body) {
      const size_t e = std::min(ids.size(), b + body);
      const bool bos = tok.bos_id() >= 0;
      std::vector<int32_t> w(e - b + (bos ? 1 : 0));
      if (bos) w[0] = tok.bos_id();
      std::copy(ids.begin() + static_cast<std::ptrdiff_t>(b), ids.begin() + static_cast<std::ptrdiff_t>(e),
                w.begin() + (bos ? 1 : 0));
      if (static_cast<int64_t>(w.size()) < o.min_seq_len) continue;
      out.push_back(std::move(w));
      if (doc_of != nullptr) doc_of->push_back(di);
    }
  }
  return out;
}

// The indices of n windows that an even subsample to at most max keeps (ascending).
std::vector<size_t> SubsampleIndices(size_t n, int64_t max) {
  std::vector<size_t> idx;
  if (static_cast<int64_t>(n) <= max) {
    for (size_t i = 0; i < n; ++i) idx.push_back(i);
    return idx;
  }
  for (int64_t i = 0; i < max; ++i) idx.push_back(static_cast<size_t>(i * static_cast<int64_t>(n) / max));
  return idx;
}

std::vector<std::vector<int32_t>> Subsample(std::vector<std::vector<int32_t>> v, int64_t max) {
  std::vector<std::vector<int32_t>> out;
  for (size_t i : SubsampleIndices(v.size(), max)) out.push_back(std::move(v[i]));
  return out;
}

// The calibration-side and held-out documents of a text (see eval_data.h).
void SplitSides(const std::vector<std::string>& docs, double heldout_fraction, std::vector<std::string>* calib,
                std::vector<std::string>* held) {
  for (size_t i = 0; i < docs.size(); ++i) {
    const double f = heldout_fraction;
    const bool h = std::floor((i + 1) * f) > std::floor(i * f);
    (h ? *held : *calib).push_back(docs[i]);
  }
}

int64_t Tokens(const std::vector<std::vector<int32_t>>& v) {
  int64_t n = 0;
  for (const auto& s : v) n += static_cast<int64_t>(s.size());
  return n;
}

}  // namespace

int64_t EvalData::CalibrationTokens() const { return Tokens(calibration); }
int64_t EvalData::HeldoutTokens() const { return Tokens(heldout); }
int64_t EvalData::GramTokens() const { return Tokens(gram); }

std::vector<std::string> SplitDocuments(const std::string& text, std::string* rule) {
  std::vector<std::string> parts;
  if (text.find('\x1e') != std::string::npos) {
    *rule = "record-separator";
    parts = absl::StrSplit(text, '\x1e');
  } else {
    std::vector<std::string> paras;
    std::string cur;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (Blank(line)) {
        if (!Blank(cur)) paras.push_back(cur);
        cur.clear();
      } else {
        absl::StrAppend(&cur, line, "\n");
      }
    }
    if (!Blank(cur)) paras.push_back(cur);
    if (paras.size() >= 4) {
      *rule = "paragraphs";
      parts = std::move(paras);
    } else {
      *rule = "lines";
      parts = absl::StrSplit(text, '\n');
    }
  }
  std::vector<std::string> docs;
  for (auto& p : parts) {
    if (!Blank(p)) docs.push_back(std::string(absl::StripSuffix(p, "\r")));
  }
  return docs;
}

DocumentSplit SplitCalibrationHeldout(const std::string& text, double heldout_fraction) {
  DocumentSplit s;
  SplitSides(SplitDocuments(text, &s.rule), heldout_fraction, &s.calibration, &s.heldout);
  return s;
}

std::string JoinDocuments(const std::vector<std::string>& docs, const std::string& rule) {
  if (rule == "record-separator") return absl::StrJoin(docs, "\x1e");
  std::string out;
  for (const std::string& d : docs) {
    if (!out.empty() && rule == "paragraphs") out += "\n";
    out += d;
    if (out.back() != '\n') out += "\n";
  }
  return out;
}

absl::StatusOr<EvalData> PrepareEvalData(const std::string& text, const Tokenizer& tokenizer, const EvalDataOptions& o,
                                         const std::string* heldout_text) {
  if (!(o.heldout_fraction > 0 && o.heldout_fraction < 1) || o.seq_len < 2 || o.min_seq_len < 2 ||
      o.min_seq_len > o.seq_len || o.max_calibration_sequences < 1 || o.max_heldout_sequences < 1) {
    return absl::InvalidArgumentError(absl::StrCat("eval data options: heldout_fraction ", o.heldout_fraction,
                                                   " must be in (0, 1), seq_len ", o.seq_len, " >= min_seq_len ",
                                                   o.min_seq_len, " >= 2, max sequences >= 1"));
  }
  EvalData d;
  d.data_sha256 = Sha256Hex(text);
  const std::vector<std::string> docs = SplitDocuments(text, &d.split_rule);
  std::vector<std::string> calib, held;
  if (heldout_text != nullptr) {
    calib = docs;
    d.heldout_sha256 = Sha256Hex(*heldout_text);
    std::string rule;
    held = SplitDocuments(*heldout_text, &rule);
    if (rule != d.split_rule) d.split_rule = absl::StrCat(d.split_rule, " / held-out ", rule);
  } else {
    SplitSides(docs, o.heldout_fraction, &calib, &held);
  }
  d.documents = static_cast<int64_t>(calib.size() + held.size());
  d.calibration_documents = static_cast<int64_t>(calib.size());
  d.heldout_documents = static_cast<int64_t>(held.size());
  d.calibration = Subsample(Windows(calib, tokenizer, o), o.max_calibration_sequences);
  for (const std::string& h : held) d.heldout_bytes += static_cast<int64_t>(h.size());
  d.heldout_all = Windows(held, tokenizer, o);
  d.heldout = Subsample(d.heldout_all, o.max_heldout_sequences);
  if (static_cast<int64_t>(d.calibration.size()) < o.min_sequences ||
      static_cast<int64_t>(d.heldout.size()) < o.min_sequences) {
    return absl::InvalidArgumentError(
        absl::StrCat("text too short: ", d.documents, " documents (", d.split_rule, ") gave ", d.calibration.size(),
                     " calibration and ", d.heldout.size(), " held-out sequences of >= ", o.min_seq_len,
                     " tokens; need >= ", o.min_sequences, " each (provide more text or lower seq_len)"));
  }
  return d;
}

absl::Status AddGramWindows(const std::string& text, const Tokenizer& tokenizer, const EvalDataOptions& o,
                            const GramDataOptions& g, EvalData* d, const std::string* heldout_text) {
  if (g.max_sequences < 1 || g.min_disjoint_sequences < 1) {
    return absl::InvalidArgumentError(absl::StrCat("gram data options: max_sequences ", g.max_sequences,
                                                   " and min_disjoint_sequences ", g.min_disjoint_sequences,
                                                   " must be >= 1"));
  }
  if (!d->gram.empty()) return absl::InvalidArgumentError("AddGramWindows: the data already has Gram windows");
  std::string rule;
  const std::vector<std::string> docs = SplitDocuments(text, &rule);
  std::vector<std::string> calib, held;
  if (heldout_text != nullptr) {
    calib = docs;
  } else {
    SplitSides(docs, o.heldout_fraction, &calib, &held);
  }
  std::vector<size_t> doc_of;
  std::vector<std::vector<int32_t>> all = Windows(calib, tokenizer, o, &doc_of);
  const std::vector<size_t> kept = SubsampleIndices(all.size(), o.max_calibration_sequences);
  if (kept.size() != d->calibration.size()) {
    return absl::InvalidArgumentError("AddGramWindows: `d` was not prepared from this text and options");
  }
  if (g.scheme == "all-calibration") {
    d->gram = Subsample(std::move(all), g.max_sequences);
    d->gram_scheme = g.scheme;
    return absl::OkStatus();
  }
  if (!g.scheme.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gram data options: scheme '", g.scheme, "' is not '' or 'all-calibration'"));
  }
  // By document, as the held-out split is: a Gram window never shares a document with a
  // measured calibration window (windows of one document are not independent).
  std::vector<int> side(calib.size(), 0);  // per document: 0 none yet, 1 measured, 2 Gram
  for (size_t i : kept) side[doc_of[i]] = 1;
  std::vector<std::vector<int32_t>> gram;
  for (size_t i = 0; i < all.size(); ++i) {
    if (side[doc_of[i]] == 0) gram.push_back(all[i]);
  }
  if (static_cast<int64_t>(gram.size()) >= g.min_disjoint_sequences) {
    d->gram = Subsample(std::move(gram), g.max_sequences);
    d->gram_scheme = "disjoint";
    return absl::OkStatus();
  }
  // split-calibration: the documents holding calibration windows go, in order, to the side
  // with fewer calibration windows so far (measured on ties); the Gram side's windows leave
  // the calibration set.
  int64_t measured = 0, to_gram = 0;
  for (size_t k = 0; k < kept.size();) {
    const size_t doc = doc_of[kept[k]];
    int64_t n = 0;
    for (; k < kept.size() && doc_of[kept[k]] == doc; ++k) ++n;
    side[doc] = measured <= to_gram ? 1 : 2;
    (side[doc] == 1 ? measured : to_gram) += n;
  }
  std::vector<std::vector<int32_t>> loop;
  gram.clear();
  for (size_t i = 0, k = 0; i < all.size(); ++i) {
    const bool in_calibration = k < kept.size() && kept[k] == i;
    if (in_calibration) ++k;
    if (side[doc_of[i]] == 2 || side[doc_of[i]] == 0) {
      gram.push_back(std::move(all[i]));
    } else if (in_calibration) {
      loop.push_back(std::move(all[i]));
    }
  }
  if (static_cast<int64_t>(loop.size()) < o.min_sequences || gram.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text too short for the activation roundings (mse, gptq): the calibration side's ", calib.size(),
        " documents give ", kept.size(), " calibration windows; split by document for the input Gram they leave ",
        loop.size(), " calibration and ", gram.size(), " Gram windows, need >= ", o.min_sequences,
        " and >= 1 (provide more text, or use --quantizers rtn)"));
  }
  d->calibration = std::move(loop);
  d->gram = Subsample(std::move(gram), g.max_sequences);
  d->gram_scheme = "split-calibration";
  return absl::OkStatus();
}

void to_json(nlohmann::json& j, const GramDataOptions& o) {
  j = {{"max_sequences", o.max_sequences}, {"min_disjoint_sequences", o.min_disjoint_sequences}};
  if (!o.scheme.empty()) j["scheme"] = o.scheme;
}
void from_json(const nlohmann::json& j, GramDataOptions& o) {
  o.max_sequences = j.value("max_sequences", o.max_sequences);
  o.min_disjoint_sequences = j.value("min_disjoint_sequences", o.min_disjoint_sequences);
  o.scheme = j.value("scheme", o.scheme);
}

void to_json(nlohmann::json& j, const EvalDataOptions& o) {
  j = {{"heldout_fraction", o.heldout_fraction},
       {"seq_len", o.seq_len},
       {"min_seq_len", o.min_seq_len},
       {"max_calibration_sequences", o.max_calibration_sequences},
       {"max_heldout_sequences", o.max_heldout_sequences},
       {"min_sequences", o.min_sequences}};
}
void from_json(const nlohmann::json& j, EvalDataOptions& o) {
  o.heldout_fraction = j.value("heldout_fraction", o.heldout_fraction);
  o.seq_len = j.value("seq_len", o.seq_len);
  o.min_seq_len = j.value("min_seq_len", o.min_seq_len);
  o.max_calibration_sequences = j.value("max_calibration_sequences", o.max_calibration_sequences);
  o.max_heldout_sequences = j.value("max_heldout_sequences", o.max_heldout_sequences);
  o.min_sequences = j.value("min_sequences", o.min_sequences);
}
void to_json(nlohmann::json& j, const EvalData& d) {
  j = {{"calibration", d.calibration},
       {"heldout", d.heldout},
       {"heldout_all", d.heldout_all},
       {"heldout_bytes", d.heldout_bytes},
       {"documents", d.documents},
       {"calibration_documents", d.calibration_documents},
       {"heldout_documents", d.heldout_documents},
       {"split_rule", d.split_rule},
       {"data_sha256", d.data_sha256},
       {"heldout_sha256", d.heldout_sha256}};
  if (!d.gram_scheme.empty()) {  // only runs that need a Gram have one
    j["gram"] = d.gram;
    j["gram_scheme"] = d.gram_scheme;
  }
}
void from_json(const nlohmann::json& j, EvalData& d) {
  j.at("calibration").get_to(d.calibration);
  j.at("heldout").get_to(d.heldout);
  if (j.contains("heldout_all")) j.at("heldout_all").get_to(d.heldout_all);
  d.heldout_bytes = j.value("heldout_bytes", int64_t{0});
  d.documents = j.at("documents").get<int64_t>();
  d.calibration_documents = j.at("calibration_documents").get<int64_t>();
  d.heldout_documents = j.at("heldout_documents").get<int64_t>();
  d.split_rule = j.at("split_rule").get<std::string>();
  d.data_sha256 = j.at("data_sha256").get<std::string>();
  d.heldout_sha256 = j.value("heldout_sha256", std::string());
  d.gram = j.value("gram", std::vector<std::vector<int32_t>>());
  d.gram_scheme = j.value("gram_scheme", std::string());
}

}  // namespace slq::quant
