#include "client/output.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace slq::client {

int ReportRpcError(const grpc::Status& status, const std::string& what) {
  static const char* kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  int code = status.error_code();
  const char* name = (code >= 0 && code <= 16) ? kNames[code] : "?";
  std::cerr << "error: " << what << ": " << name << ": " << status.error_message() << "\n";
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ALREADY_EXISTS:
      return kExitUsage;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      std::cerr << "hint: pass the server's token with --token-file or SLQ_TOKEN_FILE\n";
      return kExitAuth;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      std::cerr << "hint: is slq-server running and reachable at --server?\n";
      return kExitUnavailable;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return kExitBusy;
    default:
      return kExitError;
  }
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

std::string JobStateName(slq::v1::JobState s) {
  std::string n = slq::v1::JobState_Name(s);
  return n.rfind("JOB_STATE_", 0) == 0 ? n.substr(10) : n;
}

std::string JobStageName(slq::v1::JobStage s) {
  std::string n = slq::v1::JobStage_Name(s);
  n = n.rfind("JOB_STAGE_", 0) == 0 ? n.substr(10) : n;
  return absl::AsciiStrToLower(n);
}

std::string FormatTarget(const slq::v1::FidelityTarget& t) {
  switch (t.target_case()) {
    case slq::v1::FidelityTarget::kMinEar:
      return absl::StrFormat("ear>=%g", t.min_ear());
    case slq::v1::FidelityTarget::kMaxKl:
      return absl::StrFormat("kl<=%g", t.max_kl());
    case slq::v1::FidelityTarget::kMaxAvgBits:
      return absl::StrFormat("bits<=%g", t.max_avg_bits());
    case slq::v1::FidelityTarget::kTaskLosslessKl:
      return t.task_lossless_kl() == 0.01 ? "tl" : absl::StrFormat("tl<=%g", t.task_lossless_kl());
    default:
      return "(none)";
  }
}

std::string FormatDuration(double s) {
  if (!(s >= 0) || std::isinf(s)) return "?";
  int64_t t = static_cast<int64_t>(std::llround(s));
  if (t < 60) return absl::StrFormat("%ds", t);
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm", t / 3600, (t % 3600) / 60);
}

std::string ProgressBar(double f, const std::string& label, double eta, int width) {
  f = std::clamp(f, 0.0, 1.0);
  int filled = static_cast<int>(std::lround(f * width));
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(width - filled), '.');
  std::string out = absl::StrFormat("[%s] %3d%% %-8s", bar, static_cast<int>(std::lround(f * 100)), label);
  if (eta > 0) out += "  ETA " + FormatDuration(eta);
  return out;
}

void PrintCertificate(const slq::v1::Certificate& c) {
  auto iv = [](const slq::v1::Interval& i, int digits) {
    return absl::StrFormat("%.*f [%.*f, %.*f]", digits, i.mean(), digits, i.lower(), digits, i.upper());
  };
  std::cout << "certificate:\n"
            << "  source:      " << c.source_model() << " (sha256 " << c.source_sha256().substr(0, 12) << ")\n"
            << "  target:      " << FormatTarget(c.target()) << "  -> " << (c.target_met() ? "MET" : "NOT MET") << "\n"
            << absl::StrFormat("  avg bits:    %.3f (quantized layers), %.3f (whole model)\n", c.avg_bits_quantized(),
                               c.avg_bits_model())
            << "  EAR:         " << iv(c.ear(), 5) << "\n"
            << "  KL:          " << iv(c.kl(), 5) << " nats/token\n"
            << "  top-1 flip:  " << iv(c.flip_rate(), 4) << "\n"
            << "  PPL ratio:   " << iv(c.perplexity_ratio(), 4) << "\n"
            << "  held-out:    " << c.sequences() << " sequences, " << c.tokens() << " tokens (data sha256 "
            << c.dataset_sha256().substr(0, 12) << ")\n"
            << "  held-out text: " << (c.heldout_dataset().empty() ? "(unnamed)" : c.heldout_dataset()) << " (sha256 "
            << c.heldout_dataset_sha256() << ")\n";
  if (c.layers_size() > 0) {
    std::cout << "  layers:     ";
    for (const auto& l : c.layers()) std::cout << " " << l.bits();
    std::cout << "  (bits per layer, in order)\n";
  }
}

void PrintJob(const slq::v1::Job& j) {
  std::cout << "job " << j.id() << "\n"
            << "  state:    " << JobStateName(j.state()) << " (stage " << JobStageName(j.stage())
            << absl::StrFormat(", %.0f%%)", j.progress() * 100) << "\n"
            << "  model:    " << j.spec().model_uri() << "\n"
            << "  target:   " << FormatTarget(j.spec().target()) << "  formats " << j.spec().formats() << "\n";
  if (!j.message().empty()) std::cout << "  message:  " << j.message() << "\n";
  if (!j.artifact_id().empty()) std::cout << "  artifact: " << j.artifact_id() << "\n";
  if (j.has_certificate()) PrintCertificate(j.certificate());
}

}  // namespace slq::client
