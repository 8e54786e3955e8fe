// Character classes and small grammar helpers of RFC 9110/9112 shared by the parser and serializer.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace holdfast::http1 {

namespace detail {

inline constexpr std::uint8_t kTchar = 1;   // RFC 9110 §5.6.2 tchar
inline constexpr std::uint8_t kField = 2;   // RFC 9110 §5.5 field-vchar, SP, HTAB (obs-text too)
inline constexpr std::uint8_t kTarget = 4;  // RFC 9112 §3.2 request-target bytes: VCHAR

constexpr std::array<std::uint8_t, 256> make_char_classes() {
  std::array<std::uint8_t, 256> t{};
  constexpr std::string_view kTcharPunct = "!#$%&'*+-.^_`|~";
  for (int c = 0; c < 256; ++c) {
    std::uint8_t bits = 0;
    const bool digit = c >= '0' && c <= '9';
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (digit || alpha || kTcharPunct.find(static_cast<char>(c)) != std::string_view::npos) {
      bits |= kTchar;
    }
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) {
      bits |= kField;
    }
    if (c > 0x20 && c < 0x7f) {
      bits |= kTarget;
    }
    t[static_cast<std::size_t>(c)] = bits;
  }
  return t;
}

inline constexpr std::array<std::uint8_t, 256> kCharClasses = make_char_classes();

}  // namespace detail

/// True for a token character (RFC 9110 §5.6.2).
constexpr bool is_tchar(std::uint8_t c) noexcept {
  return (detail::kCharClasses[c] & detail::kTchar) != 0;
}

/// True for a byte allowed in a field value or reason phrase: HTAB, SP, VCHAR, obs-text
/// (RFC 9110 §5.5, RFC 9112 §4). CR, LF, NUL, other controls and DEL are not.
constexpr bool is_field_char(std::uint8_t c) noexcept {
  return (detail::kCharClasses[c] & detail::kField) != 0;
}

/// True for a byte allowed in a request-target: visible ASCII (RFC 9112 §3.2, RFC 3986 §2).
constexpr bool is_target_char(std::uint8_t c) noexcept {
  return (detail::kCharClasses[c] & detail::kTarget) != 0;
}

/// True for SP or HTAB (RFC 9110 §5.6.3 OWS).
constexpr bool is_ows(std::uint8_t c) noexcept { return c == ' ' || c == '\t'; }

/// `s` without leading and trailing SP/HTAB.
std::string_view trim_ows(std::string_view s) noexcept;

/// True when `s` is a non-empty token.
bool is_token(std::string_view s) noexcept;

/// True for a method holdfast knows: the IANA HTTP Method Registry plus the widely deployed
/// extension methods llhttp accepts (M-SEARCH, NOTIFY, SUBSCRIBE, UNSUBSCRIBE, PURGE, SOURCE,
/// QUERY). Case-sensitive (RFC 9110 §9.1).
bool is_known_method(std::string_view method) noexcept;

/// Calls `fn(element)` for each non-empty element of a comma-separated list, OWS trimmed
/// (RFC 9110 §5.6.1: empty elements are ignored). Quoted strings are not special-cased: callers
/// use it for token lists only (Connection, Transfer-Encoding).
template <typename Fn>
void for_each_list_element(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view element = trim_ows(list.substr(0, comma));
    if (!element.empty()) {
      fn(element);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
}

}  // namespace holdfast::http1
