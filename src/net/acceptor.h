// Acceptor: a listening socket on a Loop that hands out accepted, configured connections.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>

#include "event/loop.h"
#include "event/timer_wheel.h"
#include "holdfast/result.h"
#include "holdfast/socket_options.h"
#include "net/fd.h"
#include "net/socket_address.h"

namespace holdfast::net {

/// Watches a listening socket on one Loop and accepts connections: up to kMaxAcceptsPerWakeup per
/// readiness, each configured with the accepted-socket options (SocketRole::server_accept) before
/// on_accept sees it. The plain options (keep-alive, user timeout, nodelay, buffers, mark,
/// priority) are set once on the listening socket; the first accepted socket shows which of them
/// the kernel passed on (inherited_options()), and later ones get only the others set again (on
/// Linux 6.x: SO_PRIORITY, when configured), which saves the 6 setsockopt() per connection of
/// the defaults. The on_socket hook still runs for every accepted socket. If the listening socket
/// refuses an option, every option is set on every accepted socket, as before. A connection whose
/// options (or on_socket hook) fail is closed and counted, never handed out. When the process or
/// system runs out of descriptors (EMFILE/ENFILE, also ENOBUFS/ENOMEM) the acceptor stops watching
/// for kExhaustedPause and counts it: level-triggered epoll would otherwise report the pending
/// connection again at once and spin. Loop-thread only; closes the listening socket on destruction.
class Acceptor final : event::IoHandler {
 public:
  /// Called for every accepted connection (a non-blocking socket), on the loop thread. May destroy
  /// the Acceptor.
  using OnAccept = std::function<void(Fd fd, const SocketAddress& peer)>;
  /// Called (optional) for every connection dropped or accept error seen, for logging. Must not
  /// destroy the Acceptor.
  using OnError = std::function<void(std::error_code ec)>;

  static constexpr int kMaxAcceptsPerWakeup = 64;
  static constexpr std::chrono::milliseconds kExhaustedPause{100};

  /// Starts accepting on `listen_fd` (a listening non-blocking socket, see listen_tcp()). `loop`
  /// must outlive the Acceptor. Errors: the system's when the loop cannot watch the socket.
  static Result<std::unique_ptr<Acceptor>> create(event::Loop& loop, Fd listen_fd,
                                                  SocketOptions accepted_opts, OnAccept on_accept);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  /// Stops accepting (pending connections wait in the kernel's backlog). Idempotent.
  void pause();
  /// Starts accepting again after pause(). Idempotent.
  void resume();
  /// True between pause() and resume().
  [[nodiscard]] bool is_paused() const { return paused_; }
  /// Sets the observer of dropped connections and accept errors.
  void set_on_error(OnError on_error) { on_error_ = std::move(on_error); }
  /// The listening descriptor.
  [[nodiscard]] int fd() const { return listen_fd_.get(); }

  /// Connections handed to on_accept.
  [[nodiscard]] std::uint64_t accepted_count() const { return accepted_; }
  /// Connections closed because their socket options or hook failed.
  [[nodiscard]] std::uint64_t rejected_count() const { return rejected_; }
  /// Times accepting was paused for kExhaustedPause because descriptors ran out.
  [[nodiscard]] std::uint64_t exhausted_count() const { return exhausted_; }

 private:
  Acceptor(event::Loop& loop, Fd listen_fd, SocketOptions accepted_opts, OnAccept on_accept);
  void on_io(std::uint32_t events) override;
  void update_watch();
  void report(std::error_code ec);
  Result<void> configure(int fd);

  event::Loop& loop_;
  Fd listen_fd_;
  SocketOptions accepted_opts_;
  OnAccept on_accept_;
  OnError on_error_;
  event::Timer backoff_;
  bool paused_ = false;  // by the user
  bool watching_ = false;
  bool listener_configured_ = false;  // the plain options are set on listen_fd_
  bool inheritance_known_ = false;    // inherited_ was read from an accepted socket
  std::uint32_t inherited_ = 0;       // SocketOptionBit set: what accepted sockets inherit
  std::shared_ptr<bool> alive_;       // lets on_io notice that on_accept destroyed the Acceptor
  std::uint64_t accepted_ = 0;
  std::uint64_t rejected_ = 0;
  std::uint64_t exhausted_ = 0;
};

}  // namespace holdfast::net
