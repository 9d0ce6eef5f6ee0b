// Tokenizer factories: pick the implementation for a file format.
#include "server/model/tokenizer/tokenizer.h"

#include <filesystem>

#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/model/tokenizer/hf_tokenizer.h"
#include "server/model/tokenizer/llama2c_tokenizer.h"

namespace slq {

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfDir(const std::string& dir) {
  SLQ_ASSIGN_OR_RETURN(std::string json, ReadFile(dir + "/tokenizer.json"));
  std::vector<std::string> configs;
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json", "config.json"}) {
    const std::string path = dir + "/" + name;
    absl::StatusOr<std::string> text = std::filesystem::exists(path) ? ReadFile(path) : absl::StatusOr<std::string>("");
    configs.push_back(text.ok() ? *std::move(text) : std::string());
  }
  return tok::LoadHfTokenizer(json, configs);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromLlama2c(const std::string& tokenizer_bin, int vocab_size) {
  SLQ_ASSIGN_OR_RETURN(std::string data, ReadFile(tokenizer_bin));
  return tok::LoadLlama2cTokenizer(data, vocab_size);
}

}  // namespace slq
