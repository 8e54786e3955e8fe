// The http1 error category: messages that name the cause, and the status a server answers with.
#include <string>

#include "holdfast/http1_error.h"

namespace holdfast {
namespace {

const char* message_of(Http1Errc e) {
  switch (e) {
    case Http1Errc::invalid_method: return "invalid character in method";
    case Http1Errc::unknown_method: return "method not implemented";
    case Http1Errc::invalid_target: return "invalid character in request target";
    case Http1Errc::invalid_version: return "malformed or missing HTTP version";
    case Http1Errc::unsupported_version: return "unsupported HTTP version (only HTTP/1.0 and 1.1)";
    case Http1Errc::invalid_status: return "invalid status code (three digits, 100 to 599)";
    case Http1Errc::invalid_reason: return "invalid character in reason phrase";
    case Http1Errc::start_line_too_long: return "start line exceeds the configured limit";
    case Http1Errc::request_target_too_long: return "request target exceeds the configured limit";
    case Http1Errc::invalid_header_name: return "invalid header name character";
    case Http1Errc::invalid_header_value: return "invalid header value character";
    case Http1Errc::obsolete_line_folding:
      return "whitespace at the start of a header line (obsolete line folding)";
    case Http1Errc::invalid_line_ending: return "line not terminated by CRLF (bare CR or LF)";
    case Http1Errc::header_too_large: return "header section exceeds the configured limit";
    case Http1Errc::too_many_headers: return "too many header fields";
    case Http1Errc::invalid_content_length: return "invalid Content-Length value";
    case Http1Errc::content_length_overflow: return "Content-Length value overflows 64 bits";
    case Http1Errc::duplicate_content_length: return "duplicate Content-Length";
    case Http1Errc::content_length_with_transfer_encoding:
      return "Content-Length together with Transfer-Encoding (request smuggling)";
    case Http1Errc::invalid_transfer_encoding:
      return "Transfer-Encoding in a request without chunked as the final coding";
    case Http1Errc::unknown_transfer_coding: return "transfer coding not implemented";
    case Http1Errc::invalid_chunk_size: return "invalid chunk size";
    case Http1Errc::chunk_size_overflow: return "chunk size overflows 64 bits";
    case Http1Errc::invalid_chunk_extension: return "invalid chunk extension";
    case Http1Errc::chunk_extension_too_long: return "chunk extensions exceed the configured limit";
    case Http1Errc::invalid_chunk_data_end: return "chunk data not followed by CRLF";
    case Http1Errc::data_after_close: return "data after a message that closes the connection";
    case Http1Errc::headers_truncated: return "connection closed inside the message head";
    case Http1Errc::body_truncated: return "connection closed inside the message body";
    case Http1Errc::invalid_framing: return "both Content-Length and chunked framing requested";
    case Http1Errc::framing_header_in_list:
      return "Content-Length, Transfer-Encoding or Host given as a header field instead of an "
             "argument";
  }
  return nullptr;
}

class Http1Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "http1"; }

  std::string message(int value) const override {
    const char* text = message_of(static_cast<Http1Errc>(value));
    return text != nullptr ? text : "unknown http1 error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& http1_category() noexcept {
  static const Http1Category category;
  return category;
}

std::error_code make_error_code(Http1Errc e) noexcept {
  return {static_cast<int>(e), http1_category()};
}

int suggested_status(std::error_code ec) noexcept {
  if (!ec || ec.category() != http1_category()) {
    return 0;
  }
  switch (static_cast<Http1Errc>(ec.value())) {
    case Http1Errc::unknown_method:
    case Http1Errc::unknown_transfer_coding: return 501;  // RFC 9110 §9.1, RFC 9112 §6.1
    case Http1Errc::unsupported_version: return 505;      // RFC 9110 §15.6.6
    case Http1Errc::request_target_too_long: return 414;  // RFC 9112 §3
    case Http1Errc::header_too_large:
    case Http1Errc::too_many_headers: return 431;  // RFC 6585 §5
    case Http1Errc::content_length_overflow:
    case Http1Errc::chunk_size_overflow: return 413;  // RFC 9110 §15.5.14
    default: return 400;
  }
}

}  // namespace holdfast
