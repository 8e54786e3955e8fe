// Transport: one connection's byte stream, plain TCP or TLS, on one event loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "event/loop.h"
#include "holdfast/result.h"
#include "holdfast/socket_options.h"
#include "net/socket.h"

namespace holdfast::tls {
class Context;
}

namespace holdfast::transport {

/// Receives a transport's events, always on the transport's loop thread. After on_error() or
/// on_closed() no further callback comes. A handler may destroy the Transport from inside any
/// callback (the transport notices and returns without touching itself).
class TransportHandler {
 public:
  /// Connected: TCP connected (plain) or the TLS handshake finished. Comes once, before any data.
  virtual void on_connected() {}
  /// Application bytes arrived. The span is valid only during the call: keep what is not consumed.
  virtual void on_data(std::span<const std::uint8_t> data) = 0;
  /// Every queued byte was handed to the kernel (after a write() that could not complete at once).
  virtual void on_drained() {}
  /// The peer finished sending (FIN, with close_notify first on TLS). Writing may still work.
  virtual void on_peer_closed() = 0;
  /// A fatal error: the transport is closed. Codes: system (ECONNRESET, ...), Errc (timeouts,
  /// keepalive_lost, user_timeout), tls_category (handshake, verification, truncation).
  virtual void on_error(std::error_code ec) = 0;

 protected:
  ~TransportHandler() = default;
};

/// Facts about an established connection (TLS fields empty for plain TCP, and until the handshake
/// is done). Built on request from what the transport and its TLS engine keep anyway, so that an
/// idle connection stores no copy of it (issue 8).
struct ConnectionInfo {
  std::string remote_address;  ///< "ip:port"
  /// "TLSv1.3", ...; a view of a static string (OpenSSL's tables).
  std::string_view tls_version;
  /// The cipher suite's name; a static string too.
  std::string_view tls_cipher;
  /// The negotiated ALPN protocol; a view valid until the transport is next used (it may point
  /// into OpenSSL's connection, which the record take-over frees): copy it to keep it.
  std::string_view alpn;
  bool tls_resumed = false;
  std::chrono::steady_clock::time_point tcp_connected{};  ///< when TCP connect completed (client)
};

/// A connection's byte stream. Writes are accepted whole and queued: the caller never retries a
/// write (incident 004: no SSL_write is ever repeated with other arguments). Idle transports hold
/// no read or write buffer: reads go through a per-thread scratch buffer, and queues are freed
/// when empty. Loop-thread only. Destroying it closes the connection at once (no callbacks).
class Transport {
 public:
  virtual ~Transport() = default;

  /// Queues bytes to send and starts sending; never fails synchronously (errors arrive through
  /// on_error). Copies `data`.
  virtual void write(std::span<const std::uint8_t> data) = 0;
  /// Queues a string, taking it without a copy (plain TCP) where possible.
  virtual void write(std::string data) = 0;
  /// Bytes queued and not yet handed to the kernel (plaintext size for TLS), for back-pressure.
  [[nodiscard]] virtual std::size_t pending_output() const = 0;

  /// Stops delivering on_data (the socket is not read, so TCP flow control pushes back).
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;

  /// Sends close_notify (TLS) and FIN once every queued byte is out. Reading continues.
  virtual void shutdown_write() = 0;
  /// Closes now: no further callbacks, queued data is dropped.
  virtual void close() = 0;
  /// Fork safety: closes the descriptor without a write, close_notify or shutdown(), so the
  /// process that shares the connection is untouched.
  virtual void abandon() = 0;

  /// Frees every buffer the connection can rebuild on demand (TLS buffers, empty queues).
  virtual void release_idle_memory() = 0;
  /// TLS 1.3: sends a KeyUpdate (RFC 8446 §4.6.3), asking the peer to update too when
  /// `update_requested`. Does nothing on plain TCP, TLS 1.2 or before the handshake is done.
  virtual void request_key_update(bool /*update_requested*/) {}
  /// Which TLS record path carries the connection ("holdfast" after the take-over, "openssl"
  /// otherwise; tls::Engine::record_path()); "" for plain TCP.
  [[nodiscard]] virtual std::string_view tls_record_path() const { return ""; }

  [[nodiscard]] virtual bool is_connected() const = 0;
  /// See ConnectionInfo (its views are valid until the transport is next used).
  [[nodiscard]] virtual ConnectionInfo info() const = 0;
  /// The descriptor (for socket-level tests and TCP_INFO); -1 once closed.
  [[nodiscard]] virtual int fd() const = 0;
  /// After on_peer_closed(): the error an EOF without TLS close_notify means (a possible
  /// truncation), or no error (clean close, or plain TCP). The HTTP layer decides whether it
  /// matters (it does for a close-delimited body).
  [[nodiscard]] virtual std::error_code eof_error() const = 0;
  /// Replaces the handler (e.g. when a pooled connection is handed to a new owner).
  virtual void set_handler(TransportHandler* handler) = 0;
};

/// What a client transport needs to connect.
struct ConnectParams {
  net::SocketAddress address;
  SocketOptions socket;
  std::shared_ptr<const tls::Context> tls;  ///< null: plain TCP
  std::string server_name;                  ///< SNI and certificate host name (TLS only)
  std::string session_key;  ///< TLS session cache key (origin); empty: no resumption
  std::chrono::milliseconds connect_timeout{30'000};    ///< 0: none
  std::chrono::milliseconds handshake_timeout{30'000};  ///< 0: none
};

/// Starts a connection; `handler` gets on_connected() or on_error(). Synchronous errors
/// (socket(), a socket option, a TLS engine that cannot be created) are returned.
Result<std::unique_ptr<Transport>> connect(event::Loop& loop, const ConnectParams& params,
                                           TransportHandler* handler);

/// What a server transport needs for an accepted socket.
struct AcceptParams {
  std::shared_ptr<const tls::Context> tls;              ///< null: plain TCP
  std::chrono::milliseconds handshake_timeout{10'000};  ///< 0: none
};

/// Wraps an accepted socket (options already applied by the acceptor); for TLS the handshake
/// starts at once and on_connected() comes when it is done.
Result<std::unique_ptr<Transport>> accept(event::Loop& loop, net::Fd fd,
                                          const net::SocketAddress& peer,
                                          const AcceptParams& params, TransportHandler* handler);

}  // namespace holdfast::transport
