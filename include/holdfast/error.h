// holdfast's generic error domain: what can go wrong on a connection, a request or a server.
#pragma once

#include <string>
#include <system_error>

namespace holdfast {

/// Generic holdfast errors. Operating-system failures (ECONNREFUSED, ECONNRESET, ...) are reported
/// as std::system_category codes instead; TLS, HTTP/1 and HTTP/2 have their own categories
/// (holdfast/tls_error.h, holdfast/http1_error.h). Every value's message() names the cause.
/// docs/errors.md lists when each happens and what the CLI prints.
enum class Errc {
  // 0 is reserved for success.
  invalid_argument = 1,     ///< an option or argument has an invalid value
  invalid_url,              ///< the URL could not be parsed
  unsupported_scheme,       ///< only http and https are supported
  host_not_found,           ///< DNS answered that the name does not exist
  dns_failure,              ///< DNS failed (server failure, refused, malformed answer)
  dns_timeout,              ///< DNS did not answer in time
  connect_timeout,          ///< TCP connect did not complete in time
  tls_handshake_timeout,    ///< the TLS handshake did not complete in time
  response_header_timeout,  ///< the response headers did not arrive in time
  idle_read_timeout,        ///< no byte arrived for the idle-read timeout while a reply was due
  deadline_exceeded,        ///< the whole-request deadline passed
  keepalive_lost,           ///< TCP keep-alive probes went unanswered: the path is dead or dropped
  user_timeout,             ///< sent data stayed unacknowledged past TCP_USER_TIMEOUT
  connection_closed,        ///< the peer closed the connection in the middle of a message
  closed_before_response,   ///< the peer closed a connection before sending any response byte
  cancelled,                ///< the operation was cancelled (client or server shutting down)
  pool_exhausted,           ///< no connection could be had within the pool's limits in time
  body_too_large,           ///< a body exceeded the configured limit
  body_source_failed,       ///< the user's request-body source reported a failure
  forked,                   ///< the object belongs to the parent process of a fork()
  shutting_down,            ///< the client or server is shutting down and takes no new work
  protocol_error,           ///< the peer broke the protocol in a way with no more specific code
  address_in_use,           ///< (reserved) the listening address is taken
  body_read_timeout,        ///< no byte of a request body arrived for the body read timeout
};

/// The category of Errc ("holdfast").
const std::error_category& generic_category() noexcept;

/// Makes an error_code of the holdfast generic category.
std::error_code make_error_code(Errc e) noexcept;

/// A one-line human message for any error code: "<category>: <message>", e.g.
/// "tls: certificate verify failed: self-signed certificate". Never empty.
std::string describe(std::error_code ec);

}  // namespace holdfast

template <>
struct std::is_error_code_enum<holdfast::Errc> : std::true_type {};
