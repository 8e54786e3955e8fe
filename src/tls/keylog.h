// Private: the keylog callback that captures TLS 1.3 traffic secrets for the record take-over and
// writes SSLKEYLOGFILE lines when (and only when) the user set that variable.
#pragma once

struct ssl_ctx_st;
struct ssl_st;

namespace holdfast::tls {

struct RecordState;

/// Installs holdfast's keylog callback on `ctx` (once per context). For each secret OpenSSL
/// derives, the callback stores CLIENT_/SERVER_TRAFFIC_SECRET_0 into the RecordState attached to
/// the SSL (if any), and appends the line to the file named by SSLKEYLOGFILE when that variable
/// was set at the first call (NSS key log format, for Wireshark). Secrets go nowhere else.
/// Thread-safe.
void install_keylog_callback(ssl_ctx_st* ctx);

/// Attaches `state` to `ssl` as the receiver of its traffic secrets (null detaches). `state` must
/// outlive the attachment. Returns false if OpenSSL could not store the pointer.
bool attach_secret_receiver(ssl_st* ssl, RecordState* state);

/// True when SSLKEYLOGFILE was set (and could be opened) for this process.
bool keylog_file_enabled();

}  // namespace holdfast::tls
