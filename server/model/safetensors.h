// Safetensors reader: single files and sharded checkpoints (model.safetensors.index.json).
//
//   SLQ_ASSIGN_OR_RETURN(auto store, TensorStore::OpenDir("/models/docs-19m"));
//   SLQ_ASSIGN_OR_RETURN(const TensorView* t, store->Get("lm_head.weight"));
//   SLQ_ASSIGN_OR_RETURN(std::vector<float> w, ToFloat32(*t));  // F32/F16/BF16 -> fp32
//
// File layout: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data buffer; offsets are relative to the start of the data buffer.
//
// Validation is strict: a header length beyond the file, malformed JSON, an unknown dtype, a
// shape whose byte size differs from its offsets, offsets out of range or overlapping all give
// InvalidArgument naming the file and the tensor. Files are mmapped read-only; TensorView bytes
// point into the mapping and live as long as the SafetensorsFile / TensorStore that owns it.
//
// Thread safety: after Open, all methods are const and safe to call from several threads.
#ifndef SLQ_SERVER_MODEL_SAFETENSORS_H_
#define SLQ_SERVER_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace slq {

// Dtypes the reader accepts. Float conversion supports F32/F16/BF16; the others are raw.
enum class DType { kF32, kF16, kBF16, kU8, kI8, kU16, kI16, kU32, kI32, kI64 };

absl::string_view DTypeName(DType d);  // "F32", "BF16", ...
size_t DTypeSize(DType d);             // bytes per element
// Parses a safetensors dtype string; InvalidArgument naming it and the supported list.
absl::StatusOr<DType> ParseDType(absl::string_view name);

// One tensor inside a mapped file. `bytes` is not necessarily aligned: read with memcpy.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;  // exactly numel() * DTypeSize(dtype) bytes
  std::string file;                // path of the file holding it, for messages
  int64_t numel() const;
  std::string ShapeString() const;  // "[384, 1024]"
};

// One .safetensors file, mmapped.
class SafetensorsFile {
 public:
  // Maps and validates `path`. NotFound if missing; InvalidArgument if corrupt.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Parses an in-memory blob (owned by the result); `what` names it in messages. Same checks.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SafetensorsFile>> FromBytes(std::string bytes,
                                                                                  const std::string& what);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, TensorView, std::less<>>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorView* Find(absl::string_view name) const;

 private:
  SafetensorsFile() = default;
  absl::Status Parse();

  std::string path_;
  const uint8_t* data_ = nullptr;  // mapping of the whole file, or owned_'s bytes
  size_t size_ = 0;
  bool mapped_ = false;
  std::string owned_;  // FromBytes
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorView, std::less<>> tensors_;
};

// A set of tensors from one or several files (a sharded checkpoint).
class TensorStore {
 public:
  // One file.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TensorStore>> OpenFile(const std::string& path);
  // A model.safetensors.index.json: {"weight_map": {"tensor": "shard file", ...}}. Every
  // tensor named must exist in its shard; shard paths are relative to the index's folder.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TensorStore>> OpenIndex(const std::string& index_path);
  // A folder holding model.safetensors or model.safetensors.index.json.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TensorStore>> OpenDir(const std::string& dir);

  // NotFound naming the tensor and the files searched.
  [[nodiscard]] absl::StatusOr<const TensorView*> Get(absl::string_view name) const;
  const TensorView* Find(absl::string_view name) const;
  bool Has(absl::string_view name) const { return Find(name) != nullptr; }
  std::vector<std::string> Names() const;  // sorted
  // Paths of the files, in the order opened.
  std::vector<std::string> FilePaths() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*, std::less<>> index_;
};

// Converts F32/F16/BF16 to fp32 (row-major, same element order). InvalidArgument for other
// dtypes, naming the tensor and its dtype.
[[nodiscard]] absl::StatusOr<std::vector<float>> ToFloat32(const TensorView& t);

// Checks t.shape == shape; InvalidArgument naming the tensor, expected and actual shape.
[[nodiscard]] absl::Status ExpectShape(const TensorView& t, std::span<const int64_t> shape);

// Raw copy for integer / half tensors: the tensor's dtype must be `expected` and sizeof(T)
// must equal its element size. E.g. CopyRaw<uint32_t>(t, DType::kU32).
template <typename T>
[[nodiscard]] absl::StatusOr<std::vector<T>> CopyRaw(const TensorView& t, DType expected);

// Implementation detail of CopyRaw.
absl::Status CheckRawAccess(const TensorView& t, DType expected, size_t elem_size);

template <typename T>
absl::StatusOr<std::vector<T>> CopyRaw(const TensorView& t, DType expected) {
  absl::Status s = CheckRawAccess(t, expected, sizeof(T));
  if (!s.ok()) return s;
  std::vector<T> out(static_cast<size_t>(t.numel()));
  if (!out.empty()) std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  return out;
}

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_SAFETENSORS_H_
