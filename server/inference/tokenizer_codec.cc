#include "server/inference/tokenizer_codec.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace slq::inference {
namespace {

namespace fs = std::filesystem;

class DecoderStream final : public TextStream {
 public:
  explicit DecoderStream(const Tokenizer* tok) : dec_(tok) {}
  std::string Push(int32_t id) override { return dec_.Add(id); }
  std::string Finish() override { return dec_.Flush(); }

 private:
  StreamingDecoder dec_;
};

}  // namespace

std::unique_ptr<TextStream> TokenizerCodec::NewTextStream() const {
  return std::make_unique<DecoderStream>(tok_.get());
}

absl::StatusOr<std::shared_ptr<const TextCodec>> LoadCodecFor(const std::string& path, int64_t vocab_size) {
  std::error_code ec;
  const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
  if (fs::exists(dir / "tokenizer.json", ec)) {
    SLQ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, Tokenizer::FromHfDir(dir.string()));
    return std::make_shared<TokenizerCodec>(std::move(tok));
  }
  const std::string llama2c[] = {"tokenizer.bin", absl::StrCat("tok", vocab_size, ".bin")};
  for (const std::string& name : llama2c) {
    const fs::path p = dir / name;
    if (!fs::exists(p, ec)) continue;
    SLQ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok,
                         Tokenizer::FromLlama2c(p.string(), static_cast<int>(vocab_size)));
    return std::make_shared<TokenizerCodec>(std::move(tok));
  }
  return absl::NotFoundError(absl::StrCat("no tokenizer for model ", path, ": looked in ", dir.string(),
                                          " for tokenizer.json, ", llama2c[0], " and ", llama2c[1]));
}

}  // namespace slq::inference
