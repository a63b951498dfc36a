// Status and Result<T>: how runtime/ and kernels/ report errors. No exceptions cross these
// layers. A Status is a code plus a human-readable message that names what failed.
#pragma once
#include <string>
#include <utility>

namespace kiln {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // a caller's argument is wrong (a bad id, an unknown program name)
  kIoError,          // a file could not be opened, read or written
  kCorruptPlan,      // a plan failed verification
  kUnsupported,      // valid, but not supported by this build (newer version, missing kernel)
  kLimitExceeded,    // a request exceeds what the plan was compiled for
  kOutOfMemory,
  kInternal,
};

const char* status_code_name(StatusCode c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
inline Status io_error(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
inline Status corrupt_plan(std::string m) { return Status(StatusCode::kCorruptPlan, std::move(m)); }
inline Status unsupported(std::string m) { return Status(StatusCode::kUnsupported, std::move(m)); }
inline Status limit_exceeded(std::string m) { return Status(StatusCode::kLimitExceeded, std::move(m)); }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool is_ok() const { return status_.is_ok(); }
  const Status& status() const { return status_; }
  T& value() { return value_; }
  const T& value() const { return value_; }
  T take() { return std::move(value_); }

 private:
  Status status_;
  T value_{};
};

#define KILN_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::kiln::Status _kiln_st = (expr);       \
    if (!_kiln_st.is_ok()) return _kiln_st; \
  } while (0)

}  // namespace kiln
