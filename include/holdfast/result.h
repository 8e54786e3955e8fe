// Result<T>: a value or a std::error_code, with std::expected's member names (g++ 12 lacks
// <expected>).
#pragma once

#include <cassert>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace holdfast {

/// Wraps an error code so that `return Unexpected{ec};` converts to any Result<T>.
struct Unexpected {
  std::error_code code;
};

/// Shorthand: `return fail(Errc::timed_out);` for any enum registered as an error-code enum.
template <typename E>
  requires std::is_error_code_enum_v<E>
[[nodiscard]] inline Unexpected fail(E e) { return Unexpected{make_error_code(e)}; }
[[nodiscard]] inline Unexpected fail(std::error_code ec) { return Unexpected{ec}; }

/// A value of type T, or the error_code that explains why there is none.
/// Accessing value() of an error result (or error() of a value) is a programming error (asserted).
/// Not thread-safe beyond what T itself offers.
template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(const T& v) : state_(v) {}  // NOLINT(google-explicit-constructor): mirrors std::expected
  Result(T&& v) : state_(std::move(v)) {}   // NOLINT(google-explicit-constructor)
  Result(Unexpected u) : state_(u.code) {}  // NOLINT(google-explicit-constructor)
  template <typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, T> &&
             !std::is_same_v<std::remove_cvref_t<U>, Unexpected> &&
             !std::is_same_v<std::remove_cvref_t<U>, Result>)
  Result(U&& v) : state_(std::in_place_index<0>, std::forward<U>(v)) {}  // NOLINT

  /// True when a value is held.
  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  [[nodiscard]] T& value() & {
    assert(has_value());
    return std::get<0>(state_);
  }
  [[nodiscard]] const T& value() const& {
    assert(has_value());
    return std::get<0>(state_);
  }
  [[nodiscard]] T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; only valid when !has_value().
  [[nodiscard]] std::error_code error() const {
    assert(!has_value());
    return std::get<1>(state_);
  }

  /// The value, or `fallback` when this holds an error.
  template <typename U>
  [[nodiscard]] T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(state_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, std::error_code> state_;
};

/// Result<void>: success, or an error_code.
template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;

  Result() = default;
  Result(Unexpected u) : error_(u.code) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const { assert(has_value()); }
  [[nodiscard]] std::error_code error() const {
    assert(!has_value());
    return error_;
  }

 private:
  std::error_code error_;
};

/// Evaluates `expr` (a Result); on error, returns its error from the enclosing function.
#define HOLDFAST_TRY(expr)                                         \
  do {                                                             \
    auto&& holdfast_try_result_ = (expr);                          \
    if (!holdfast_try_result_) {                                   \
      return ::holdfast::Unexpected{holdfast_try_result_.error()}; \
    }                                                              \
  } while (false)

}  // namespace holdfast
