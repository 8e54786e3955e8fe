// The built-in routes of `holdfast serve`: /, /echo, /delay/S, /bytes/N, /status/CODE.
#pragma once

#include <cstddef>
#include <cstdint>

#include "holdfast/server.h"

namespace holdfast::cli {

/// Largest /bytes/N body.
inline constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 30;
/// Longest /delay/SECONDS.
inline constexpr double kMaxDelaySeconds = 24.0 * 3600.0;
/// Size of each piece /bytes/N writes.
inline constexpr std::size_t kBytesPiece = 64 * 1024;

/// The byte at offset `i` of every /bytes/N body: a 64-character cycle, so clients can check any
/// range.
char bytes_pattern_at(std::uint64_t i);

/// The handler of `holdfast serve`. With `access_log`, one line per request goes to stderr
/// (timestamp, method, target, version, status, body length). Never blocks the loop: /delay uses
/// ResponseWriter::after and /bytes writes its pieces from timer callbacks. Thread-safe.
Handler make_router(bool access_log);

}  // namespace holdfast::cli
