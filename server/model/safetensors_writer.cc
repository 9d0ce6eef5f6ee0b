#include "server/model/safetensors_writer.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"

namespace slq {

absl::Status SafetensorsWriter::Add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                    std::span<const uint8_t> bytes) {
  for (const Entry& e : entries_) {
    if (e.name == name) return absl::InvalidArgumentError(absl::StrCat("duplicate tensor '", name, "'"));
  }
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': negative dim"));
    numel *= d;
  }
  if (bytes.size() != static_cast<size_t>(numel) * DTypeSize(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': ", bytes.size(), " bytes for ", numel, " elements of ", DTypeName(dtype)));
  }
  uint64_t begin = data_.size();
  data_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  entries_.push_back({name, dtype, std::move(shape), begin, data_.size()});
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::AddF32(const std::string& name, std::vector<int64_t> shape,
                                       std::span<const float> values) {
  return Add(name, DType::kF32, std::move(shape),
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float)));
}

std::string SafetensorsWriter::Serialize() const {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  for (const Entry& e : entries_) {
    h[e.name] = {{"dtype", std::string(DTypeName(e.dtype))}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
  }
  std::string header = h.dump();
  while (header.size() % 8 != 0) header.push_back(' ');
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  out += data_;
  return out;
}

absl::Status SafetensorsWriter::Write(const std::string& path) const { return WriteFileAtomic(path, Serialize()); }

}  // namespace slq
