#include "server/quant/input_gram.h"

#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/model/forward.h"
#include "spdlog/spdlog.h"

namespace slq::quant {
namespace {

// Runs `inner` and adds its input's Gram into *gram.
class GramCapture final : public LinearOp {
 public:
  GramCapture(std::unique_ptr<LinearOp> inner, InputGram* gram) : inner_(std::move(inner)), gram_(gram) {}
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  void Forward(const float* x, int64_t n, float* y) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      AccumulateGram(x, n, gram_);
    }
    inner_->Forward(x, n, y);
  }
  size_t MemoryBytes() const override { return inner_->MemoryBytes(); }
  std::string Describe() const override { return inner_->Describe(); }
  const PackedLinear* packed() const override { return inner_->packed(); }
  std::vector<float> WeightF32() const override { return inner_->WeightF32(); }
  std::unique_ptr<LinearOp> Release() { return std::move(inner_); }

 private:
  std::unique_ptr<LinearOp> inner_;
  InputGram* gram_;
  mutable std::mutex mu_;
};

constexpr char kGramMagic[8] = {'S', 'L', 'Q', 'G', 'R', 'A', 'M', '1'};

template <typename T>
void Put(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Reads a T at *pos; false past the end.
template <typename T>
bool Get(const std::string& in, size_t* pos, T* v) {
  if (in.size() - *pos < sizeof(T)) return false;
  std::memcpy(v, in.data() + *pos, sizeof(T));
  *pos += sizeof(T);
  return true;
}

// magic, count, then per slot: name length, name, cols, tokens, cols * cols doubles.
std::string SerializeGrams(const std::map<std::string, InputGram>& grams) {
  std::string out(kGramMagic, sizeof(kGramMagic));
  Put(&out, static_cast<uint64_t>(grams.size()));
  for (const auto& [name, g] : grams) {
    Put(&out, static_cast<uint64_t>(name.size()));
    out += name;
    Put(&out, static_cast<int64_t>(g.cols));
    Put(&out, static_cast<int64_t>(g.tokens));
    out.append(reinterpret_cast<const char*>(g.h.data()), g.h.size() * sizeof(double));
  }
  return out;
}

// The Grams of exactly `slots`, or nullopt when `in` is not such a file.
std::optional<std::map<std::string, InputGram>> ParseGrams(const std::string& in,
                                                           const std::vector<std::string>& slots) {
  if (in.size() < sizeof(kGramMagic) || std::memcmp(in.data(), kGramMagic, sizeof(kGramMagic)) != 0) return {};
  size_t pos = sizeof(kGramMagic);
  uint64_t count = 0;
  if (!Get(in, &pos, &count) || count != slots.size()) return {};
  std::map<std::string, InputGram> grams;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t len = 0;
    if (!Get(in, &pos, &len) || in.size() - pos < len) return {};
    std::string name = in.substr(pos, len);
    pos += len;
    InputGram g;
    int64_t cols = 0, tokens = 0;
    if (!Get(in, &pos, &cols) || !Get(in, &pos, &tokens) || cols < 0 || tokens < 0) return {};
    const uint64_t bytes = static_cast<uint64_t>(cols) * static_cast<uint64_t>(cols) * sizeof(double);
    if (in.size() - pos < bytes) return {};
    g.cols = cols;
    g.tokens = tokens;
    g.h.resize(static_cast<size_t>(cols * cols));
    std::memcpy(g.h.data(), in.data() + pos, bytes);
    pos += bytes;
    grams[name] = std::move(g);
  }
  if (pos != in.size()) return {};
  for (const std::string& s : slots) {
    if (!grams.contains(s)) return {};
  }
  return grams;
}

}  // namespace

absl::StatusOr<std::map<std::string, InputGram>> CaptureInputGrams(Model& model, const std::vector<std::string>& slots,
                                                                   const std::vector<std::vector<int32_t>>& seqs) {
  std::map<std::string, InputGram> grams;
  std::map<std::string, std::unique_ptr<LinearOp>*> wrapped;
  for (const std::string& name : slots) grams[name];
  for (LinearSlot& s : model.LinearSlots()) {
    auto it = grams.find(s.name);
    if (it == grams.end() || *s.op == nullptr) continue;
    it->second.cols = (*s.op)->in_features();
    *s.op = std::make_unique<GramCapture>(std::move(*s.op), &it->second);
    wrapped[s.name] = s.op;
  }
  absl::Status status = wrapped.size() == grams.size()
                            ? absl::OkStatus()
                            : absl::NotFoundError("some slots to capture are not linear slots of the model");
  for (size_t i = 0; status.ok() && i < seqs.size(); ++i) status = TeacherForcedLogits(model, seqs[i]).status();
  for (auto& [name, op] : wrapped) *op = static_cast<GramCapture*>(op->get())->Release();
  SLQ_RETURN_IF_ERROR(status);
  return grams;
}

absl::StatusOr<std::map<std::string, InputGram>> CachedInputGrams(Model& model, const std::vector<std::string>& slots,
                                                                  const std::vector<std::vector<int32_t>>& seqs,
                                                                  const std::string& cache_dir,
                                                                  const std::string& model_key) {
  if (cache_dir.empty() || model_key.empty()) return CaptureInputGrams(model, slots, seqs);
  std::string key = absl::StrCat("model:", model_key, "\nslots:");
  for (const std::string& s : slots) absl::StrAppend(&key, s, ",");
  absl::StrAppend(&key, "\nseqs:", seqs.size());
  for (const std::vector<int32_t>& q : seqs) {
    absl::StrAppend(&key, ";", q.size(), ":");
    key.append(reinterpret_cast<const char*>(q.data()), q.size() * sizeof(int32_t));
  }
  const std::string path = (std::filesystem::path(cache_dir) / absl::StrCat("grams-", Sha256Hex(key), ".bin")).string();
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    absl::StatusOr<std::string> bytes = ReadFile(path);
    if (bytes.ok()) {
      if (auto grams = ParseGrams(*bytes, slots)) return *std::move(grams);
    }
    spdlog::warn("input Gram cache {} does not match; capturing again", path);
  }
  SLQ_ASSIGN_OR_RETURN(auto grams, CaptureInputGrams(model, slots, seqs));
  std::filesystem::create_directories(cache_dir, ec);
  if (absl::Status w = WriteFileAtomic(path, SerializeGrams(grams)); !w.ok()) {
    spdlog::warn("input Gram cache not written: {}", w.ToString());
  }
  return grams;
}

}  // namespace slq::quant
