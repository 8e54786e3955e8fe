// TLS options of clients and servers. One shared immutable TLS context is built per distinct value.
#pragma once

#include <string>
#include <vector>

namespace holdfast {

/// Lowest protocol version a context accepts. TLS 1.2 is the floor holdfast allows.
enum class TlsVersion { tls1_2, tls1_3 };

/// Client-side TLS options. Verification of the certificate chain and of the host name is ON unless
/// `insecure_skip_verify` is set. Equal options share one TLS context (and one parsed CA store).
struct ClientTlsOptions {
  /// PEM file of trusted CAs. Empty: the system store (parsed once per process, shared by every
  /// client and connection).
  std::string ca_file;
  std::string ca_path;                ///< directory of hashed CA certificates (c_rehash layout)
  bool insecure_skip_verify = false;  ///< accept any certificate and name: for tests only
  std::string client_cert_file;       ///< PEM client certificate chain for mutual TLS
  std::string client_key_file;        ///< PEM private key of client_cert_file
  TlsVersion min_version = TlsVersion::tls1_2;
  /// ALPN offer, in preference order: HTTP/2 first, HTTP/1.1 as the fallback.
  std::vector<std::string> alpn = {"h2", "http/1.1"};
  bool session_resumption = true;  ///< keep one session per origin and resume with it
  std::string ciphers;             ///< TLS 1.2 cipher list; empty: OpenSSL's secure default
  std::string ciphersuites;        ///< TLS 1.3 suites; empty: OpenSSL's default
  /// TLS 1.3: after the handshake, carry the connection with holdfast's own record layer and free
  /// OpenSSL's per-connection state (~0.6 KB instead of 15-27 KB per idle connection). false keeps
  /// OpenSSL's record layer (for comparison and debugging). TLS 1.2 always keeps it.
  bool record_takeover = true;
  bool operator==(const ClientTlsOptions&) const = default;
};

/// Server-side TLS options. Either certificate and key files, or PEM text held in memory.
struct ServerTlsOptions {
  std::string cert_file;  ///< PEM certificate chain, leaf first
  std::string key_file;   ///< PEM private key
  std::string cert_pem;   ///< the chain as PEM text (used when cert_file is empty)
  std::string key_pem;    ///< the key as PEM text (used when key_file is empty)
  TlsVersion min_version = TlsVersion::tls1_2;
  /// Protocols accepted, in server preference order: a client offering h2 gets HTTP/2.
  std::vector<std::string> alpn = {"h2", "http/1.1"};
  int session_tickets = 2;  ///< TLS 1.3 tickets sent per full handshake (0: none)
  std::string ciphers;
  std::string ciphersuites;
  /// TLS 1.3: after the handshake, carry the connection with holdfast's own record layer and free
  /// OpenSSL's per-connection state (~0.6 KB instead of ~15 KB per idle connection). false keeps
  /// OpenSSL's record layer. TLS 1.2 always keeps it.
  bool record_takeover = true;
  bool operator==(const ServerTlsOptions&) const = default;
};

}  // namespace holdfast
