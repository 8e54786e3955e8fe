// The holdfast generic error category and describe().
#include "holdfast/error.h"

namespace holdfast {
namespace {

class GenericCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "holdfast"; }

  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::invalid_argument: return "invalid argument";
      case Errc::invalid_url: return "invalid URL";
      case Errc::unsupported_scheme: return "unsupported URL scheme (only http and https)";
      case Errc::host_not_found: return "host not found (DNS: no such name)";
      case Errc::dns_failure: return "DNS resolution failed";
      case Errc::dns_timeout: return "DNS resolution timed out";
      case Errc::connect_timeout: return "connect timed out";
      case Errc::tls_handshake_timeout: return "TLS handshake timed out";
      case Errc::response_header_timeout: return "timed out waiting for the response headers";
      case Errc::idle_read_timeout: return "idle read timeout: the peer sent nothing for too long";
      case Errc::deadline_exceeded: return "request deadline exceeded";
      case Errc::keepalive_lost:
        return "connection lost: no answer to TCP keep-alive probes (dead or silently dropped "
               "path)";
      case Errc::user_timeout:
        return "connection lost: sent data unacknowledged past TCP_USER_TIMEOUT";
      case Errc::connection_closed:
        return "connection closed by the peer in the middle of a message";
      case Errc::closed_before_response:
        return "connection closed by the peer before any response byte";
      case Errc::cancelled: return "operation cancelled";
      case Errc::pool_exhausted: return "no connection available within the pool limits";
      case Errc::body_too_large: return "body exceeds the configured limit";
      case Errc::body_source_failed: return "the request body source failed";
      case Errc::forked: return "object belongs to the parent process of a fork()";
      case Errc::shutting_down: return "shutting down: no new work accepted";
      case Errc::protocol_error: return "protocol error";
      case Errc::address_in_use: return "address in use";
      case Errc::body_read_timeout: return "request body read timeout";
    }
    return "unknown holdfast error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& generic_category() noexcept {
  static const GenericCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), generic_category()};
}

std::string describe(std::error_code ec) {
  if (!ec) {
    return "success";
  }
  std::string out = ec.category().name();
  out += ": ";
  out += ec.message();
  return out;
}

}  // namespace holdfast
