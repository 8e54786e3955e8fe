// TCP keep-alive and user-timeout flags shared by `get`, `request` and `serve`.
#include "socket_flags.h"

#include <chrono>
#include <cmath>

namespace holdfast::cli {

void add_socket_flags(CLI::App& cmd, SocketFlags& f) {
  cmd.add_option("--keepalive-idle", f.keepalive_idle,
                 "TCP keep-alive: idle SECONDS before the first probe (default 30)")
      ->check(CLI::Range(1, 32767));
  cmd.add_option("--keepalive-interval", f.keepalive_interval,
                 "TCP keep-alive: SECONDS between probes (default 10)")
      ->check(CLI::Range(1, 32767));
  cmd.add_option("--keepalive-count", f.keepalive_count,
                 "TCP keep-alive: unanswered probes before the connection is dropped (default 3)")
      ->check(CLI::Range(1, 127));
  cmd.add_flag("--no-keepalive", f.no_keepalive, "disable TCP keep-alive");
  cmd.add_option("--user-timeout", f.user_timeout,
                 "TCP_USER_TIMEOUT in SECONDS (0: the kernel's default; default: derived from "
                 "keep-alive)")
      ->check(CLI::NonNegativeNumber);
}

void apply_socket_flags(const SocketFlags& f, SocketOptions& options) {
  options.keepalive = !f.no_keepalive;
  if (f.keepalive_idle) {
    options.keepalive_idle = std::chrono::seconds(*f.keepalive_idle);
  }
  if (f.keepalive_interval) {
    options.keepalive_interval = std::chrono::seconds(*f.keepalive_interval);
  }
  if (f.keepalive_count) {
    options.keepalive_count = *f.keepalive_count;
  }
  if (f.user_timeout) {
    // Rounded up so that a tiny positive value never becomes 0 ("the kernel's default").
    options.user_timeout =
        std::chrono::milliseconds(static_cast<long long>(std::ceil(*f.user_timeout * 1000)));
  }
}

}  // namespace holdfast::cli
