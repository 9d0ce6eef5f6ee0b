// Parses slqctl's --target: "ear>=0.99", "kl<=0.01", "bits<=4.5", "tl<=0.02".
#ifndef SLQ_CLIENT_TARGET_FLAG_H_
#define SLQ_CLIENT_TARGET_FLAG_H_

#include <string>

#include "absl/status/statusor.h"
#include "slq/v1/common.pb.h"

namespace slq::client {

absl::StatusOr<slq::v1::FidelityTarget> ParseTargetFlag(const std::string& text);

}  // namespace slq::client

#endif  // SLQ_CLIENT_TARGET_FLAG_H_
