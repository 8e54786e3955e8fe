// Absolute http:// and https:// URLs: parsing (RFC 3986 §3) and the pieces a request needs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "holdfast/result.h"

namespace holdfast {

/// A parsed absolute http or https URL. Plain data: copyable, not thread-safe beyond that.
/// Produced by parse_url(), which guarantees the invariants documented on each member; a Url
/// filled in by hand is used as given.
struct Url {
  /// "http" or "https", lower-case.
  std::string scheme;
  /// The host, lower-case: a DNS name, an IPv4 literal, or an IPv6 literal WITHOUT its brackets
  /// ("::1"). Never empty.
  std::string host;
  /// The port: explicit in the URL, else the scheme's default (80 for http, 443 for https).
  /// Never 0 after parse_url().
  std::uint16_t port = 0;
  /// The request target in origin-form (RFC 9112 §3.2.1): path plus "?query", sent verbatim (no
  /// percent-decoding or dot-segment removal). "/" when the URL has no path; the fragment is
  /// dropped.
  std::string target;

  /// True for https.
  [[nodiscard]] bool is_tls() const;
  /// The default port of the scheme: 443 for https, 80 otherwise.
  [[nodiscard]] std::uint16_t default_port() const;
  /// "scheme://host:port", the port always present and IPv6 hosts in brackets, e.g.
  /// "https://example.com:443" or "http://[::1]:8080". Usable as a connection-pool key.
  [[nodiscard]] std::string origin() const;
  /// The Host header / :authority value (RFC 9110 §7.2): "host" or "host:port", the port omitted
  /// when it is the scheme's default, IPv6 hosts in brackets ("[::1]:8443").
  [[nodiscard]] std::string host_header() const;
  /// The URL again, normalised: "scheme://" + host_header() + target.
  [[nodiscard]] std::string to_string() const;

  bool operator==(const Url&) const = default;
};

/// Parses an absolute http or https URL such as "https://Example.com:8443/a/b?x=1#frag".
///
/// Accepted: the schemes http and https (case-insensitive); DNS names and IPv4 literals made of
/// letters, digits, '-', '.', '_' and '~'; IPv6 literals in brackets ("[::1]", no zone id); an
/// optional port 1..65535 (an empty port, "http://h:/", means the default). The scheme and host are
/// lower-cased, the fragment is dropped, the path and query are kept byte for byte.
///
/// Errors:
/// - Errc::unsupported_scheme: a well-formed scheme other than http or https ("ftp://h/").
/// - Errc::invalid_url: no "scheme://"; an empty or malformed host; a bad IPv6 literal; a port that
///   is not a number in 1..65535; userinfo ("http://user:pass@host/"): rejected rather than
///   silently dropped or sent, because credentials belong in an Authorization header and an '@' in
///   the authority is a classic way to disguise the real host; any space, control character
///   (< 0x20, 0x7f) or non-ASCII byte anywhere (percent-encode them).
///
/// Thread-safe (pure function).
[[nodiscard]] Result<Url> parse_url(std::string_view text);

}  // namespace holdfast
