// TCP keep-alive and user-timeout flags shared by `get`, `request` and `serve`.
#pragma once

#include <optional>

#include <CLI/CLI.hpp>

#include "holdfast/socket_options.h"

namespace holdfast::cli {

/// The socket flags of a command; unset flags keep SocketOptions' defaults (30 s / 10 s / 3).
struct SocketFlags {
  std::optional<int> keepalive_idle;      ///< --keepalive-idle seconds
  std::optional<int> keepalive_interval;  ///< --keepalive-interval seconds
  std::optional<int> keepalive_count;     ///< --keepalive-count probes
  bool no_keepalive = false;              ///< --no-keepalive
  std::optional<double> user_timeout;     ///< --user-timeout seconds (0: the kernel's default)
};

/// Adds --keepalive-idle, --keepalive-interval, --keepalive-count, --no-keepalive and
/// --user-timeout to `cmd`, storing into `flags` (which must outlive parsing).
void add_socket_flags(CLI::App& cmd, SocketFlags& flags);

/// Applies the flags that were given to `options`.
void apply_socket_flags(const SocketFlags& flags, SocketOptions& options);

}  // namespace holdfast::cli
