// Fuzz target: the llama2.c checkpoint reader (loader "llama2c", server/model/llama2c_loader.cc).
// The input is a whole .bin checkpoint (7 int32 header, fp32 weights). A checkpoint that loads
// must have every layer's weights (CheckModelShapes, which Load runs, is re-checked here).
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "server/model/model_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto loader = slq::MakeLlama2cLoader();
  const std::string path = slq::fuzz::WriteScratch("model.bin", data, size);
  slq::LoadOptions options;
  options.compute_sha256 = false;
  auto model = loader->Load(path, options);
  if (model.ok() && !slq::CheckModelShapes(**model).ok()) __builtin_trap();
  return 0;
}
