// Helpers of the net unit tests: a loop runner with a wall-clock bound and a loopback listener.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <gtest/gtest.h>

#include "event/loop.h"
#include "net/socket.h"

namespace holdfast::net::testing {

/// Runs `loop` until `done()` or `limit` passes (a bound for failure, not a sleep); returns done().
inline bool run_until(event::Loop& loop, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::milliseconds{5000}) {
  const auto end = event::Clock::now() + limit;
  while (!done() && event::Clock::now() < end) {
    loop.run_once(std::chrono::milliseconds{50});
  }
  return done();
}

inline std::unique_ptr<event::Loop> make_loop() {
  auto loop = event::Loop::create();
  EXPECT_TRUE(loop.has_value());
  return std::move(*loop);
}

/// A listening socket on 127.0.0.1 with a kernel-chosen port.
inline Fd listen_loopback(const SocketOptions& opts = {}) {
  auto fd = listen_tcp(SocketAddress::loopback_v4(0), ListenOptions{}, opts);
  EXPECT_TRUE(fd.has_value()) << (fd ? "" : fd.error().message());
  return fd ? std::move(*fd) : Fd{};
}

inline SocketAddress address_of(const Fd& fd) {
  auto addr = local_address(fd.get());
  EXPECT_TRUE(addr.has_value());
  return addr ? *addr : SocketAddress{};
}

/// A client socket with `opts` applied and a connect started to `to`.
inline Fd start_client(const SocketAddress& to, const SocketOptions& opts = {}) {
  auto fd = open_tcp_socket(to.family());
  EXPECT_TRUE(fd.has_value());
  if (!fd) {
    return {};
  }
  auto applied = apply_socket_options(fd->get(), opts, SocketRole::client_connect);
  EXPECT_TRUE(applied.has_value()) << (applied ? "" : applied.error().message());
  EXPECT_TRUE(start_connect(fd->get(), to).has_value());
  return std::move(*fd);
}

}  // namespace holdfast::net::testing
