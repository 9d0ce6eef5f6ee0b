// Fuzz target: the llama2.c tokenizer.bin reader (slq::tok::LoadLlama2cTokenizer). The first
// two input bytes choose the vocab size (1..1024); the rest is the tokenizer.bin. A tokenizer
// that loads encodes and decodes a fixed sample.
#include <cstdint>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "server/model/tokenizer/llama2c_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int vocab = 1 + ((data[0] | (data[1] << 8)) % 1024);
  auto tok = slq::tok::LoadLlama2cTokenizer(slq::fuzz::AsView(data + 2, size - 2), vocab);
  if (!tok.ok()) return 0;
  std::vector<int32_t> ids = (*tok)->Encode("Once upon a time, \xc3\xa9\xff", true);
  for (int32_t id : ids) {
    if (id < 0 || id >= (*tok)->vocab_size()) __builtin_trap();
  }
  (void)(*tok)->Decode(ids);
  return 0;
}
