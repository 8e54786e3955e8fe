// Client connections that may speak HTTP/2: ALPN "h2" (or prior-knowledge h2c) multiplexes
// exchanges as streams; any other outcome falls back to an HTTP/1.1 connection.
#pragma once

#include <cstddef>
#include <memory>

#include "http/client_connection.h"
#include "transport/transport.h"

namespace holdfast::http {

/// How a client connection picks its protocol.
struct ClientProtocolOptions {
  /// TLS: the ALPN offer includes "h2"; the connection speaks HTTP/2 when the server selects it.
  bool offer_h2 = false;
  /// Plain TCP: speak HTTP/2 from the first byte (h2c with prior knowledge, RFC 9113 §3.3).
  bool h2c_prior_knowledge = false;
  /// HTTP/2: at most this many streams at once (0: as many as the peer's
  /// SETTINGS_MAX_CONCURRENT_STREAMS allows; 100 until its SETTINGS arrive).
  std::size_t max_streams = 0;
  Http1ClientLimits http1;
};

/// Makes a client connection over `transport` (connecting): HTTP/2 when `options` allow it and the
/// handshake agrees, else HTTP/1.1 (make_http1_client_connection). An HTTP/2 connection reports
/// on_connection_ready() whenever it can take one more exchange (up, a stream ended, new
/// SETTINGS); exchanges beyond last-stream-id of a GOAWAY fail with Http2Errc::goaway and
/// request_bytes_sent = false (safe to retry on another connection).
std::unique_ptr<ClientConnection> make_client_connection(
    std::unique_ptr<transport::Transport> transport, ConnectionOwner* owner,
    const ClientProtocolOptions& options);

/// True when `connection` (made by make_client_connection) speaks HTTP/2: it takes several
/// exchanges at once, while can_take_request().
[[nodiscard]] bool is_multiplexed(const ClientConnection& connection);

}  // namespace holdfast::http
