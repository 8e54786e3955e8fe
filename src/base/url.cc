// parse_url() and the Url helpers: a strict parser for absolute http and https URLs.
#include "holdfast/url.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstddef>
#include <utility>

#include "holdfast/error.h"

namespace holdfast {
namespace {

constexpr std::uint16_t kHttpPort = 80;
constexpr std::uint16_t kHttpsPort = 443;

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = to_lower(c);
  }
  return out;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Nothing that could split a request line or header is ever let through: spaces, controls (which
// include CR and LF) and DEL, and non-ASCII bytes, which must be percent-encoded on the wire.
bool has_forbidden_byte(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return true;
    }
  }
  return false;
}

// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool is_valid_scheme(std::string_view s) {
  if (s.empty() || !is_alpha(s.front())) {
    return false;
  }
  for (char c : s) {
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

// A DNS name or IPv4 literal: RFC 3986 §3.2.2 unreserved characters only. Percent-encoding and
// sub-delims are legal in a reg-name but never name a host we can resolve, so they are rejected.
bool is_valid_reg_name(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_' && c != '~') {
      return false;
    }
  }
  return true;
}

bool is_valid_ipv6(const std::string& s) {
  in6_addr addr{};
  return inet_pton(AF_INET6, s.c_str(), &addr) == 1;
}

// RFC 3986 §3.2.3: port = *DIGIT; empty means the scheme's default. Port 0 cannot be connected to.
Result<std::uint16_t> parse_port(std::string_view s, std::uint16_t default_port) {
  if (s.empty()) {
    return default_port;
  }
  unsigned value = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (ec != std::errc{} || ptr != end || value == 0 || value > 65535) {
    return fail(Errc::invalid_url);
  }
  return static_cast<std::uint16_t>(value);
}

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

// authority = host [ ":" port ], with userinfo already excluded by the caller.
Result<HostPort> parse_authority(std::string_view authority, std::uint16_t default_port) {
  HostPort out;
  std::string_view rest;
  if (!authority.empty() && authority.front() == '[') {
    // RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]". Zone ids (RFC 6874) are not supported.
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return fail(Errc::invalid_url);
    }
    out.host = lowered(authority.substr(1, close - 1));
    if (!is_valid_ipv6(out.host)) {
      return fail(Errc::invalid_url);
    }
    rest = authority.substr(close + 1);
  } else {
    std::size_t colon = authority.find(':');
    out.host = lowered(authority.substr(0, colon));
    if (!is_valid_reg_name(out.host)) {
      return fail(Errc::invalid_url);
    }
    rest = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
  }
  if (rest.empty()) {
    out.port = default_port;
    return out;
  }
  if (rest.front() != ':') {
    return fail(Errc::invalid_url);
  }
  auto port = parse_port(rest.substr(1), default_port);
  if (!port) {
    return fail(port.error());
  }
  out.port = *port;
  return out;
}

}  // namespace

bool Url::is_tls() const { return scheme == "https"; }

std::uint16_t Url::default_port() const { return is_tls() ? kHttpsPort : kHttpPort; }

std::string Url::origin() const {
  std::string out = scheme;
  out += "://";
  out += host.find(':') == std::string::npos ? host : "[" + host + "]";
  out += ':';
  out += std::to_string(port);
  return out;
}

std::string Url::host_header() const {
  std::string out = host.find(':') == std::string::npos ? host : "[" + host + "]";
  if (port != default_port()) {
    out += ':';
    out += std::to_string(port);
  }
  return out;
}

std::string Url::to_string() const { return scheme + "://" + host_header() + target; }

Result<Url> parse_url(std::string_view text) {
  if (has_forbidden_byte(text)) {
    return fail(Errc::invalid_url);
  }
  std::size_t sep = text.find("://");
  if (sep == std::string_view::npos || !is_valid_scheme(text.substr(0, sep))) {
    return fail(Errc::invalid_url);
  }
  Url url;
  url.scheme = lowered(text.substr(0, sep));
  if (url.scheme != "http" && url.scheme != "https") {
    return fail(Errc::unsupported_scheme);
  }
  std::string_view rest = text.substr(sep + 3);
  // RFC 3986 §3.5: the fragment is for the user agent only and never sent.
  rest = rest.substr(0, rest.find('#'));
  std::size_t path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  // RFC 3986 §3.2.1: userinfo is deprecated for credentials (and "http://good@evil/" deceives).
  if (authority.find('@') != std::string_view::npos) {
    return fail(Errc::invalid_url);
  }
  auto host_port = parse_authority(authority, url.default_port());
  if (!host_port) {
    return fail(host_port.error());
  }
  url.host = std::move(host_port->host);
  url.port = host_port->port;
  // RFC 9112 §3.2.1: origin-form is absolute-path [ "?" query ]; an empty path is sent as "/".
  std::string_view path = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  if (path.empty() || path.front() == '?') {
    url.target = "/";
  }
  url.target += path;
  return url;
}

}  // namespace holdfast
