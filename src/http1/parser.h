// Sans-I/O HTTP/1.1 message parser (RFC 9112): the caller owns the bytes, the parser emits events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>

#include "holdfast/http1_error.h"
#include "holdfast/result.h"

namespace holdfast::http1 {

/// Which start line the parser expects.
enum class MessageKind { request, response };

/// Bounds on what one message may make the caller buffer. Exceeding one is an error.
struct ParserLimits {
  /// Request or status line, without its CRLF -> start_line_too_long (400), or
  /// request_target_too_long (414) when the limit is reached inside the request-target.
  std::size_t max_start_line = 8 * 1024;
  /// The whole head (start line, header fields, final CRLF), and separately the trailer
  /// section -> header_too_large (431).
  std::size_t max_header_bytes = 64 * 1024;
  /// Header fields in the head, and separately trailer fields -> too_many_headers (431).
  std::size_t max_headers = 100;
  /// Bytes of chunk extensions on one chunk-size line -> chunk_extension_too_long (400).
  std::size_t max_chunk_ext = 1024;
};

/// Receives the parser's events. Every string_view and span points into the buffer passed to
/// Parser::feed() and is valid only during the call. Order per message: on_message_begin,
/// on_request_line or on_status_line, on_header*, on_headers_complete, on_body*, on_trailer*,
/// on_message_complete. Callbacks must not call feed(), finish() or reset() on the same parser.
class ParserHandler {
 public:
  virtual ~ParserHandler() = default;

  /// What the body of the message is, as far as the caller knows better than the headers.
  enum class BodyMode {
    normal,  ///< framing from the headers (RFC 9112 §6.3)
    none,    ///< no body: a response to HEAD, or a 2xx response to CONNECT (client side)
  };

  /// A new message starts (its head was received and validated completely).
  virtual void on_message_begin() {}
  /// Request line; `version_minor` is 0 or 1 (HTTP/1.x).
  virtual void on_request_line(std::string_view /*method*/, std::string_view /*target*/,
                               int /*version_minor*/) {}
  /// Status line; `reason` may be empty.
  virtual void on_status_line(int /*version_minor*/, int /*status*/, std::string_view /*reason*/) {}
  /// One header field, in order received; `value` has its leading and trailing OWS removed.
  virtual void on_header(std::string_view /*name*/, std::string_view /*value*/) {}
  /// All header fields were delivered and validated; the return value can suppress the body.
  virtual BodyMode on_headers_complete() { return BodyMode::normal; }
  /// Body bytes, chunked framing removed; called as the bytes arrive, possibly many times.
  virtual void on_body(std::span<const std::uint8_t> /*data*/) {}
  /// One trailer field of a chunked message (RFC 9112 §7.1.2), OWS trimmed like on_header.
  virtual void on_trailer(std::string_view /*name*/, std::string_view /*value*/) {}
  /// The message ended. feed() returns right after this call.
  virtual void on_message_complete() {}
};

/// An incremental HTTP/1.x parser for one connection direction, strict per RFC 9112 (and llhttp's
/// strict verdicts, see docs/http1-conformance.md). Not thread-safe; holds no pointer into the
/// caller's bytes between calls. The handler must outlive the parser.
///
/// Upgrades: a request with CONNECT, with method PRI (HTTP/2 preface), or with `Upgrade` and
/// `Connection: upgrade` (HTTP/1.1), and a 101 response, complete as a message (a request after
/// its body, if any); is_upgrade() is then true and feed() consumes nothing more: the bytes that
/// follow belong to the new protocol. Call reset() to go on parsing HTTP/1 (an upgrade refused).
class Parser {
 public:
  /// `handler` is borrowed and must outlive the parser.
  Parser(MessageKind kind, ParserHandler& handler, ParserLimits limits = {});

  /// Consumes bytes and emits events. Returns how many bytes were consumed. Bytes not consumed
  /// (an incomplete head or trailer section, or a lone CR between messages) MUST be passed again
  /// at the start of the next call, followed by new data; the parser remembers how far it scanned
  /// them, so a head arriving byte by byte costs O(n) in total. A head is emitted in one go once
  /// complete; body bytes are emitted as they come. Returns right after on_message_complete(), so
  /// pipelined messages are handled one at a time: call again with the rest.
  /// Errors: Http1Errc values; once failed, every later call returns the same error until reset().
  Result<std::size_t> feed(std::span<const std::uint8_t> data);

  /// The peer closed its side. Completes a close-delimited response body (emitting
  /// on_message_complete). Succeeds between messages and after an upgrade; fails with
  /// headers_truncated or body_truncated inside a message.
  Result<void> finish();

  /// Forgets all state: ready for a new message (after an error, or to go on after an upgrade).
  void reset();

  /// True between messages, with no byte of a next message scanned yet.
  [[nodiscard]] bool is_idle() const noexcept;

  // Properties of the current (or last completed) message, valid from on_headers_complete on.

