// ember/status.h - error handling for the whole library: Status and Result<T>.
//
//   ember::Result<std::shared_ptr<const ember::Model>> m = ember::Model::load("m.ember");
//   if (!m.ok()) { fprintf(stderr, "%s\n", m.status().message().c_str()); return 1; }
//
// The library never throws across its API and never aborts on bad input: every fallible call returns a
// Status or a Result<T> whose message names the file, tensor or field at fault. Both are [[nodiscard]].
// Thread safety: plain values, safe to copy between threads.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "ember/export.h"

namespace ember {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // a caller-supplied value is out of range (e.g. --threads 0, empty prompt)
  kNotFound,         // a file, tensor or key does not exist
  kIoError,          // open / read / write / rename failed
  kInvalidFile,      // a file exists but its content is malformed or inconsistent
  kUnsupported,      // well-formed but not something ember implements
  kContextFull,      // the session's KV cache holds n_ctx tokens
  kInternal,         // a dependency (XNNPACK, allocation) failed
  kAborted,          // the caller's abort callback asked to stop (Session::set_abort_callback)
};

EMBER_API const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Prepends context: "loading m.ember: " + message.
  Status with_context(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
inline Status not_found(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status io_error(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
inline Status invalid_file(std::string m) { return Status(StatusCode::kInvalidFile, std::move(m)); }
inline Status unsupported(std::string m) { return Status(StatusCode::kUnsupported, std::move(m)); }
inline Status internal_error(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status aborted(std::string m) { return Status(StatusCode::kAborted, std::move(m)); }

// Called by Result<T>::value() on an error Result (a caller's bug: check ok() first): prints
// "ember: value() of an error Result: <message>" to stderr and aborts. Deterministic, never throws.
[[noreturn]] EMBER_API void die_value_of_error(const Status& status);

// A value or the Status saying why there is none. value(), operator* and operator-> require ok():
// on an error they print the message and abort (never throw, never undefined behaviour).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                // NOLINT: implicit by design
  // An ok `status` here is a caller's bug: it becomes a kInternal error saying so.
  Result(Status status)                                     // NOLINT: implicit by design
      : v_(status.ok() ? Status(StatusCode::kInternal, "Result made from an ok Status without a value")
                       : std::move(status)) {}
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    const Status* s = std::get_if<Status>(&v_);
    return s ? *s : kOk;
  }
  T& value() & { return *checked(); }
  const T& value() const& { return *checked(); }
  T&& value() && { return std::move(*checked()); }
  T* operator->() { return checked(); }
  const T* operator->() const { return checked(); }
  T& operator*() & { return *checked(); }
  const T& operator*() const& { return *checked(); }

 private:
  T* checked() {
    T* v = std::get_if<T>(&v_);
    if (!v) die_value_of_error(*std::get_if<Status>(&v_));
    return v;
  }
  const T* checked() const { return const_cast<Result*>(this)->checked(); }
  std::variant<T, Status> v_;
};

}  // namespace ember

#define EMBER_CONCAT_INNER_(a, b) a##b
#define EMBER_CONCAT_(a, b) EMBER_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` (a Status) is not ok.
#define EMBER_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::ember::Status ember_s_ = (expr);         \
    if (!ember_s_.ok()) return ember_s_;       \
  } while (0)

// `lhs = value of expr` (a Result<T>), or return its Status.
#define EMBER_ASSIGN_OR_RETURN(lhs, expr) \
  EMBER_ASSIGN_OR_RETURN_IMPL_(EMBER_CONCAT_(ember_r_, __LINE__), lhs, expr)
#define EMBER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
