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

std::vector<std::vector<int32_t>> Windows(const std::vector<std::string>& docs, const Tokenizer& tok,
                                          const EvalDataOptions& o) {
  std::vector<std::vector<int32_t>> out;
  for (const std::string& d : docs) {
    const std::vector<int32_t> ids = tok.Encode(d, /*add_special_tokens=*/false);
    const size_t body = static_cast<size_t>(o.seq_len) - (tok.bos_id() >= 0 ? 1 : 0);
    for (size_t b = 0; b < ids.size(); b += body) {
      const size_t e = std::min(ids.size(), b + body);
      const bool bos = tok.bos_id() >= 0;
      std::vector<int32_t> w(e - b + (bos ? 1 : 0));
      if (bos) w[0] = tok.bos_id();
      std::copy(ids.begin() + static_cast<std::ptrdiff_t>(b), ids.begin() + static_cast<std::ptrdiff_t>(e),
                w.begin() + (bos ? 1 : 0));
      if (static_cast<int64_t>(w.size()) >= o.min_seq_len) out.push_back(std::move(w));
    }
  }
  return out;
}

std::vector<std::vector<int32_t>> Subsample(std::vector<std::vector<int32_t>> v, int64_t max) {
  if (static_cast<int64_t>(v.size()) <= max) return v;
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < max; ++i) {
    out.push_back(std::move(v[static_cast<size_t>(i * static_cast<int64_t>(v.size()) / max)]));
  }
  return out;
}

int64_t Tokens(const std::vector<std::vector<int32_t>>& v) {
  int64_t n = 0;
  for (const auto& s : v) n += static_cast<int64_t>(s.size());
  return n;
}

}  // namespace

int64_t EvalData::CalibrationTokens() const { return Tokens(calibration); }
int64_t EvalData::HeldoutTokens() const { return Tokens(heldout); }

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
  const std::vector<std::string> docs = SplitDocuments(text, &s.rule);
  for (size_t i = 0; i < docs.size(); ++i) {
    const double f = heldout_fraction;
    const bool h = std::floor((i + 1) * f) > std::floor(i * f);
    (h ? s.heldout : s.calibration).push_back(docs[i]);
  }
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
  std::vector<std::string> calib, held;
  if (heldout_text != nullptr) {
    calib = SplitDocuments(text, &d.split_rule);
    d.heldout_sha256 = Sha256Hex(*heldout_text);
    std::string rule;
    held = SplitDocuments(*heldout_text, &rule);
    if (rule != d.split_rule) d.split_rule = absl::StrCat(d.split_rule, " / held-out ", rule);
  } else {
    DocumentSplit s = SplitCalibrationHeldout(text, o.heldout_fraction);
    calib = std::move(s.calibration);
    held = std::move(s.heldout);
    d.split_rule = std::move(s.rule);
  }
  d.documents = static_cast<int64_t>(calib.size() + held.size());
  d.calibration_documents = static_cast<int64_t>(calib.size());
  d.heldout_documents = static_cast<int64_t>(held.size());
  d.calibration = Subsample(Windows(calib, tokenizer, o), o.max_calibration_sequences);
  d.heldout = Subsample(Windows(held, tokenizer, o), o.max_heldout_sequences);
  if (static_cast<int64_t>(d.calibration.size()) < o.min_sequences ||
      static_cast<int64_t>(d.heldout.size()) < o.min_sequences) {
    return absl::InvalidArgumentError(
        absl::StrCat("text too short: ", d.documents, " documents (", d.split_rule, ") gave ", d.calibration.size(),
                     " calibration and ", d.heldout.size(), " held-out sequences of >= ", o.min_seq_len,
                     " tokens; need >= ", o.min_sequences, " each (provide more text or lower seq_len)"));
  }
  return d;
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
       {"documents", d.documents},
       {"calibration_documents", d.calibration_documents},
       {"heldout_documents", d.heldout_documents},
       {"split_rule", d.split_rule},
       {"data_sha256", d.data_sha256},
       {"heldout_sha256", d.heldout_sha256}};
}
void from_json(const nlohmann::json& j, EvalData& d) {
  j.at("calibration").get_to(d.calibration);
  j.at("heldout").get_to(d.heldout);
  d.documents = j.at("documents").get<int64_t>();
  d.calibration_documents = j.at("calibration_documents").get<int64_t>();
  d.heldout_documents = j.at("heldout_documents").get<int64_t>();
  d.split_rule = j.at("split_rule").get<std::string>();
  d.data_sha256 = j.at("data_sha256").get<std::string>();
  d.heldout_sha256 = j.value("heldout_sha256", std::string());
}

}  // namespace slq::quant
