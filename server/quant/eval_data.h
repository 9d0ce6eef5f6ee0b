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
// spaced ones are kept. Thread safety: pure functions.
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

struct EvalData {
  std::vector<std::vector<int32_t>> calibration;  // sequences of token ids
  std::vector<std::vector<int32_t>> heldout;
  int64_t documents = 0, calibration_documents = 0, heldout_documents = 0;
  std::string split_rule;   // "record-separator", "paragraphs", "lines"
  std::string data_sha256;  // of the whole text
  // Set when the held-out side came from its own text (PrepareEvalData's heldout_text): its sha256.
  std::string heldout_sha256;
  int64_t CalibrationTokens() const;
  int64_t HeldoutTokens() const;
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

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_EVAL_DATA_H_
