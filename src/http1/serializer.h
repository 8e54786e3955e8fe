// HTTP/1.1 serializer (RFC 9112): writes message heads and chunks, refusing anything that could
// inject a header or desynchronise framing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "holdfast/http1_error.h"
#include "holdfast/result.h"

namespace holdfast::http1 {

/// One header field to write; the views must stay valid during the call only.
struct HeaderView {
  std::string_view name;
  std::string_view value;
};

/// True when `name` is a valid field name: a non-empty token (RFC 9110 §5.6.2, §5.1).
[[nodiscard]] bool is_valid_header_name(std::string_view name) noexcept;

/// True when `value` can be sent as a field value: only HTAB, SP, VCHAR and obs-text; never CR,
/// LF, NUL or another control byte (RFC 9110 §5.5). The empty value is valid.
[[nodiscard]] bool is_valid_header_value(std::string_view value) noexcept;

/// True when `method` is a token (RFC 9110 §9.1).
[[nodiscard]] bool is_valid_method(std::string_view method) noexcept;

/// True when `target` is non-empty visible ASCII (RFC 9112 §3.2): no SP, CR, LF or controls.
[[nodiscard]] bool is_valid_request_target(std::string_view target) noexcept;

/// Appends "METHOD target HTTP/1.1\r\n", `Host: host` when `host` is not empty, the headers in
/// order, the framing header (`Content-Length: n` when `content_length` is set,
/// `Transfer-Encoding: chunked` when `chunked`; neither for no body) and the empty line to `out`.
/// Errors (nothing is appended then): invalid_method, invalid_target, invalid_header_name,
/// invalid_header_value (host included), invalid_framing (both framings requested),
/// framing_header_in_list (Content-Length or Transfer-Encoding in `headers`, or Host both as an
/// argument and in `headers`): framing is only ever written from the arguments.
[[nodiscard]] Result<void> serialize_request_head(std::string& out, std::string_view method,
                                                  std::string_view target, std::string_view host,
                                                  std::span<const HeaderView> headers,
                                                  std::optional<std::uint64_t> content_length,
                                                  bool chunked);

/// Appends "HTTP/1.1 status reason\r\n", the headers, the framing header and the empty line.
/// An empty `reason` writes reason_phrase(status). Errors as serialize_request_head, plus
/// invalid_status (outside 100..599) and invalid_reason (a control byte in `reason`).
/// Framing is written as given: the caller leaves it empty for 1xx, 204 and 304 (RFC 9110 §8.6).
[[nodiscard]] Result<void> serialize_response_head(std::string& out, int status,
                                                   std::string_view reason,
                                                   std::span<const HeaderView> headers,
                                                   std::optional<std::uint64_t> content_length,
                                                   bool chunked);

/// Appends one chunk: "<hex size>\r\n" data "\r\n". Empty `data` appends nothing (an empty chunk
/// would end the body).
void serialize_chunk(std::string& out, std::span<const std::uint8_t> data);

/// Appends the last chunk "0\r\n", the trailer fields and the final "\r\n".
/// Errors: invalid_header_name, invalid_header_value (nothing is appended then).
[[nodiscard]] Result<void> serialize_last_chunk(std::string& out,
                                                std::span<const HeaderView> trailers = {});

/// The standard reason phrase of `status` (RFC 9110 §15), or "" for an unregistered code.
[[nodiscard]] std::string_view reason_phrase(int status) noexcept;

}  // namespace holdfast::http1
