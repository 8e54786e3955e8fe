// holdfast::Server: HTTP/1.1 (and later HTTP/2) over TLS or plain TCP, with a handler API.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "holdfast/http.h"
#include "holdfast/http2_error.h"
#include "holdfast/result.h"
#include "holdfast/socket_options.h"
#include "holdfast/tls_options.h"

namespace holdfast {

/// Server timeouts against slow or vanished clients. Zero means "no limit". HTTP/2 applies
/// header_read to each request's header block (expiry closes the connection: a header block
/// cannot be skipped) and body_read to each stream's body (expiry ends that stream alone, with
/// 408 when no response was started; docs/server.md).
struct ServerTimeouts {
  std::chrono::milliseconds tls_handshake{10'000};  ///< accept -> handshake done
  std::chrono::milliseconds header_read{
      30'000};                                  ///< first byte -> request head complete (slowloris)
  std::chrono::milliseconds body_read{60'000};  ///< longest silence inside a request body
  std::chrono::milliseconds keepalive_idle{75'000};  ///< idle connection between requests
  std::chrono::milliseconds write{60'000};           ///< longest stall writing a response
};

/// Server limits; exceeding one is answered with the status in brackets and a close.
struct ServerLimits {
  std::size_t max_start_line = 8 * 1024;     ///< request line [414 for the target, else 400]
  std::size_t max_header_bytes = 64 * 1024;  ///< whole header section [431]
  std::size_t max_headers = 100;             ///< header count [431]
  std::size_t max_body = 16u << 20;          ///< request body [413]
  std::size_t max_pipelined = 16;            ///< requests read ahead of the one being answered
  std::size_t max_connections = 0;           ///< 0: only the process's descriptor limit
  /// HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS announced; a client opening more gets REFUSED_STREAM.
  std::size_t http2_max_concurrent_streams = 100;
  /// HTTP/2: SETTINGS_MAX_HEADER_LIST_SIZE announced and enforced (RFC 9113 §6.5.2 size: names,
  /// values and 32 per field) [431 for that stream; the other streams go on].
  std::size_t http2_max_header_list_size = 64 * 1024;
};

/// Decides, once a request's head has arrived, whether its handler runs at once with the body
/// streamed (true: the handler reads it through ResponseWriter::read_body) or only after the whole
/// body has been buffered into Request::body (false). Called on the loop thread; must not block.
using StreamBodyPredicate = std::function<bool(const Request& head)>;

/// Everything a Server is configured with. Copyable.
struct ServerOptions {
  std::string bind = "127.0.0.1";       ///< numeric address to listen on
  std::uint16_t port = 0;               ///< 0: the kernel picks (see Server::port())
  std::optional<ServerTlsOptions> tls;  ///< unset: plain HTTP
  SocketOptions socket;                 ///< applied to every accepted connection
  ServerTimeouts timeouts;
  ServerLimits limits;
  std::size_t threads = 1;  ///< event-loop threads; connections spread over them
  bool reuse_port = false;  ///< SO_REUSEPORT, for pre-forked workers
  /// An already listening TCP socket to serve instead of binding one (`bind`, `port` and
  /// `reuse_port` are then ignored), e.g. one a pre-forking parent bound before fork()
  /// (`holdfast serve --workers`, docs/fork.md). The server owns it from start() on, also when
  /// start() fails, and makes it non-blocking. -1: bind as configured. Errors:
  /// Errc::invalid_argument when it is not a listening socket.
  int listen_fd = -1;
  std::string server_header = "holdfast";  ///< Server: header; empty sends none
  /// Which request bodies are streamed to the handler; unset: every body is buffered (up to
  /// limits.max_body, which also bounds streamed bodies).
  StreamBodyPredicate stream_body;
  /// Plain TCP only: speak HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) on every connection
  /// instead of HTTP/1.1. Over TLS the protocol is chosen by ALPN (ServerTlsOptions::alpn).
  bool h2c_prior_knowledge = false;
};

/// The handle a handler answers through. Copyable (all copies refer to the same exchange).
/// Methods are thread-safe: called off the connection's loop thread they are posted to it.
/// Calls after the connection died, or after the response is complete, do nothing.
class ResponseWriter {
 public:
  /// Sends a whole response. Content-Length is set from the body.
  void send(Response response) const;
  /// Starts a streamed response (chunked in HTTP/1.1 unless `headers` has Content-Length).
  void start(int status, Headers headers) const;
  /// Sends one piece of a streamed body.
  void write(std::string chunk) const;
  /// Ends a streamed body.
  void finish() const;
  /// Runs `fn` on the connection's loop after `delay` (not at all if the connection closes first);
  /// for handlers that answer later without a thread of their own.
  void after(std::chrono::milliseconds delay, std::function<void(const ResponseWriter&)> fn) const;
  /// Back-pressure for streamed responses: runs `fn` once on the connection's loop, never before
  /// this call returns, as soon as everything written so far has been handed to the kernel (and
  /// this exchange's turn has come, for a pipelined request). A handler that writes its next piece
  /// from `fn` never queues more than one piece in user space. Not run if the connection closes
  /// first; a later call replaces an earlier one that has not run yet.
  void when_writable(std::function<void(const ResponseWriter&)> fn) const;
  /// Reads a streamed request body (ServerOptions::stream_body): `on_chunk` gets the body piece by
  /// piece as it arrives (bytes that came before this call first), then `on_end` is called once:
  /// success after the last byte, or the error that ended the body (Errc::connection_closed,
  /// Errc::body_read_timeout, Errc::body_too_large, an Http1Errc for broken chunked framing, the
  /// error `on_chunk` returned, or Errc::cancelled when the response completed before the body was
  /// read: the connection then closes after the response). Until this is called, at most 256 KiB
  /// of body is buffered and reading pauses. When the body failed and the handler has not started a
  /// response by the time `on_end` returns, the server answers with 400, 408 or 413 itself.
  /// For a request whose body was buffered, `on_chunk` gets Request::body (if not empty) and
  /// `on_end` succeeds, at once. Call at most once per request; callbacks run on the loop thread.
  void read_body(BodySink on_chunk, std::function<void(Result<void>)> on_end) const;
  /// Ends this exchange abnormally, e.g. from a handler that failed midway through a response.
  /// HTTP/2: the stream is reset (RST_STREAM with `code`, RFC 9113 §5.4.2; codes above 0xd are
  /// sent as INTERNAL_ERROR, Http2Errc::stream_reset as NO_ERROR) and the other streams go on; the
  /// client sees that code (Http2Errc::internal_error, Http2Errc::cancel, ...). HTTP/1.1 has no
  /// per-request reset: the responses of earlier pipelined requests still go out, then the
  /// connection closes without the rest of this response, and later pipelined requests on it are
  /// dropped unanswered (the client sees the connection close, or a body shorter than its framing).
  /// An HTTP/1.0 response delimited by the close itself is cut with an immediate close instead
  /// (TLS: no close_notify, so the client can tell the truncation; plain TCP cannot). Does nothing
  /// once the response is complete. A streamed request body's reader gets Errc::cancelled.
  void reset(Http2Errc code = Http2Errc::internal_error) const;
  /// TLS 1.3 KeyUpdate (RFC 8446 §4.6.3) on this exchange's connection, on either TLS record path
  /// (ServerTlsOptions::record_takeover): the server's sending keys change after what is already
  /// queued, and with `update_requested` the client is asked to change its own as well. It applies
  /// to the whole connection (every HTTP/2 stream on it); the exchange goes on unchanged. `on_done`
  /// (optional) runs on the loop thread: success once the KeyUpdate is queued;
  /// std::errc::operation_not_supported when the connection is plain TCP or TLS 1.2 (which has no
  /// KeyUpdate), nothing being sent then; Errc::connection_closed when the connection is closing.
  /// Not run if the connection closed first.
  void request_tls_key_update(bool update_requested = false,
                              std::function<void(Result<void>)> on_done = nullptr) const;
  /// False once the connection is gone.
  [[nodiscard]] bool is_open() const;

  struct State;  ///< internal
  explicit ResponseWriter(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

/// Called on a loop thread for every request, with the whole body read (up to limits.max_body),
/// or as soon as its head has arrived when ServerOptions::stream_body says so. Must not block:
/// answer through the writer, now or later. Pipelined requests on one connection are answered in
/// order whatever order their handlers finish in.
using Handler = std::function<void(const Request& request, const ResponseWriter& response)>;

/// A listening TCP socket made before any Server exists, e.g. by a pre-forking parent (one per
/// worker, all on one port with `reuse_port`), to hand over as ServerOptions::listen_fd.
struct ListeningSocket {
  int fd = -1;             ///< owned by the caller (close it, or give it to a Server)
  std::uint16_t port = 0;  ///< the bound port (the kernel's pick when asked for 0)
};

/// Binds `bind` (a numeric IPv4 or IPv6 address) and `port` with SO_REUSEADDR (and SO_REUSEPORT
/// when `reuse_port`) and listens, close-on-exec. Errors: invalid_argument for a bad address; the
/// system's (e.g. EADDRINUSE) for socket, bind and listen.
Result<ListeningSocket> listen_tcp_socket(const std::string& bind, std::uint16_t port,
                                          bool reuse_port);

/// An HTTP server.
class Server {
 public:
  /// Binds, listens and starts serving on `options.threads` loop threads. Errors: address
  /// parsing, bind/listen (std::system_category, e.g. EADDRINUSE), TLS certificate/key loading
  /// (tls_category).
  static Result<std::unique_ptr<Server>> start(ServerOptions options, Handler handler);

  /// Graceful shutdown: stop accepting, let in-flight requests finish for up to `grace`, close
  /// idle connections at once, then close everything left. Idempotent; also run by the destructor.
  ~Server();
  void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(30));

  [[nodiscard]] std::uint16_t port() const;   ///< the bound port
  [[nodiscard]] std::string address() const;  ///< "ip:port" bound

  /// Counters for tests, `serve` and benchmarks.
  struct Stats {
    std::uint64_t connections_accepted = 0;
    std::uint64_t connections_open = 0;
    std::uint64_t requests = 0;
    std::uint64_t tls_handshakes = 0;
    std::uint64_t tls_resumptions = 0;
    std::uint64_t protocol_errors = 0;  ///< requests answered 4xx by the codec, or closed
  };
  [[nodiscard]] Stats stats() const;

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace holdfast
