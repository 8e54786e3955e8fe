// The HTTP/1.1 error domain: why a message was rejected by the parser or refused by the serializer.
#pragma once

#include <system_error>

namespace holdfast {

/// HTTP/1.x protocol errors. Every value's message() names the cause; suggested_status() maps each
/// to the status a server answers with. docs/http1-conformance.md explains when each happens.
enum class Http1Errc {
  // 0 is reserved for success.
  invalid_method = 1,        ///< the method is not a token (RFC 9110 §9.1)
  unknown_method,            ///< a well-formed method holdfast does not know (501)
  invalid_target,            ///< a byte outside VCHAR in the request-target
  invalid_version,           ///< the HTTP-version is malformed or missing
  unsupported_version,       ///< a well-formed version other than HTTP/1.0 or 1.1 (505)
  invalid_status,            ///< the status code is not three digits in 100..599
  invalid_reason,            ///< a control character in the reason phrase
  start_line_too_long,       ///< the request or status line exceeds the limit
  request_target_too_long,   ///< the request-target exceeds the start-line limit (414)
  invalid_header_name,       ///< a header name is empty or holds a non-token byte
  invalid_header_value,      ///< a header value holds a control character
  obsolete_line_folding,     ///< a header line starts with whitespace (obs-fold)
  invalid_line_ending,       ///< a line not terminated by CRLF (bare CR or bare LF)
  header_too_large,          ///< the head exceeds ParserLimits::max_header_bytes (431)
  too_many_headers,          ///< more fields than ParserLimits::max_headers (431)
  invalid_content_length,    ///< Content-Length is not 1*DIGIT
  content_length_overflow,   ///< Content-Length does not fit in 64 bits (413)
  duplicate_content_length,  ///< Content-Length appears more than once
  content_length_with_transfer_encoding,  ///< both framings present: a smuggling attempt
  invalid_transfer_encoding,              ///< a request whose final transfer coding is not chunked
  unknown_transfer_coding,   ///< a request transfer coding holdfast does not know (501)
  invalid_chunk_size,        ///< a chunk-size line is malformed
  chunk_size_overflow,       ///< a chunk size does not fit in 64 bits (413)
  invalid_chunk_extension,   ///< a chunk extension is malformed
  chunk_extension_too_long,  ///< chunk extensions exceed ParserLimits::max_chunk_ext
  invalid_chunk_data_end,    ///< chunk data not followed by CRLF
  data_after_close,          ///< bytes after a message that ends the connection
  headers_truncated,         ///< the input ended inside a start line or header section
  body_truncated,            ///< the input ended inside a body
  invalid_framing,           ///< serializer: both Content-Length and chunked requested
  framing_header_in_list,    ///< serializer: Content-Length/Transfer-Encoding/Host in list
};

/// The category of Http1Errc ("http1"). Thread-safe; lives for the whole program.
const std::error_category& http1_category() noexcept;

/// Makes an error_code of the http1 category.
std::error_code make_error_code(Http1Errc e) noexcept;

/// The status a server answers a rejected request with: 501 for unknown methods and transfer
/// codings, 505 for unsupported versions, 414 for a too long request-target, 431 for too large
/// or too many headers, 413 for lengths that overflow, 400 for any other http1 error. Returns 0
/// for an error_code of another category or for success (nothing to answer).
int suggested_status(std::error_code ec) noexcept;

}  // namespace holdfast

template <>
struct std::is_error_code_enum<holdfast::Http1Errc> : std::true_type {};
