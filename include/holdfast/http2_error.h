// The HTTP/2 error domain: RFC 9113 §7 error codes received or sent, and stream-level outcomes.
#pragma once

#include <system_error>

namespace holdfast {

/// HTTP/2 errors. Values 1..13 are the RFC 9113 §7 error codes (NO_ERROR, 0, is success); the
/// values from 0x100 are holdfast's own outcomes of a stream or connection.
enum class Http2Errc {
  // 0 is reserved for success (NO_ERROR).
  protocol_error = 0x1,           ///< PROTOCOL_ERROR: the peer broke the HTTP/2 protocol
  internal_error = 0x2,           ///< INTERNAL_ERROR
  flow_control_error = 0x3,       ///< FLOW_CONTROL_ERROR: a flow-control window was exceeded
  settings_timeout = 0x4,         ///< SETTINGS_TIMEOUT: SETTINGS were not acknowledged in time
  stream_closed = 0x5,            ///< STREAM_CLOSED: a frame arrived on a closed stream
  frame_size_error = 0x6,         ///< FRAME_SIZE_ERROR
  refused_stream = 0x7,           ///< REFUSED_STREAM: the stream was not processed (safe to retry)
  cancel = 0x8,                   ///< CANCEL: the stream is no longer needed
  compression_error = 0x9,        ///< COMPRESSION_ERROR: HPACK state broken
  connect_error = 0xa,            ///< CONNECT_ERROR
  enhance_your_calm = 0xb,        ///< ENHANCE_YOUR_CALM: the peer thinks we generate excessive load
  inadequate_security = 0xc,      ///< INADEQUATE_SECURITY: TLS parameters below RFC 9113 §9.2
  http_1_1_required = 0xd,        ///< HTTP_1_1_REQUIRED: retry this request over HTTP/1.1
  stream_reset = 0x100,           ///< the peer reset the stream with NO_ERROR before it completed
  goaway = 0x101,                 ///< the stream was above the peer's GOAWAY last-stream-id
  header_list_too_large = 0x102,  ///< a header list exceeded the configured size limit
  push_refused = 0x103,           ///< the peer tried server push, which holdfast never enables
};

/// The category of Http2Errc ("http2"). Thread-safe; lives for the whole program.
const std::error_category& http2_category() noexcept;

/// Makes an error_code of the http2 category.
std::error_code make_error_code(Http2Errc e) noexcept;

}  // namespace holdfast

template <>
struct std::is_error_code_enum<holdfast::Http2Errc> : std::true_type {};
