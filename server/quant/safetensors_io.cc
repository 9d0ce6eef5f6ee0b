#include "server/quant/safetensors_io.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/half.h"
#include "server/common/status_macros.h"

namespace slq::quant {
namespace {

int64_t DtypeSize(const std::string& d) {
  if (d == "F32" || d == "U32" || d == "I32") return 4;
  if (d == "F16" || d == "BF16" || d == "U16" || d == "I16") return 2;
  if (d == "U8" || d == "I8" || d == "BOOL") return 1;
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  return 0;
}

}  // namespace

void SafetensorsWriter::Add(const std::string& name, const std::string& dtype,
                            std::vector<int64_t> shape, const void* data, size_t bytes) {
  entries_.push_back({name, dtype, std::move(shape),
                      std::string(static_cast<const char*>(data), bytes)});
}

std::string SafetensorsWriter::Serialize() const {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  size_t offset = 0;
  for (const auto& e : entries_) {
    offset = (offset + 7) / 8 * 8;
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  std::string out(8, '\0');
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += h;
  const size_t base = out.size();
  for (const auto& e : entries_) {
    out.resize(base + (out.size() - base + 7) / 8 * 8, '\0');
    out += e.bytes;
  }
  return out;
}

absl::Status SafetensorsWriter::WriteTo(const std::string& path) const {
  return WriteFileAtomic(path, Serialize());
}

int64_t RawTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const RawTensor* RawSafetensors::Find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

absl::StatusOr<RawSafetensors> ParseSafetensors(const std::string& blob, const std::string& what) {
  if (blob.size() < 8) {
    return absl::DataLossError(absl::StrCat(what, ": ", blob.size(), " bytes, too short for a header"));
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(blob[i])) << (8 * i);
  if (n > blob.size() - 8) {
    return absl::DataLossError(absl::StrCat(what, ": header length ", n, " exceeds file size ",
                                            blob.size(), " (truncated?)"));
  }
  nlohmann::json header = nlohmann::json::parse(blob.substr(8, n), nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": header is not a JSON object"));
  }
  RawSafetensors out;
  const size_t data0 = 8 + n;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      for (auto& [k, mv] : v.items()) {
        if (mv.is_string()) out.metadata[k] = mv.get<std::string>();
      }
      continue;
    }
    if (!v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets") ||
        !v["data_offsets"].is_array() || v["data_offsets"].size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": tensor '", name, "' lacks dtype/shape/data_offsets"));
    }
    RawTensor t;
    t.dtype = v["dtype"].get<std::string>();
    t.shape = v["shape"].get<std::vector<int64_t>>();
    const uint64_t b = v["data_offsets"][0].get<uint64_t>(), e = v["data_offsets"][1].get<uint64_t>();
    const int64_t es = DtypeSize(t.dtype);
    if (es == 0) return absl::InvalidArgumentError(absl::StrCat(what, ": tensor '", name, "' has unknown dtype ", t.dtype));
    if (e < b || data0 + e > blob.size() || static_cast<int64_t>(e - b) != t.numel() * es) {
      return absl::DataLossError(absl::StrCat(what, ": tensor '", name, "' offsets [", b, ", ", e,
                                              ") inconsistent with shape/dtype or file size ", blob.size()));
    }
    t.bytes = blob.substr(data0 + b, e - b);
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

absl::StatusOr<RawSafetensors> ReadSafetensors(const std::string& path) {
  SLQ_ASSIGN_OR_RETURN(std::string blob, ReadFile(path));
  return ParseSafetensors(blob, path);
}

absl::StatusOr<std::vector<float>> ToFloat32(const RawTensor& t) {
  const int64_t n = t.numel();
  std::vector<float> out(static_cast<size_t>(n));
  if (t.dtype == "F32") {
    std::memcpy(out.data(), t.bytes.data(), static_cast<size_t>(n) * 4);
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, t.bytes.data() + 2 * i, 2);
      out[i] = t.dtype == "F16" ? HalfToFloat(h) : Bf16ToFloat(h);
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("dtype ", t.dtype, " is not F32/F16/BF16"));
  }
  return out;
}

}  // namespace slq::quant
