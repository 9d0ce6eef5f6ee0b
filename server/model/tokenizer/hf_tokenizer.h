// Tokenizer built from a Hugging Face tokenizer.json (internal; use Tokenizer::FromHfDir).
#ifndef SLQ_SERVER_MODEL_TOKENIZER_HF_TOKENIZER_H_
#define SLQ_SERVER_MODEL_TOKENIZER_HF_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/model/tokenizer/tokenizer.h"

namespace slq::tok {

// Parses tokenizer.json text. `config_texts` are the optional JSON texts of
// tokenizer_config.json, special_tokens_map.json and config.json ("" when absent), searched in
// that order for bos/eos.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& tokenizer_json,
                                                           const std::vector<std::string>& config_texts);

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_HF_TOKENIZER_H_
