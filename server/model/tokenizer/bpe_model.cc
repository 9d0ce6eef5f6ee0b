#include "server/model/tokenizer/bpe_model.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/model/tokenizer/utf8.h"

namespace slq::tok {
namespace {

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// Merges are "a b" strings (old format) or ["a", "b"] pairs (new format).
absl::StatusOr<std::pair<std::string, std::string>> ParseMerge(const nlohmann::json& m, size_t index) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    const size_t sp = s.find(' ', 1);
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tokenizer.json: merge #%d \"%s\" is not of the form \"left right\"", index, s));
    }
    return std::make_pair(s.substr(0, sp), s.substr(sp + 1));
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return std::make_pair(m[0].get<std::string>(), m[1].get<std::string>());
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("tokenizer.json: merge #%d is neither \"left right\" nor [\"left\", \"right\"]", index));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& model) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: BPE model has no \"vocab\" object");
  }
  SLQ_RETURN_IF_ERROR(m->LoadVocab(model["vocab"]));
  if (!model.contains("merges") || !model["merges"].is_array()) {
    return absl::InvalidArgumentError("tokenizer.json: BPE model has no \"merges\" array");
  }
  SLQ_RETURN_IF_ERROR(m->LoadMerges(model["merges"]));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "") {
      return absl::UnimplementedError(absl::StrCat("tokenizer.json: BPE option \"", key, "\" is not supported"));
    }
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    m->unk_id_ = m->TokenToId(model["unk_token"].get<std::string>());
  }
  m->byte_fallback_ = model.value("byte_fallback", false);
  m->fuse_unk_ = model.value("fuse_unk", false);
  m->ignore_merges_ = model.value("ignore_merges", false);
  for (int b = 0; b < 256; ++b) {
    m->byte_ids_[b] = m->TokenToId(absl::StrFormat("<0x%02X>", b)).value_or(-1);
  }
  return m;
}

absl::Status BpeModel::LoadVocab(const nlohmann::json& vocab) {
  for (const auto& [token, id_json] : vocab.items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 || id_json.get<int64_t>() > (1 << 24)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tokenizer.json: vocab id of \"%s\" must be an integer in [0, 2^24]", token));
    }
    const int32_t id = id_json.get<int32_t>();
    token_to_id_[token] = id;
    if (static_cast<size_t>(id) >= id_to_token_.size()) {
      id_to_token_.resize(id + 1);
      has_id_.resize(id + 1, false);
    }
    id_to_token_[id] = token;
    has_id_[id] = true;
  }
  return absl::OkStatus();
}

absl::Status BpeModel::LoadMerges(const nlohmann::json& merges) {
  merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    SLQ_ASSIGN_OR_RETURN(auto pair, ParseMerge(merges[i], i));
    const auto a = TokenToId(pair.first), b = TokenToId(pair.second);
    const auto merged = TokenToId(pair.first + pair.second);
    if (!a || !b || !merged) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tokenizer.json: merge #%d (\"%s\", \"%s\") references a token missing from the vocab", i,
                          pair.first, pair.second));
    }
    // Like HF (a map built in order), a repeated pair keeps its last rank.
    merges_[PairKey(*a, *b)] = MergeInfo{static_cast<int32_t>(i), *merged};
  }
  return absl::OkStatus();
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(absl::string_view(token.data(), token.size()));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::MergeInfo* BpeModel::FindMerge(int32_t left, int32_t right) const {
  auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<int32_t>* ids) const {
  bool pending_unk = false;  // an unk not yet emitted (fused with following unknown chars)
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = Utf8CharLen(word, pos);
    const std::string_view ch = word.substr(pos, len);
    pos += len;
    if (auto id = TokenToId(ch)) {
      if (pending_unk) ids->push_back(*unk_id_);
      pending_unk = false;
      ids->push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {  // HF leaves a pending unk pending here; so do we
        for (char c : ch) ids->push_back(byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (!unk_id_) continue;  // no unk token: HF drops the character
    if (pending_unk && !fuse_unk_) ids->push_back(*unk_id_);
    pending_unk = true;
  }
  if (pending_unk) ids->push_back(*unk_id_);
}

void BpeModel::MergeSymbols(std::vector<int32_t>* ids) const {
  const int n = static_cast<int>(ids->size());
  if (n < 2) return;
  struct Sym {
    int32_t id;
    int prev, next;  // -1 at the ends; a merged-away symbol has id -1
  };
  std::vector<Sym> syms(n);
  for (int i = 0; i < n; ++i) syms[i] = {(*ids)[i], i - 1, i + 1 < n ? i + 1 : -1};
  // Min-heap of candidate merges keyed (rank << 32 | position): lowest rank, then leftmost,
  // as HF's queue. A key stays valid while the pair at `position` still has that rank.
  std::vector<uint64_t> heap;
  heap.reserve(n);
  auto key_of = [&](int pos) -> std::optional<uint64_t> {
    if (pos < 0 || syms[pos].next < 0) return std::nullopt;
    const MergeInfo* m = FindMerge(syms[pos].id, syms[syms[pos].next].id);
    if (m == nullptr) return std::nullopt;
    return (static_cast<uint64_t>(m->rank) << 32) | static_cast<uint32_t>(pos);
  };
  for (int i = 0; i + 1 < n; ++i) {
    if (auto k = key_of(i)) heap.push_back(*k);
  }
  const auto cmp = std::greater<uint64_t>();
  std::make_heap(heap.begin(), heap.end(), cmp);
  auto push = [&](int pos) {
    if (auto k = key_of(pos)) {
      heap.push_back(*k);
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    const uint64_t key = heap.back();
    heap.pop_back();
    const int pos = static_cast<int>(key & 0xFFFFFFFFu);
    const int32_t rank = static_cast<int32_t>(key >> 32);
    Sym& left = syms[pos];
    if (left.id < 0 || left.next < 0) continue;
    const MergeInfo* m = FindMerge(left.id, syms[left.next].id);
    if (m == nullptr || m->rank != rank) continue;  // stale entry
    Sym& right = syms[left.next];
    left.id = m->new_id;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = pos;
    push(left.prev);
    push(pos);
  }
  ids->clear();
  for (int i = 0; i >= 0; i = syms[i].next) ids->push_back(syms[i].id);
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = TokenToId(word)) {
      out->push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordLen;
  if (cacheable) {
    absl::ReaderMutexLock lock(&cache_mu_);
    auto it = cache_.find(absl::string_view(word.data(), word.size()));
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  InitialSymbols(word, &ids);
  MergeSymbols(&ids);
  out->insert(out->end(), ids.begin(), ids.end());
  if (cacheable) {
    absl::MutexLock lock(&cache_mu_);
    if (cache_.size() < kMaxCacheEntries) cache_.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace slq::tok
