// The CLI's exit codes (curl's numbers where curl has one) and the mapping from library errors to
// them.
#pragma once

#include <string>
#include <system_error>

namespace holdfast::cli {

/// One exit code per failure class; docs/cli.md has the table. Values follow curl's where curl has
/// the same class, so scripts written for curl read them the same way.
enum class ExitCode : int {
  ok = 0,                  ///< success (any HTTP status unless --fail)
  failure = 1,             ///< anything not classified below (internal error, cancelled)
  usage = 2,               ///< bad command line: unknown flag, missing or invalid value
  invalid_url = 3,         ///< the URL could not be parsed or its scheme is not http/https
  dns_failure = 6,         ///< the host name could not be resolved
  connect_failed = 7,      ///< TCP connect refused or the host/network is unreachable
  malformed_response = 8,  ///< the response broke HTTP (http1/http2 category, protocol_error)
  http_error = 22,         ///< --fail and the status was >= 400
  write_error = 23,        ///< the output (file or stdout) could not be written
  read_error = 26,         ///< a --data-binary @file could not be read
  timeout = 28,            ///< any timeout: DNS, connect, TLS handshake, headers, idle, --max-time
  tls_handshake = 35,      ///< the TLS handshake failed (protocol, alert, cipher, not TLS at all)
  local_address = 45,      ///< serve: the address could not be bound (in use, not local, denied)
  closed_before_response = 52,  ///< the server closed the connection before any response byte
  connection_lost = 56,     ///< the connection broke mid-transfer (reset, keep-alive, user timeout)
  local_certificate = 58,   ///< serve: --cert/--key could not be loaded or do not match
  tls_cipher = 59,          ///< the cipher list selects nothing usable
  certificate_verify = 60,  ///< the peer certificate failed verification (untrusted, name, expired)
  body_too_large = 63,      ///< a body exceeded the configured limit
  ca_file = 77,             ///< --cacert could not be loaded
};

/// The exit code for a failed request or server start with error `ec`. Never ExitCode::ok.
ExitCode exit_code_for(std::error_code ec);

/// What the user can do about `ec`, one line without a trailing newline, or "" when there is
/// nothing useful to add. `url` is the URL the command was given (may be empty, e.g. for serve).
std::string hint_for(std::error_code ec, const std::string& url);

/// Prints "holdfast: <describe(ec)>" (the generic category's own "holdfast: " not repeated) and,
/// when there is one, "holdfast: hint: <hint>" on stderr.
void print_error(std::error_code ec, const std::string& url);

/// Prints "holdfast: <message>" on stderr.
void print_error(const std::string& message);

}  // namespace holdfast::cli
