#include "server/scheduler/task_payload.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace slq {

std::string EncodeTaskMessage(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

absl::Status DecodeTaskMessage(const std::string& text, const std::string& what, google::protobuf::Message* out) {
  auto s = google::protobuf::util::JsonStringToMessage(text, out);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a ", out->GetTypeName(), ": ", s.ToString()));
  }
  return absl::OkStatus();
}

}  // namespace slq
