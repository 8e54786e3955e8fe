// Public process-wide init: holdfast::init() does the TLS layer's one-time work eagerly.
#include "holdfast/init.h"

#include "tls/context.h"

namespace holdfast {

Result<void> init() {
  // tls::init_once() cannot fail in a way worth reporting: a missing system CA store is reported by
  // the first client context that needs it (TlsErrc::ca_load_failed), not here.
  tls::init_once();
  return {};
}

}  // namespace holdfast
