// Process-wide one-time work, done eagerly: call holdfast::init() at start-up.
#pragma once

#include "holdfast/result.h"

namespace holdfast {

/// Does holdfast's one-time work at once instead of on the first connection: OpenSSL initialised,
/// its RNG seeded, algorithms fetched, the system CA store parsed. Its cost does not depend on the
/// size of the process (incident 000: seeding that walked a 10-million-object heap stalled the
/// first HTTPS connection for minutes). Servers should call it at start-up, before building large
/// heaps; Client and Server call it on first use anyway. Idempotent and thread-safe.
Result<void> init();

}  // namespace holdfast
