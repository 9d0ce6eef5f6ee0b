// A small safetensors writer and raw reader for quantized artifacts.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "U32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data. Tensors are written in the order given, each aligned to 8 bytes.
//
//   SafetensorsWriter w;
//   w.Add("layer.codes", "U32", {rows, words}, codes.data(), codes.size() * 4);
//   SLQ_RETURN_IF_ERROR(w.WriteTo(path));     // not atomic: the artifact writer handles that
//   SLQ_ASSIGN_OR_RETURN(RawSafetensors f, ReadSafetensors(path));
//   const RawTensor* t = f.Find("layer.codes");
//
// Thread safety: none (plain values).
#ifndef SLQ_SERVER_QUANT_SAFETENSORS_IO_H_
#define SLQ_SERVER_QUANT_SAFETENSORS_IO_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace slq::quant {

class SafetensorsWriter {
 public:
  // Copies the bytes. dtype: "U32", "U8", "F16", "BF16", "F32", "I32", ...
  void Add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
           const void* data, size_t bytes);
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  std::string Serialize() const;
  [[nodiscard]] absl::Status WriteTo(const std::string& path) const;

 private:
  struct Entry {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

struct RawTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;  // little-endian raw data
  int64_t numel() const;
};

struct RawSafetensors {
  std::map<std::string, RawTensor> tensors;
  std::map<std::string, std::string> metadata;
  const RawTensor* Find(const std::string& name) const;
};

// Parses a safetensors blob / file. DataLoss for truncated or inconsistent content (names the
// tensor and the offsets); InvalidArgument for a malformed header.
[[nodiscard]] absl::StatusOr<RawSafetensors> ParseSafetensors(const std::string& blob,
                                                              const std::string& what);
[[nodiscard]] absl::StatusOr<RawSafetensors> ReadSafetensors(const std::string& path);

// Converts a F32/F16/BF16 tensor to fp32. InvalidArgument for other dtypes.
[[nodiscard]] absl::StatusOr<std::vector<float>> ToFloat32(const RawTensor& t);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_SAFETENSORS_IO_H_
