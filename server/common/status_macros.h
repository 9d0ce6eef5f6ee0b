// Status propagation helpers (Abseil 20220623 ships none).
//
//   absl::StatusOr<Model> LoadModel(...) {
//     SLQ_RETURN_IF_ERROR(CheckHeader(h));
//     SLQ_ASSIGN_OR_RETURN(auto cfg, ParseConfig(path));
//     ...
//   }
#ifndef SLQ_SERVER_COMMON_STATUS_MACROS_H_
#define SLQ_SERVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SLQ_STATUS_CONCAT_INNER_(a, b) a##b
#define SLQ_STATUS_CONCAT_(a, b) SLQ_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define SLQ_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status slq_status_ = (expr);       \
    if (!slq_status_.ok()) return slq_status_; \
  } while (0)

// `lhs = value of expr` if OK, else returns its status from the enclosing function.
#define SLQ_ASSIGN_OR_RETURN(lhs, expr) \
  SLQ_ASSIGN_OR_RETURN_IMPL_(SLQ_STATUS_CONCAT_(slq_statusor_, __LINE__), lhs, expr)

#define SLQ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)

#endif  // SLQ_SERVER_COMMON_STATUS_MACROS_H_
