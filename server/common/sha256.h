// SHA-256 (OpenSSL EVP) of byte strings and files, as lowercase hex.
#ifndef SLQ_SERVER_COMMON_SHA256_H_
#define SLQ_SERVER_COMMON_SHA256_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace slq {

std::string Sha256Hex(std::string_view data);

// Streams the file in 1 MiB chunks; NotFound if missing.
[[nodiscard]] absl::StatusOr<std::string> Sha256File(const std::string& path);

// Incremental hashing, e.g. for downloads. Not thread-safe.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(std::string_view data);
  std::string FinishHex();  // the hasher is done after this

 private:
  void* ctx_;  // EVP_MD_CTX*
};

}  // namespace slq

#endif  // SLQ_SERVER_COMMON_SHA256_H_
