// Client connections: one Transport plus one codec (HTTP/1.1 now; HTTP/2 adds a codec, not a
// rewrite).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "holdfast/http.h"
#include "holdfast/result.h"
#include "transport/transport.h"

namespace holdfast::http {

/// The head of a final (non-1xx) response.
struct ResponseHead {
  int status = 0;
  std::string reason;
  HttpVersion version = HttpVersion::http1_1;
  Headers headers;
};

/// What a connection knew when an exchange failed, so that the client can decide whether a
/// transparent retry is safe (docs/architecture.md, "Retries").
struct FailureFacts {
  bool request_bytes_sent = false;   ///< any byte of this request reached the transport
  bool response_bytes_seen = false;  ///< any byte of a response to it arrived
  /// The connection had carried an earlier request: one served before, or one pipelined ahead.
  bool connection_was_reused = false;
};

/// One request's view of a connection. All calls on the connection's loop thread. After
/// on_response_complete() or on_exchange_error() the connection forgets the exchange.
class ExchangeHandler {
 public:
  /// The request to send (must stay valid until the exchange ends).
  [[nodiscard]] virtual const Request& request() const = 0;
  /// The request target, "/path?q", and the Host header value.
  [[nodiscard]] virtual const std::string& target() const = 0;
  [[nodiscard]] virtual const std::string& host_header() const = 0;
  /// Every request byte was handed to the transport and this exchange's response is the next one
  /// due (HTTP/1.1 pipelining: called when the responses before it are complete), so the
  /// response-header and idle-read timeouts never count the time earlier responses take.
  virtual void on_request_sent() {}
  /// The first byte of the response arrived.
  virtual void on_first_byte() {}
  virtual void on_response_head(ResponseHead head) = 0;
  /// A piece of body. An error aborts the exchange (and closes the connection).
  virtual Result<void> on_response_body(std::span<const std::uint8_t> data) = 0;
  virtual void on_response_complete() = 0;
  virtual void on_exchange_error(std::error_code ec, const FailureFacts& facts) = 0;

 protected:
  ~ExchangeHandler() = default;
};

class ClientConnection;

/// The pool's view of its connections. Calls on the loop thread.
class ConnectionOwner {
 public:
  /// The connection is up (handshake done) or has finished an exchange and can take another.
  virtual void on_connection_ready(ClientConnection* connection) = 0;
  /// The connection is closed and can be destroyed (not from inside this call: defer it).
  /// `ec` is the reason, or empty for an orderly close.
  virtual void on_connection_closed(ClientConnection* connection, std::error_code ec) = 0;

 protected:
  ~ConnectionOwner() = default;
};

/// A client connection: one transport, one protocol codec. Loop-thread only.
class ClientConnection {
 public:
  virtual ~ClientConnection() = default;

  /// Sends the exchange's request. Precondition: can_take_request(); an HTTP/1.1 connection that
  /// is not idle (pipelining) takes only requests with a buffered body.
  virtual void start(ExchangeHandler* exchange) = 0;
  /// The exchange gives up (timeout, cancelled): it gets no further callback. An HTTP/1
  /// connection whose response in progress is abandoned cannot be reused and closes; the
  /// exchanges pipelined behind it fail with Errc::closed_before_response (facts: sent, no
  /// response byte, reused), so that the client retries those it may. One pipelined behind the
  /// response in progress is dropped when its turn comes (the same close then happens).
  virtual void abort(ExchangeHandler* exchange, std::error_code why) = 0;

  [[nodiscard]] virtual bool is_connected() const = 0;
  /// True when start() may be called now: HTTP/2 below its stream limit; HTTP/1.1 idle, or, with
  /// pipelining (Http1ClientLimits::pipeline_depth > 1), below the depth with every request in
  /// flight idempotent, its body sent and no "Connection: close" seen.
  [[nodiscard]] virtual bool can_take_request() const = 0;
  [[nodiscard]] virtual bool is_idle() const = 0;
  /// True when it served at least one exchange before the current one.
  [[nodiscard]] virtual bool was_used() const = 0;

  /// Checks an idle connection before reuse: false if the peer closed it or sent something
  /// unsolicited (the connection is then closed).
  virtual bool check_alive() = 0;
  /// Closes now; no owner callback.
  virtual void close() = 0;
  /// Fork safety: drop without touching the connection (Transport::abandon()).
  virtual void abandon() = 0;

  [[nodiscard]] virtual transport::Transport& transport() = 0;
};

/// Limits of the HTTP/1 response parser on the client, and of pipelining.
struct Http1ClientLimits {
  std::size_t max_header_bytes = 256 * 1024;
  std::size_t max_headers = 256;
  /// Requests in flight at once (RFC 9112 §9.3.2 pipelining); 0 or 1: one at a time.
  std::size_t pipeline_depth = 0;
};

/// RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or a request with an Idempotency-Key
/// header (draft-ietf-httpapi-idempotency-key-header): repeating it has the same effect.
[[nodiscard]] bool is_idempotent(const Request& request);

/// Makes an HTTP/1.1 client connection over `transport` (already connecting or connected). The
/// connection becomes the transport's handler.
std::unique_ptr<ClientConnection> make_http1_client_connection(
    std::unique_ptr<transport::Transport> transport, ConnectionOwner* owner,
    Http1ClientLimits limits = {});

}  // namespace holdfast::http
