// Fuzz target: the Hugging Face config.json parser (slq::ParseHfConfig). A config that parses
// must also pass ModelConfig::Validate (ParseHfConfig promises a usable config).
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "server/model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = slq::ParseHfConfig(absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
  if (c.ok()) {
    if (!c->Validate().ok()) __builtin_trap();
    (void)c->q_dim();
    (void)c->kv_dim();
  }
  return 0;
}
