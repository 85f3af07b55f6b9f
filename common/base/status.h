// Status and StatusOr: the result of every operation that touches the outside
// world (files, sockets, peers' messages, configs).
//
// Modelled on leveldb::Status: a code plus a human-readable message naming
// where and why. Remote and file input never CHECK-fails; it returns a Status.
// Status is a value type; copying is cheap when OK.
#ifndef MTPS_COMMON_BASE_STATUS_H_
#define MTPS_COMMON_BASE_STATUS_H_

#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include <glog/logging.h>

namespace mtps {

// Codes travel on the wire (proto/wire.proto StatusCode mirrors these values).
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,  // bad input: config, data line, malformed message
  kNotFound = 2,
  kIoError = 3,
  kCorruption = 4,
  kDeadlineExceeded = 5,
  kUnavailable = 6,  // peer gone or not reachable
  kAborted = 7,      // the job was aborted (a node failed)
  kStaleEpoch = 8,   // message from another cluster epoch
  kInternal = 9,
  kPermissionDenied = 10,  // the peer's key may not do this (CURVE: another node's id)
};

const char* StatusCodeName(StatusCode code);

// A code (kOk or an error) and a message saying where and why. A value
// type: copy and pass it freely between threads; methods are const.
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return Status(StatusCode::kInvalidArgument, std::move(m));
  }
  static Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
  static Status IoError(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
  static Status Corruption(std::string m) { return Status(StatusCode::kCorruption, std::move(m)); }
  static Status DeadlineExceeded(std::string m) {
    return Status(StatusCode::kDeadlineExceeded, std::move(m));
  }
  static Status Unavailable(std::string m) {
    return Status(StatusCode::kUnavailable, std::move(m));
  }
  static Status Aborted(std::string m) { return Status(StatusCode::kAborted, std::move(m)); }
  static Status StaleEpoch(std::string m) { return Status(StatusCode::kStaleEpoch, std::move(m)); }
  static Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
  static Status PermissionDenied(std::string m) {
    return Status(StatusCode::kPermissionDenied, std::move(m));
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: <message>", or "OK".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }

// Either a value or a non-OK Status.
template <typename T>
class StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    CHECK(!status_.ok()) << "StatusOr built from an OK status without a value";
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & {
    CHECK(ok()) << status_;
    return *value_;
  }
  const T& value() const& {
    CHECK(ok()) << status_;
    return *value_;
  }
  T&& value() && {
    CHECK(ok()) << status_;
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace mtps

// Returns from the enclosing function if `expr` yields a non-OK Status.
#define MTPS_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::mtps::Status _mtps_status = (expr);        \
    if (!_mtps_status.ok()) return _mtps_status; \
  } while (0)

#define MTPS_CONCAT_INNER_(a, b) a##b
#define MTPS_CONCAT_(a, b) MTPS_CONCAT_INNER_(a, b)
// Declares `lhs` from a StatusOr, or returns its error.
#define MTPS_ASSIGN_OR_RETURN(lhs, expr) \
  MTPS_ASSIGN_OR_RETURN_IMPL_(MTPS_CONCAT_(_mtps_or_, __LINE__), lhs, expr)
#define MTPS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#endif  // MTPS_COMMON_BASE_STATUS_H_
