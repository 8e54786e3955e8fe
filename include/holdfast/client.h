// holdfast::Client: HTTP/1.1 (and later HTTP/2) over TLS or plain TCP, with a connection pool.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "holdfast/http.h"
#include "holdfast/result.h"
#include "holdfast/socket_options.h"
#include "holdfast/tls_options.h"

namespace holdfast {

/// Client timeouts. Zero means "no limit". The defaults never cut a live server that is slow to
/// answer (a response may take 30 minutes); a dead or silently dropped path is still reported
/// within about 2 minutes by TCP keep-alive and TCP_USER_TIMEOUT (SocketOptions,
/// docs/keepalive.md).
struct ClientTimeouts {
  std::chrono::milliseconds dns{10'000};            ///< name resolution
  std::chrono::milliseconds connect{30'000};        ///< TCP connect
  std::chrono::milliseconds tls_handshake{30'000};  ///< TLS handshake after connect
  std::chrono::milliseconds response_headers{0};    ///< request sent -> response head complete
  std::chrono::milliseconds idle_read{0};           ///< longest silence while a response is due
  std::chrono::milliseconds deadline{0};            ///< whole request, from start to last byte
};

/// Connection-pool limits. A connection is reused only for the same scheme, host, port and TLS
/// options (the origin key).
struct PoolOptions {
  std::size_t max_per_origin = 256;      ///< open connections per origin (requests queue beyond)
  std::size_t max_total = 16'384;        ///< open connections in the whole client
  std::size_t max_idle_per_origin = 64;  ///< idle connections kept per origin
  std::chrono::milliseconds idle_timeout{90'000};  ///< an idle connection is closed after this
  std::chrono::milliseconds queue_timeout{0};      ///< longest wait for a pool slot; 0: no limit
  /// HTTP/2: streams one connection carries before a second one opens (0: as many as the peer's
  /// SETTINGS_MAX_CONCURRENT_STREAMS allows). While an HTTP/2 connection to an origin is being set
  /// up, further requests to it wait for it instead of opening more connections.
  std::size_t max_streams_per_connection = 0;
  /// HTTP/1.1 pipelining (RFC 9112 §9.3.2): requests one connection carries at once, each written
  /// before the responses to the earlier ones arrived. 0 or 1: off (the default: many servers
  /// and middleboxes mishandle it, and one slow response delays all behind it). Applies only to
  /// the origins in `pipeline_origins`, only on HTTP/1.1 connections (HTTP/2 multiplexes
  /// instead), and only to requests with a buffered body (never a body_source stream). The pool
  /// first reuses an idle connection, then opens a new one while under max_per_origin, and only
  /// then pipelines onto busy connections, spreading the requests over them (like curl's former
  /// CURLMOPT_PIPELINING): set max_per_origin = 1 to send everything over one connection.
  /// Nothing is pipelined behind a non-idempotent request, a streamed body, a response with
  /// "Connection: close" or an aborted exchange, and a retry is never pipelined. If the
  /// connection closes mid-pipeline, the requests without any response byte fail with
  /// Errc::closed_before_response and are retried under the usual rules (Client), a request
  /// whose response was partly received fails with Errc::connection_closed and is never retried.
  /// The response-header and idle-read timeouts of a pipelined request start when the responses
  /// before it are complete; its deadline runs from the start. See docs/pipelining.md.
  std::size_t pipeline_depth = 0;
  /// The origins known to handle pipelining, as "scheme://host[:port]" (the scheme's default
  /// port may be left out), e.g. {"https://api.example.com", "http://127.0.0.1:8080"}. Only
  /// these get pipelined requests, and only when pipeline_depth > 1.
  std::vector<std::string> pipeline_origins;
};

/// Everything a Client is configured with. Copyable plain data.
struct ClientOptions {
  SocketOptions socket;  ///< applied to every connection (keep-alive ON)
  ClientTlsOptions tls;  ///< verification ON by default
  ClientTimeouts timeouts;
  PoolOptions pool;
  std::size_t threads = 1;                    ///< event-loop threads; connections spread over them
  std::size_t max_response_body = 64u << 20;  ///< buffered bodies larger than this fail
  bool retry = true;  ///< retry on a fresh connection when that is safe (see Client::request)
  std::string user_agent = "holdfast/0.1";  ///< sent unless the request has its own User-Agent
  /// Never speak HTTP/2: "h2" is removed from the TLS ALPN offer.
  bool force_http1 = false;
  /// http:// URLs: speak HTTP/2 from the first byte (h2c with prior knowledge, RFC 9113 §3.3);
  /// the server must support it.
  bool h2c_prior_knowledge = false;
};

/// Per-request options.
struct RequestOptions {
  std::optional<ClientTimeouts> timeouts;  ///< overrides the client's timeouts for this request
  BodySink on_body;                        ///< stream the response body instead of buffering it
};

/// An HTTP client with a connection pool, safe to share between threads.
///
/// Retries: a request is retried once on a fresh connection, transparently, only when it was
/// never written, or when a reused connection closed with zero response bytes and the method is
/// idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or the request has an Idempotency-Key
/// header. Streamed request bodies (body_source) are never retried once reading them started.
/// A request pipelined behind another (PoolOptions::pipeline_depth) counts as written on a reused
/// connection; one whose response had partly arrived is never retried.
///
/// Threads: the client runs `threads` event loops on its own threads, started on first use.
/// Callbacks (BodySource, BodySink, async completion) run on those threads and must not block.
///
/// fork(): after fork(), the first use in the child closes the inherited connections silently
/// (no byte written: the parent's are untouched) and restarts the loop threads. Do not fork from
/// one of the client's own callbacks (docs/fork.md).
class Client {
 public:
  explicit Client(ClientOptions options = {});
  /// Closes every connection (without waiting for in-flight requests, which fail with
  /// Errc::cancelled) and joins the threads.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Sends a request and waits for the whole response. Errors: Errc (timeouts, DNS, closed
  /// connections, limits), std::system_category (connect refused, reset), tls_category
  /// (verification, handshake) and http1_category (a malformed response). Must not be called on
  /// one of the client's own loop threads (returns Errc::invalid_argument). Thread-safe.
  Result<Response> request(Request request, const RequestOptions& options = {});

  /// Shorthand for a GET of `url`.
  Result<Response> get(std::string_view url);

  /// Completion of an asynchronous request; called exactly once, on a loop thread.
  using Callback = std::function<void(Result<Response>)>;

  /// Starts a request and returns at once; `on_done` gets the response or the error. Thread-safe.
  void request_async(Request request, RequestOptions options, Callback on_done);

  /// Counters for tests, `-v` and benchmarks.
  struct Stats {
    std::uint64_t connections_opened = 0;  ///< TCP connections this client opened
    std::uint64_t requests_sent = 0;       ///< requests written (retries count again)
    std::uint64_t connection_reuses = 0;   ///< requests that went out on a pooled connection
    std::uint64_t retries = 0;             ///< transparent retries on a fresh connection
    std::uint64_t tls_resumptions = 0;     ///< TLS handshakes that resumed a session
    /// Requests written behind others still in flight (HTTP/1.1 pipelining).
    std::uint64_t pipelined = 0;
  };
  [[nodiscard]] Stats stats() const;

  /// Closes the idle connections of every origin now.
  void close_idle_connections();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace holdfast
