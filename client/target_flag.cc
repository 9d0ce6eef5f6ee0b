#include "client/target_flag.h"

#include "absl/strings/str_cat.h"
#include "server/spec/job_spec.h"

namespace slq::client {

absl::StatusOr<slq::v1::FidelityTarget> ParseTargetFlag(const std::string& raw) {
  // The one target parser (server/spec/job_spec.h): the server and `slq quantize` give the same answer.
  auto t = spec::ParseTarget(raw);
  if (!t.ok()) return t.status();
  slq::v1::FidelityTarget p;
  switch (t->kind) {
    case spec::Target::Kind::kEar:
      p.set_min_ear(t->value);
      break;
    case spec::Target::Kind::kKl:
      p.set_max_kl(t->value);
      break;
    case spec::Target::Kind::kBits:
      p.set_max_avg_bits(t->value);
      break;
    case spec::Target::Kind::kTaskLossless:
      p.set_task_lossless_kl(t->value);
      break;
  }
  return p;
}

absl::Status ValidateSubmitFlags(const std::string& target, const std::string& formats, int64_t group_size,
                                 bool symmetric, const std::string& quantizers, bool hadamard,
                                 const std::string& symmetry, const std::string& group_sizes, const std::string& grids,
                                 int64_t cloze_items, const std::string& scales) {
  return spec::ValidateSpec({.target = target,
                             .formats = formats,
                             .group_size = group_size,
                             .symmetric = symmetric,
                             .temperature = 1.0,
                             .quantizers = quantizers,
                             .hadamard = hadamard,
                             .symmetry = symmetry,
                             .group_sizes = group_sizes,
                             .grids = grids,
                             .scales = scales,
                             .cloze_items = cloze_items});
}

}  // namespace slq::client
