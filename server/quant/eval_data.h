// Calibration / held-out data: deterministic, disjoint split of a text into documents, and
// tokenized fixed-length sequences for teacher-forced evaluation.
//
//   SLQ_ASSIGN_OR_RETURN(EvalData d, PrepareEvalData(text, *tokenizer, opts));
//   // d.calibration and d.heldout never share a document.
//
// Documents: split on the ASCII record separator 0x1E when the text has one (debian-docs);
// else on blank lines (paragraphs) when there are at least 4 of them; else on lines. Empty
// documents are dropped. Document i goes to held-out when floor((i+1) f) > floor(i f) for the
// held-out fraction f: an even, seed-free interleaving. Each side's documents are tokenized
// (BOS in front when the tokenizer has one) and cut into windows of seq_len tokens (a shorter
// tail is kept when >= min_seq_len); when a side has more than max_sequences windows, evenly
// spaced ones are kept. The task-lossless cloze (cloze.h) draws its items from every held-out
// window (heldout_all, before that thinning: the same held-out documents, never calibration), so
// that its item count is limited by the text, not by the metric windows.
// Thread safety: pure functions.
#ifndef SLQ_SERVER_QUANT_EVAL_DATA_H_
#define SLQ_SERVER_QUANT_EVAL_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/tokenizer/tokenizer.h"

namespace slq::quant {

struct EvalDataOptions {
  double heldout_fraction = 0.5;
  int64_t seq_len = 128;
  int64_t min_seq_len = 16;
  int64_t max_calibration_sequences = 16;
  int64_t max_heldout_sequences = 32;
  int64_t min_sequences = 4;  // per side; fewer -> InvalidArgument "text too short"
};
void to_json(nlohmann::json& j, const EvalDataOptions& o);
void from_json(const nlohmann::json& j, EvalDataOptions& o);

// The windows the activation roundings (mse, gptq) fit their input Gram on. For fidelity targets:
// calibration-side text the profile and the closed loop never measure, so their calibration
// numbers stay unbiased for held-out (a Gram fitted on the measured windows made them optimistic:
// GPTQ fits those very windows); for budget targets every calibration window (`scheme`). Only
// used when the quantizers need a Gram; RTN-only runs never call AddGramWindows, so their windows
// and certificates do not change.
struct GramDataOptions {
  int64_t max_sequences = 128;  // Gram windows kept at most (evenly spaced)
  // "disjoint" needs at least this many calibration-side windows beyond `calibration`; with
  // fewer the calibration windows are split in two halves ("split-calibration").
  int64_t min_disjoint_sequences = 8;
  // "" (the above: "disjoint", else "split-calibration") or "all-calibration": every
  // calibration-side window, the measured ones included, calibration unchanged. The pipeline picks
  // "all-calibration" for `bits<=X` targets, which have no closed-loop acceptance to bias: there
  // the Gram's size is what counts (tinystories-656k, bench/results/llamacpp-kld-2026-12-02.md).
  std::string scheme;
};
void to_json(nlohmann::json& j, const GramDataOptions& o);
void from_json(const nlohmann::json& j, GramDataOptions& o);

struct EvalData {
  std::vector<std::vector<int32_t>> calibration;  // sequences of token ids
  std::vector<std::vector<int32_t>> heldout;
  // Every held-out window (heldout is an evenly spaced subset): the TL cloze's source.
  std::vector<std::vector<int32_t>> heldout_all;
  int64_t heldout_bytes = 0;  // bytes of the held-out documents (the cloze's items per KB)
  int64_t documents = 0, calibration_documents = 0, heldout_documents = 0;
  std::string split_rule;   // "record-separator", "paragraphs", "lines"
  std::string data_sha256;  // of the whole text
  // Set when the held-out side came from its own text (PrepareEvalData's heldout_text): its sha256.
  std::string heldout_sha256;
  // Filled by AddGramWindows only: windows for the input Gram, never held-out, and how they were
  // chosen ("disjoint" or "split-calibration": never in calibration either; "all-calibration":
  // every calibration-side window; empty: no Gram windows).
  std::vector<std::vector<int32_t>> gram;
  std::string gram_scheme;
  int64_t CalibrationTokens() const;
  int64_t HeldoutTokens() const;
  int64_t GramTokens() const;
};
void to_json(nlohmann::json& j, const EvalData& d);
void from_json(const nlohmann::json& j, EvalData& d);

// Splits text into documents (rule written to *rule).
std::vector<std::string> SplitDocuments(const std::string& text, std::string* rule);

// The calibration / held-out split of text's documents (the rule above), as PrepareEvalData
// makes it without heldout_text.
struct DocumentSplit {
  std::vector<std::string> calibration, heldout;
  std::string rule;
};
DocumentSplit SplitCalibrationHeldout(const std::string& text, double heldout_fraction);

// The inverse of SplitDocuments for documents it returned under `rule`: a text that splits back into
// the same documents (record-separator: joined by 0x1E; paragraphs: by a blank line; lines: by
// newlines), except that fewer than 4 paragraphs split back as lines (the caller checks).
std::string JoinDocuments(const std::vector<std::string>& docs, const std::string& rule);

// With heldout_text, no split: every document of `text` is calibration and every document of
// heldout_text is held-out (a user-chosen held-out text, e.g. `slqctl submit --eval`).
[[nodiscard]] absl::StatusOr<EvalData> PrepareEvalData(const std::string& text, const Tokenizer& tokenizer,
                                                       const EvalDataOptions& options,
                                                       const std::string* heldout_text = nullptr);

// Adds the Gram windows to `d` (made by PrepareEvalData from the same text, tokenizer, options
// and heldout_text). Split by document, like calibration / held-out: a Gram window never comes
// from a document that holds a calibration window. "disjoint": when the calibration-side
// documents without calibration windows give at least gram.min_disjoint_sequences windows, up
// to gram.max_sequences evenly spaced of those; d->calibration is unchanged. "split-calibration"
// (small texts): the documents holding calibration windows are dealt, in order, to the side with
// fewer calibration windows so far (the measured side on ties); the other side's windows (and
// any windows of documents without calibration windows) become the Gram windows and leave
// d->calibration, so the profile and the closed loop measure only text the Gram never saw, at
// the cost of fewer calibration windows (the bootstrap reports that). InvalidArgument when
// fewer than options.min_sequences calibration windows or no Gram window would remain, or when
// `d` already has Gram windows. With gram.scheme "all-calibration": every calibration-side window
// (at most gram.max_sequences, evenly spaced), d->calibration unchanged.
[[nodiscard]] absl::Status AddGramWindows(const std::string& text, const Tokenizer& tokenizer,
                                          const EvalDataOptions& options, const GramDataOptions& gram, EvalData* d,
                                          const std::string* heldout_text = nullptr);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_EVAL_DATA_H_
