// Maps library errors (generic, tls, http1/http2, system) to the CLI's exit codes and hints.
#include "exit_codes.h"

#include <cerrno>
#include <cstdio>
#include <string_view>

#include "holdfast/error.h"
#include "holdfast/http1_error.h"
#include "holdfast/tls_error.h"
#include "holdfast/url.h"

namespace holdfast::cli {
namespace {

ExitCode generic_exit_code(Errc e) {
  switch (e) {
    case Errc::invalid_argument: return ExitCode::usage;
    case Errc::invalid_url:
    case Errc::unsupported_scheme: return ExitCode::invalid_url;
    case Errc::host_not_found:
    case Errc::dns_failure: return ExitCode::dns_failure;
    // curl reports every kind of timeout, DNS included, as 28.
    case Errc::dns_timeout:
    case Errc::connect_timeout:
    case Errc::tls_handshake_timeout:
    case Errc::response_header_timeout:
    case Errc::idle_read_timeout:
    case Errc::deadline_exceeded:
    case Errc::pool_exhausted:
    case Errc::body_read_timeout: return ExitCode::timeout;
    case Errc::keepalive_lost:
    case Errc::user_timeout:
    case Errc::connection_closed: return ExitCode::connection_lost;
    case Errc::closed_before_response: return ExitCode::closed_before_response;
    case Errc::body_too_large: return ExitCode::body_too_large;
    case Errc::body_source_failed: return ExitCode::read_error;
    case Errc::protocol_error: return ExitCode::malformed_response;
    case Errc::address_in_use: return ExitCode::local_address;
    case Errc::cancelled:
    case Errc::forked:
    case Errc::shutting_down: return ExitCode::failure;
  }
  return ExitCode::failure;
}

ExitCode tls_exit_code(std::error_code ec) {
  if (tls::is_certificate_error(ec)) {
    return ExitCode::certificate_verify;
  }
  using tls::TlsErrc;
  if (ec == TlsErrc::peer_closed_without_close_notify || ec == TlsErrc::closed) {
    return ExitCode::connection_lost;
  }
  if (ec == TlsErrc::certificate_load_failed || ec == TlsErrc::private_key_load_failed ||
      ec == TlsErrc::private_key_mismatch) {
    return ExitCode::local_certificate;
  }
  if (ec == TlsErrc::ca_load_failed) {
    return ExitCode::ca_file;
  }
  if (ec == TlsErrc::invalid_cipher_list) {
    return ExitCode::tls_cipher;
  }
  if (ec == TlsErrc::invalid_alpn) {
    return ExitCode::usage;
  }
  if (ec == TlsErrc::certificate_generation_failed || ec == TlsErrc::internal_error) {
    return ExitCode::failure;
  }
  // handshake_failed, handshake_truncated, invalid_server_name and every OpenSSL reason (alerts,
  // "wrong version number", no shared cipher, ...) are handshake failures for the user.
  return ExitCode::tls_handshake;
}

ExitCode system_exit_code(int value) {
  switch (value) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN: return ExitCode::connect_failed;
    case ETIMEDOUT: return ExitCode::timeout;
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ENOTCONN: return ExitCode::connection_lost;
    case EADDRINUSE:
    case EADDRNOTAVAIL:
    case EACCES: return ExitCode::local_address;
    default: return ExitCode::failure;
  }
}

bool is_category(std::error_code ec, std::string_view name) { return ec.category().name() == name; }

}  // namespace

ExitCode exit_code_for(std::error_code ec) {
  if (!ec) {
    return ExitCode::failure;
  }
  if (ec.category() == holdfast::generic_category()) {
    return generic_exit_code(static_cast<Errc>(ec.value()));
  }
  if (ec.category() == tls::tls_category()) {
    return tls_exit_code(ec);
  }
  // Every code of the codecs means the peer sent something that is not valid HTTP. http2 has no
  // public header yet, so it is matched by its category's name.
  // A message cut short by the peer closing is a lost connection, not a malformed one.
  if (ec == Http1Errc::body_truncated || ec == Http1Errc::headers_truncated) {
    return ExitCode::connection_lost;
  }
  if (ec.category() == http1_category() || is_category(ec, "http2")) {
    return ExitCode::malformed_response;
  }
  // System errors, and the library's own categories that wrap an errno (the "net" category of
  // failed socket calls), map through their portable std::errc condition.
  const std::error_condition condition = ec.default_error_condition();
  if (condition.category() == std::generic_category()) {
    return system_exit_code(condition.value());
  }
  return ExitCode::failure;
}

std::string hint_for(std::error_code ec, const std::string& url) {
  if (tls::is_certificate_error(ec)) {
    const std::string message = ec.message();
    if (message.find("self-signed") != std::string::npos ||
        message.find("self signed") != std::string::npos ||
        message.find("unable to get local issuer") != std::string::npos) {
      return "use --cacert FILE to trust it, or -k to skip verification";
    }
    if (message.find("mismatch") != std::string::npos) {
      return "the certificate is not valid for the host in the URL; use the name it was issued for";
    }
    return "use --cacert FILE to trust the issuer, or -k to skip verification";
  }
  const ExitCode code = exit_code_for(ec);
  switch (code) {
    case ExitCode::connect_failed: {
      const Result<Url> parsed = parse_url(url);
      return "is a server listening at " + (parsed ? parsed->origin() : url) + "?";
    }
    case ExitCode::dns_failure: return "check the host name in the URL";
    case ExitCode::timeout:
      return "raise --connect-timeout or --max-time if the server is just slow";
    case ExitCode::tls_handshake:
      if (ec.message().find("wrong version number") != std::string::npos) {
        return "the server does not seem to speak TLS on this port; try http://";
      }
      return "";
    case ExitCode::closed_before_response:
      if (url.rfind("http://", 0) == 0) {
        return "if the server expects TLS on this port, try https://";
      }
      return "";
    case ExitCode::ca_file: return "--cacert must name a readable PEM file";
    case ExitCode::local_address:
      return "the address is in use or not local; pick another --port or --bind";
    default: return "";
  }
}

void print_error(std::error_code ec, const std::string& url) {
  // describe() names the category first; the generic category is itself called "holdfast", so
  // its prefix is not printed twice ("holdfast: request deadline exceeded").
  std::string text = describe(ec);
  if (text.rfind("holdfast: ", 0) == 0) {
    text.erase(0, 10);
  }
  std::fprintf(stderr, "holdfast: %s\n", text.c_str());
  const std::string hint = hint_for(ec, url);
  if (!hint.empty()) {
    std::fprintf(stderr, "holdfast: hint: %s\n", hint.c_str());
  }
}

void print_error(const std::string& message) {
  std::fprintf(stderr, "holdfast: %s\n", message.c_str());
}

}  // namespace holdfast::cli
