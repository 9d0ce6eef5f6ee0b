// Byte-pair-encoding model of Hugging Face `tokenizers` ("model": {"type": "BPE", ...}).
//
// Tokenize() splits one pre-tokenized word into characters (unknown characters become
// <0xXX> byte tokens when byte_fallback is set, else the unk token, fused when fuse_unk),
// then applies merges lowest rank first, leftmost first, with a priority queue over a linked
// list of symbols: O(n log n) per word. Results for short words are cached.
// Immutable after FromJson except the internal cache (guarded by a mutex): thread-safe.
#ifndef SLQ_SERVER_MODEL_TOKENIZER_BPE_MODEL_H_
#define SLQ_SERVER_MODEL_TOKENIZER_BPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"

namespace slq::tok {

class BpeModel {
 public:
  // Parses the "model" object of tokenizer.json. InvalidArgument when vocab/merges are missing
  // or malformed, or a merge names a token that is not in the vocab.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of `word` to *out.
  void Tokenize(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The vocab string of `id`, or nullptr when no token has that id.
  const std::string* IdToToken(int32_t id) const;
  // 1 + the largest id in the vocab.
  int64_t size() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  BpeModel() = default;
  absl::Status LoadVocab(const nlohmann::json& vocab);
  absl::Status LoadMerges(const nlohmann::json& merges);
  // Initial symbols of `word` (characters, byte-fallback bytes, unk).
  void InitialSymbols(std::string_view word, std::vector<int32_t>* ids) const;
  void MergeSymbols(std::vector<int32_t>* ids) const;
  const MergeInfo* FindMerge(int32_t left, int32_t right) const;

  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, MergeInfo> merges_;  // key: left << 32 | right
  int32_t byte_ids_[256];                            // id of "<0xXX>", -1 when absent
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  static constexpr size_t kMaxCachedWordLen = 64;
  static constexpr size_t kMaxCacheEntries = 1 << 17;
  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_BPE_MODEL_H_
