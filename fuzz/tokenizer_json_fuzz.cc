// Fuzz target: the tokenizer.json loader (slq::tok::LoadHfTokenizer). The input is split at
// the first 0xFF byte (never valid in JSON text): before it the tokenizer.json, after it a
// sample text. A tokenizer that loads encodes the sample and decodes the ids back, and every
// id it produces must be one it can print.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "server/model/tokenizer/hf_tokenizer.h"
#include "server/model/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = slq::fuzz::AsView(data, size);
  const size_t cut = in.find('\xff');
  const std::string json(in.substr(0, cut));
  const std::string text = cut == std::string_view::npos ? "Once upon a time" : std::string(in.substr(cut + 1));
  auto tok = slq::tok::LoadHfTokenizer(json, {"", "", ""});
  if (!tok.ok()) return 0;
  for (bool special : {false, true}) {
    std::vector<int32_t> ids = (*tok)->Encode(text, special);
    for (int32_t id : ids) {
      if (id < 0 || id >= (*tok)->vocab_size()) __builtin_trap();
      (void)(*tok)->TokenBytes(id);
    }
    (void)(*tok)->Decode(ids, /*skip_special=*/true);
    (void)(*tok)->Decode(ids, /*skip_special=*/false);
  }
  return 0;
}
