// llama2.c tokenizer.bin (internal; use Tokenizer::FromLlama2c).
#ifndef SLQ_SERVER_MODEL_TOKENIZER_LLAMA2C_TOKENIZER_H_
#define SLQ_SERVER_MODEL_TOKENIZER_LLAMA2C_TOKENIZER_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/model/tokenizer/tokenizer.h"

namespace slq::tok {

// Parses the bytes of a tokenizer.bin with `vocab_size` entries. InvalidArgument when the file
// is truncated, has trailing data or a negative length.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(std::string_view data, int vocab_size);

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_LLAMA2C_TOKENIZER_H_
