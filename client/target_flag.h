// slqctl's job-spec flags, checked by the one validator the server uses (server/spec/job_spec.h):
// --target "ear>=0.99", "kl<=0.01", "bits<=4.5", "tl" or "tl<=0.02"; --formats; --group-size.
#ifndef SLQ_CLIENT_TARGET_FLAG_H_
#define SLQ_CLIENT_TARGET_FLAG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "slq/v1/common.pb.h"

namespace slq::client {

absl::StatusOr<slq::v1::FidelityTarget> ParseTargetFlag(const std::string& text);
// The whole submit spec before the RPC: the same ranges and error text as the server's SubmitJob.
absl::Status ValidateSubmitFlags(const std::string& target, const std::string& formats, int64_t group_size,
                                 bool symmetric, const std::string& quantizers = "rtn", bool hadamard = false,
                                 const std::string& symmetry = "", const std::string& group_sizes = "",
                                 const std::string& grids = "", int64_t cloze_items = 2000,
                                 const std::string& scales = "");

}  // namespace slq::client

#endif  // SLQ_CLIENT_TARGET_FLAG_H_
