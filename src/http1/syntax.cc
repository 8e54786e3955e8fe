// Grammar helpers of RFC 9110/9112: OWS trimming, tokens, the table of known methods.
#include "http1/syntax.h"

#include <algorithm>
#include <array>

namespace holdfast::http1 {

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(static_cast<std::uint8_t>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_ows(static_cast<std::uint8_t>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return is_tchar(static_cast<std::uint8_t>(c)); });
}

bool is_known_method(std::string_view method) noexcept {
  // Sorted for binary search. RTSP-only methods (ANNOUNCE, DESCRIBE, SETUP, ...) are absent:
  // holdfast speaks HTTP only (docs/http1-conformance.md).
  static constexpr std::array<std::string_view, 46> kMethods = {"ACL",
                                                                "BASELINE-CONTROL",
                                                                "BIND",
                                                                "CHECKIN",
                                                                "CHECKOUT",
                                                                "CONNECT",
                                                                "COPY",
                                                                "DELETE",
                                                                "GET",
                                                                "HEAD",
                                                                "LABEL",
                                                                "LINK",
                                                                "LOCK",
                                                                "M-SEARCH",
                                                                "MERGE",
                                                                "MKACTIVITY",
                                                                "MKCALENDAR",
                                                                "MKCOL",
                                                                "MKREDIRECTREF",
                                                                "MKWORKSPACE",
                                                                "MOVE",
                                                                "NOTIFY",
                                                                "OPTIONS",
                                                                "ORDERPATCH",
                                                                "PATCH",
                                                                "POST",
                                                                "PRI",
                                                                "PROPFIND",
                                                                "PROPPATCH",
                                                                "PURGE",
                                                                "PUT",
                                                                "QUERY",
                                                                "REBIND",
                                                                "REPORT",
                                                                "SEARCH",
                                                                "SOURCE",
                                                                "SUBSCRIBE",
                                                                "TRACE",
                                                                "UNBIND",
                                                                "UNCHECKOUT",
                                                                "UNLINK",
                                                                "UNLOCK",
                                                                "UNSUBSCRIBE",
                                                                "UPDATE",
                                                                "UPDATEREDIRECTREF",
                                                                "VERSION-CONTROL"};
  static_assert(std::is_sorted(kMethods.begin(), kMethods.end()));
  return std::binary_search(kMethods.begin(), kMethods.end(), method);
}

}  // namespace holdfast::http1
