// One error convention: a function that can fail returns Result<T>, its value or the error, a
// message for the operator that names what was wrong (the file and line, the flag, the key).
// Result<void> is for work with no value. As bpftrace's Result or absl::StatusOr, without error
// codes: every caller reports the message, none branches on a kind of error.
//
//   Result<std::string> ReadIt(const std::string& path) {
//     if (bad) return Error{"cannot read " + path};
//     return text;
//   }
//   auto text = ReadIt(path);
//   if (!text) return Error{"--config " + path + ": " + text.error()};
//   Use(*text);
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace mat {

// What went wrong, converted to a Result<T> of any T.
struct Error {
  std::string message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // The value; only when ok().
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  // The message; only when !ok().
  const std::string& error() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error.message)), ok_(false) {}  // NOLINT: implicit

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace mat
