// LAMBADA-style cloze for the task-lossless check (METHOD.md section 1), built from held-out
// evaluation windows and scored mostly from the teacher-forced logits the fidelity metrics
// already compute.
//
//   ClozeTask task = SelectClozeTask(data.heldout_all, *tokenizer, 8, 2000);  // items + their windows
//   auto hits = ClozeHits(model, *tokenizer, task.windows, task.items, first_greedy_token);
//   TaskResult t = TaskFromHits(hits_base, hits_quant);   // t.verdict, t.min_detectable_diff
//
// Task: SelectClozeTask finds the items of every held-out window; when there are more than
// wanted it keeps the fewest evenly spaced windows (Subsample's rule) whose items reach the
// count, then evenly spaced items among theirs, so that scoring costs as few forward passes
// as the count allows and the items still spread over the whole held-out text.
// Items: the last word of every sentence inside each window (a run of ASCII letters preceded
// by a space or newline and directly followed by '.', '!' or '?') whose first character, or
// the space in front of it, starts a token (the passage up to there is then a token prefix of
// the window; with SentencePiece / byte-level BPE the space belongs to the word's token), with at
// least `min_context` tokens in front of it. At most max_items, evenly spaced.
// Hit: the model's greedy continuation of the passage spells the word followed by a
// non-letter. The first greedy token is given by the caller (the argmax of the teacher-forced
// logits at that position); only when that token's text is a proper prefix of the word (or the
// word exactly) does ClozeHits generate further greedy tokens (at most 8) with the model.
// TL holds when |acc_quant - acc_base| <= 1.96 x sqrt(acc_base (1 - acc_base) / items) and the
// test has 80% power at a 0.05 difference (tl_power.h); without that power the verdict is
// "inconclusive: too few items".
// Thread safety: the model is only read.
#ifndef SLQ_SERVER_QUANT_CLOZE_H_
#define SLQ_SERVER_QUANT_CLOZE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/model.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/metrics.h"

namespace slq::quant {

struct ClozeItem {
  int64_t seq = 0;     // index of the window
  int64_t pos = 0;     // token index where the word (or the space before it) starts: the
                       // passage is tokens [0, pos)
  std::string word;    // the word ("Lily")
  std::string target;  // what the continuation must spell: "Lily" or " Lily"
};

std::vector<ClozeItem> FindClozeItems(const std::vector<std::vector<int32_t>>& seqs, const Tokenizer& tokenizer,
                                      int64_t min_context, int64_t max_items);

struct ClozeTask {
  // The windows holding the items (ClozeItem::seq indexes them), each cut after its last item's
  // passage (tokens [0, max pos)): all that scoring reads.
  std::vector<std::vector<int32_t>> windows;
  std::vector<ClozeItem> items;
  int64_t available = 0;  // items in all the windows given (>= items.size())
};

// want <= 0: every item of every window.
ClozeTask SelectClozeTask(const std::vector<std::vector<int32_t>>& windows, const Tokenizer& tokenizer,
                          int64_t min_context, int64_t want);

// first_token(seq, pos): the model's greedy token after tokens [0, pos) of window seq.
using FirstTokenFn = std::function<int32_t(int64_t seq, int64_t pos)>;

[[nodiscard]] absl::StatusOr<std::vector<uint8_t>> ClozeHits(const Model& model, const Tokenizer& tokenizer,
                                                             const std::vector<std::vector<int32_t>>& seqs,
                                                             const std::vector<ClozeItem>& items,
                                                             const FirstTokenFn& first_token);

TaskResult TaskFromHits(const std::vector<uint8_t>& base, const std::vector<uint8_t>& quant);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_CLOZE_H_
