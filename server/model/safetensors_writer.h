// SafetensorsWriter: builds a .safetensors file in memory (header padded to 8 bytes, tensors
// contiguous in insertion order) and writes it atomically. The one safetensors writer: tests,
// the quantized artifact writer (server/quant/artifact.cc) and tools use it.
//
//   SafetensorsWriter w;
//   w.AddF32("w", {2, 3}, values);
//   w.Add("codes", DType::kU32, {4, 2}, bytes);
//   SLQ_RETURN_IF_ERROR(w.Write("/tmp/x.safetensors"));
//
// Not thread-safe.
#ifndef SLQ_SERVER_MODEL_SAFETENSORS_WRITER_H_
#define SLQ_SERVER_MODEL_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/model/safetensors.h"

namespace slq {

class SafetensorsWriter {
 public:
  // InvalidArgument if the name is taken or bytes.size() != numel * DTypeSize(dtype).
  [[nodiscard]] absl::Status Add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                 std::span<const uint8_t> bytes);
  // The same from a raw buffer of `bytes` bytes (copied).
  [[nodiscard]] absl::Status Add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                                 size_t bytes) {
    return Add(name, dtype, std::move(shape), std::span<const uint8_t>(static_cast<const uint8_t*>(data), bytes));
  }
  [[nodiscard]] absl::Status AddF32(const std::string& name, std::vector<int64_t> shape, std::span<const float> values);
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  std::string Serialize() const;
  [[nodiscard]] absl::Status Write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries_;
  std::string data_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_SAFETENSORS_WRITER_H_
