// What server connections share: the server's configuration and counters, and per-loop state.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "event/loop.h"
#include "holdfast/server.h"
#include "net/socket.h"
#include "transport/transport.h"

namespace holdfast::tls {
class Context;
}

namespace holdfast::http {

class ServerConnection;
class H2ServerConnection;

/// The server's counters, updated from every loop thread (relaxed atomics: they are statistics).
struct ServerCounters {
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> tls_handshakes{0};
  std::atomic<std::uint64_t> tls_resumptions{0};
  std::atomic<std::uint64_t> protocol_errors{0};
};

/// Everything every connection of one server reads. Immutable after Server::start (except the
/// counters), shared by all loops; outlives every connection.
struct ServerConfig {
  ServerTimeouts timeouts;
  ServerLimits limits;
  std::string server_header;
  Handler handler;
  StreamBodyPredicate stream_body;          ///< empty: every request body is buffered
  std::shared_ptr<const tls::Context> tls;  ///< null: plain HTTP
  bool h2c_prior_knowledge = false;         ///< plain connections speak HTTP/2 (h2c)
  ServerCounters counters;
  /// Called on a loop thread after a connection closed and connections_open was decremented (the
  /// server resumes a paused acceptor and wakes a graceful shutdown). May be empty.
  std::function<void()> on_connection_closed;
};

/// A thread-safe way to reach a loop that may be gone: ResponseWriter states keep one, and the
/// server clears it before the loops are destroyed, after which posts are dropped.
class LoopHandle {
 public:
  explicit LoopHandle(event::Loop* loop) : loop_(loop) {}
  /// Posts `fn` to the loop; returns false (and drops `fn`) once the loop is detached.
  bool post(std::function<void()> fn);
  /// True on the loop's own thread (false once detached).
  [[nodiscard]] bool is_in_loop_thread();
  /// Forgets the loop; later posts are dropped. Called by the server before it stops the loops.
  void detach();

 private:
  std::mutex mutex_;
  event::Loop* loop_;  // guarded by mutex_
};

/// The Date header value (RFC 9110 §6.6.1, IMF-fixdate), formatted at most once per second.
class DateCache {
 public:
  /// "Sun, 06 Nov 1994 08:49:37 GMT" for the current second.
  std::string_view get();

 private:
  std::time_t second_ = -1;
  char text_[32] = {};
  std::size_t size_ = 0;
};

/// The per-loop side of a server: the connections living on that loop. Loop-thread only (except
/// construction and destruction, which happen while the loop does not run).
class ServerLoopContext {
 public:
  ServerLoopContext(event::Loop& loop, ServerConfig& config);
  /// Destroys every connection still registered (without callbacks to the handler).
  ~ServerLoopContext();
  ServerLoopContext(const ServerLoopContext&) = delete;
  ServerLoopContext& operator=(const ServerLoopContext&) = delete;

  /// Takes an accepted socket: wraps it in a transport and a ServerConnection. While draining, or
  /// when the transport cannot be created, the socket is closed at once.
  void adopt(net::Fd fd, const net::SocketAddress& peer);
  /// Graceful shutdown, step 1: closes idle connections now and lets busy ones finish their
  /// current requests, then close. New sockets are refused from now on.
  void drain();
  /// Graceful shutdown, step 2 (or a hard stop): closes every connection now.
  void close_all();

  [[nodiscard]] event::Loop& loop() { return loop_; }
  [[nodiscard]] ServerConfig& config() { return config_; }
  [[nodiscard]] const std::shared_ptr<LoopHandle>& handle() const { return handle_; }
  [[nodiscard]] DateCache& date() { return date_; }
  [[nodiscard]] bool is_draining() const { return draining_; }

  /// Called by a connection that has closed: unlinks it and deletes it later, from the loop, so
  /// that no frame of the connection is still on the stack.
  void retire(ServerConnection* connection);
  /// The same for an HTTP/2 connection.
  void retire(H2ServerConnection* connection);

  /// ALPN chose "h2": `from` (inside its on_connected, already marked closed) gives its
  /// transport to a new HTTP/2 connection and is deleted later; the connection stays counted once.
  void hand_over_to_http2(ServerConnection* from, std::unique_ptr<transport::Transport> transport);

 private:
  void reap();
  void link_http2(std::unique_ptr<transport::Transport> transport, H2ServerConnection* connection);
  void schedule_reap();

  event::Loop& loop_;
  ServerConfig& config_;
  std::shared_ptr<LoopHandle> handle_;
  DateCache date_;
  ServerConnection* live_ = nullptr;          // intrusive list of open connections
  ServerConnection* retired_ = nullptr;       // closed, waiting for reap()
  H2ServerConnection* live_h2_ = nullptr;     // intrusive list of open HTTP/2 connections
  H2ServerConnection* retired_h2_ = nullptr;  // closed, waiting for reap()
  bool reap_posted_ = false;
  bool draining_ = false;
};

}  // namespace holdfast::http
