// A scripted raw TCP server on 127.0.0.1 for tests: accepts connections and plays canned bytes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace holdfast::testing {

/// Listens on 127.0.0.1:0 and runs `script(fd)` for each accepted connection (blocking socket,
/// on its own thread, one connection at a time). Closes the connection after the script returns.
/// Stops after `max_connections` or on destruction. For tests that need a misbehaving peer.
class RawPeer {
 public:
  using Script = std::function<void(int fd)>;
  explicit RawPeer(Script script, int max_connections = 16);
  ~RawPeer();
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url(const std::string& path = "/") const;
  [[nodiscard]] int accepted() const { return accepted_.load(); }

  /// Reads from `fd` until the end of an HTTP head (CRLFCRLF) or EOF; returns what was read.
  static std::string read_head(int fd);
  /// Writes all of `data` (ignores errors: the peer may be gone).
  static void write_all(int fd, const std::string& data);

 private:
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace holdfast::testing