  /// Whether the connection may carry another message after this one: HTTP/1.1 unless
  /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`; false for a close-delimited
  /// body and for an HTTP/1.0 message with Transfer-Encoding (RFC 9112 §6.1, §9.3).
  [[nodiscard]] bool keep_alive() const noexcept { return keep_alive_; }
  /// True when the body is chunked (chunked is the final transfer coding).
  [[nodiscard]] bool is_chunked() const noexcept { return body_ == Body::chunked; }
  /// True when Transfer-Encoding names codings besides the final chunked (e.g. "gzip, chunked"):
  /// the body delivered by on_body is still encoded with them.
  [[nodiscard]] bool has_other_transfer_coding() const noexcept { return te_other_; }
  /// The Content-Length header's value, if one was received.
  [[nodiscard]] std::optional<std::uint64_t> content_length() const noexcept {
    return content_length_;
  }
  /// True when the message switches protocols (see the class comment).
  [[nodiscard]] bool is_upgrade() const noexcept { return upgrade_; }
  /// True for an HTTP/1.1 request with `Expect: 100-continue` (RFC 9110 §10.1.1).
  [[nodiscard]] bool expects_continue() const noexcept { return expect_continue_; }
  /// 1 for HTTP/1.x.
  [[nodiscard]] int version_major() const noexcept { return version_major_; }
  /// 0 or 1.
  [[nodiscard]] int version_minor() const noexcept { return version_minor_; }
  /// The status code of a response, 0 for a request.
  [[nodiscard]] int status() const noexcept { return status_; }

 private:
  enum class State : std::uint8_t {
    idle,
    head,
    body_length,
    body_close,
    chunk_size,
    chunk_ext,
    chunk_size_lf,
    chunk_data,
    chunk_data_cr,
    chunk_data_lf,
    trailers,
    upgraded,
    closed,
  };
  enum class Scan : std::uint8_t {
    method,
    target,
    version,
    status_sp,
    status_code,
    reason,
    start_cr,
    start_lf,
    line_start,
    name,
    value,
    value_lf,
    end_lf,
    done,
  };
  enum class Body : std::uint8_t { none, length, chunked, close };

  void begin_message();
  Result<std::size_t> step(std::span<const std::uint8_t> data, bool* message_done);
  Result<std::size_t> feed_head(std::span<const std::uint8_t> data, bool* message_done);
  std::size_t feed_body(std::span<const std::uint8_t> data, bool* message_done);
  Result<std::size_t> feed_chunked(std::span<const std::uint8_t> data);
  Result<std::size_t> feed_chunk_line(std::span<const std::uint8_t> data);
  Result<void> chunk_ext_byte(std::uint8_t c);
  void start_chunk();

  // Head scanning (parser_head.cc): validates incrementally, returns the head length when the
  // head is complete, 0 while more bytes are needed.
  Result<std::size_t> scan(const std::uint8_t* p, std::size_t n);
  Result<std::size_t> scan_start_line(const std::uint8_t* p, std::size_t n, std::size_t i);
  Result<std::size_t> scan_method(const std::uint8_t* p, std::size_t n, std::size_t i);
  Result<std::size_t> scan_target(const std::uint8_t* p, std::size_t n, std::size_t i);
  Result<std::size_t> scan_version(const std::uint8_t* p, std::size_t n, std::size_t i);
  Result<std::size_t> scan_status(const std::uint8_t* p, std::size_t n, std::size_t i);
  Result<std::size_t> scan_reason(const std::uint8_t* p, std::size_t n, std::size_t i);
  Result<std::size_t> scan_fields(const std::uint8_t* p, std::size_t n, std::size_t i);
  Result<void> end_field_line(const std::uint8_t* p);
  Result<void> on_field(std::string_view name, std::string_view value);
  Result<void> on_content_length(std::string_view value);
  Result<void> on_transfer_encoding(std::string_view value);
  Result<void> validate_framing() const;
  void start_body(const std::uint8_t* p);
  Body framing(ParserHandler::BodyMode mode) const;
  void emit_fields(const std::uint8_t* p, bool trailers);
  void complete_message();

  ParserHandler& handler_;
  ParserLimits limits_;
  MessageKind kind_;
  State state_ = State::idle;
  Scan scan_ = Scan::method;
  Body body_ = Body::none;
  std::error_code error_;

  // Scanner positions, relative to the start of the head (or trailer section) being scanned.
  std::size_t scanned_ = 0;
  std::size_t method_end_ = 0;
  std::size_t target_begin_ = 0;
  std::size_t target_end_ = 0;
  std::size_t version_begin_ = 0;
  std::size_t reason_begin_ = 0;
  std::size_t reason_end_ = 0;
  std::size_t fields_begin_ = 0;
  std::size_t line_begin_ = 0;
  std::size_t colon_ = 0;
  std::size_t value_end_ = 0;
  std::size_t field_count_ = 0;

  // The current message.
  std::uint64_t remaining_ = 0;  // body bytes left: of the Content-Length, or of the chunk
  std::size_t chunk_ext_bytes_ = 0;
  std::optional<std::uint64_t> content_length_;
  int version_major_ = 1;
  int version_minor_ = 1;
  int status_ = 0;
  std::uint8_t chunk_ext_state_ = 0;
  bool chunk_has_digit_ = false;
  bool is_connect_ = false;
  bool is_pri_ = false;
  bool te_present_ = false;
  bool te_last_chunked_ = false;
  bool te_chunked_misplaced_ = false;
  bool te_other_ = false;
  bool te_unknown_ = false;
  bool conn_close_ = false;
  bool conn_keep_alive_ = false;
  bool conn_upgrade_ = false;
  bool upgrade_header_ = false;
  bool expect_continue_ = false;
  bool keep_alive_ = true;
  bool upgrade_ = false;
};

}  // namespace holdfast::http1
