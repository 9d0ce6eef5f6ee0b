// Fuzz target: the safetensors readers. The input is a whole .safetensors file (8-byte header
// length, JSON header, data). Both parsers see it: slq::SafetensorsFile (mmap, server/model)
// and slq::SafetensorsFile::FromBytes (the same reader in memory). Every tensor that
// parses is also converted to fp32, which touches every byte its offsets claim.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "server/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = slq::fuzz::WriteScratch("model.safetensors", data, size);
  auto file = slq::SafetensorsFile::Open(path);
  if (file.ok()) {
    for (const auto& [name, t] : (*file)->tensors()) {
      auto f = slq::ToFloat32(t);
      if (f.ok() && static_cast<int64_t>(f->size()) != t.numel()) __builtin_trap();
      (void)t.ShapeString();
    }
  }
  auto raw = slq::SafetensorsFile::FromBytes(std::string(slq::fuzz::AsView(data, size)), "fuzz");
  if (raw.ok()) {
    for (const auto& [name, t] : (*raw)->tensors()) {
      auto f = slq::ToFloat32(t);
      if (f.ok() && static_cast<int64_t>(f->size()) != t.numel()) __builtin_trap();
    }
  }
  return 0;
}
