// The http2 error category: RFC 9113 error codes with messages that name the cause.
#include <string>

#include "holdfast/http2_error.h"

namespace holdfast {
namespace {

const char* message_of(Http2Errc e) {
  switch (e) {
    case Http2Errc::protocol_error: return "HTTP/2 protocol error (PROTOCOL_ERROR)";
    case Http2Errc::internal_error: return "HTTP/2 internal error (INTERNAL_ERROR)";
    case Http2Errc::flow_control_error:
      return "HTTP/2 flow-control window exceeded (FLOW_CONTROL_ERROR)";
    case Http2Errc::settings_timeout: return "HTTP/2 SETTINGS not acknowledged (SETTINGS_TIMEOUT)";
    case Http2Errc::stream_closed: return "HTTP/2 frame on a closed stream (STREAM_CLOSED)";
    case Http2Errc::frame_size_error: return "HTTP/2 frame of invalid size (FRAME_SIZE_ERROR)";
    case Http2Errc::refused_stream: return "HTTP/2 stream refused by the peer (REFUSED_STREAM)";
    case Http2Errc::cancel: return "HTTP/2 stream cancelled (CANCEL)";
    case Http2Errc::compression_error: return "HTTP/2 header compression error (COMPRESSION_ERROR)";
    case Http2Errc::connect_error: return "HTTP/2 CONNECT tunnel failed (CONNECT_ERROR)";
    case Http2Errc::enhance_your_calm:
      return "HTTP/2 peer reports excessive load (ENHANCE_YOUR_CALM)";
    case Http2Errc::inadequate_security:
      return "HTTP/2 TLS parameters inadequate (INADEQUATE_SECURITY)";
    case Http2Errc::http_1_1_required: return "the peer requires HTTP/1.1 (HTTP_1_1_REQUIRED)";
    case Http2Errc::stream_reset: return "HTTP/2 stream reset by the peer before it completed";
    case Http2Errc::goaway:
      return "HTTP/2 connection going away (GOAWAY) before the stream was processed";
    case Http2Errc::header_list_too_large: return "HTTP/2 header list exceeds the configured limit";
    case Http2Errc::push_refused: return "HTTP/2 server push attempted although it is disabled";
  }
  return nullptr;
}

class Http2Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "http2"; }

  std::string message(int value) const override {
    const char* text = message_of(static_cast<Http2Errc>(value));
    return text != nullptr ? text : "unknown http2 error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& http2_category() noexcept {
  static const Http2Category category;
  return category;
}

std::error_code make_error_code(Http2Errc e) noexcept {
  return {static_cast<int>(e), http2_category()};
}

}  // namespace holdfast
