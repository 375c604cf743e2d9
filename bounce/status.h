// Status and Result<T>: errors as values, carried across every layer of stablefs.
//
// A Status is either ok() or an errno value plus a one-line human message that names the
// object and the cause ("block 1234: checksum mismatch"). No layer throws across another;
// the FUSE adapter turns code() into an errno reply, the CLI prints message().
#pragma once

#include <cerrno>
#include <new>
#include <string>
#include <utility>
#include <variant>

#include "bounce/mutex.h"

namespace stablefs {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok_status() { return Status(); }
  static Status error(int code, std::string message) { return Status(code, std::move(message)); }

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }  // a positive errno value, 0 when ok
  const std::string& message() const { return message_; }
  Status status() const { return *this; }  // lets SFS_TRY treat Status and Result alike

  // Prefixes the message with context ("mount /dev/x: " + message).
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}
  int code_ = 0;
  std::string message_;
};

// Result<T> holds a T or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return ok() ? Status() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace stablefs

namespace stablefs {

// Runs fn (returning Status or Result<T>); std::bad_alloc becomes an ENOMEM error of the same
// type, so a step that cannot get memory fails as a value (its caller still ends what it
// began: an operation, a mapping, a request). The message is short: making it allocates
// nothing.
// (Not analysed for locks: fn carries its own REQUIRES, checked where it is written.)
template <typename Fn>
NO_THREAD_SAFETY_ANALYSIS auto out_of_memory_as_error(Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Status::error(ENOMEM, "out of memory");
  }
}

}  // namespace stablefs

#define SFS_CONCAT_INNER(a, b) a##b
#define SFS_CONCAT(a, b) SFS_CONCAT_INNER(a, b)

// Propagates a non-ok Status (or Result) out of the current function.
#define SFS_TRY(expr)                                   \
  do {                                                  \
    auto&& sfs_try_value_ = (expr);                     \
    if (!sfs_try_value_.ok()) return sfs_try_value_.status(); \
  } while (0)

// SFS_ASSIGN(auto x, result_expr): binds the value or returns the error.
#define SFS_ASSIGN(decl, expr) SFS_ASSIGN_IMPL(SFS_CONCAT(sfs_result_, __LINE__), decl, expr)
#define SFS_ASSIGN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                     \
  if (!tmp.ok()) return tmp.status();    \
  decl = std::move(tmp).value()
