// The parser's message state machine: between messages, head emission, body framing (RFC 9112 §6),
// chunked decoding (RFC 9112 §7.1) and the end of input.
#include "http1/parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "http1/syntax.h"

namespace holdfast::http1 {
namespace {

std::string_view view(const std::uint8_t* p, std::size_t begin, std::size_t end) {
  return {reinterpret_cast<const char*>(p) + begin, end - begin};
}

int hex_value(std::uint8_t c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// RFC 9110 §5.6.4 qdtext and the bytes a quoted-pair may escape.
bool is_qdtext(std::uint8_t c) {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c != 0x7f);
}
bool is_quotable(std::uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// States of a chunk extension (RFC 9112 §7.1.1), without BWS: llhttp strict rejects it too.
enum ChunkExt : std::uint8_t { name_start, name, value_start, token, quoted, escape, after_quoted };

}  // namespace

Parser::Parser(MessageKind kind, ParserHandler& handler, ParserLimits limits)
    : handler_(handler), limits_(limits), kind_(kind) {
  begin_message();
}

void Parser::reset() {
  state_ = State::idle;
  error_.clear();
  begin_message();
}

bool Parser::is_idle() const noexcept { return state_ == State::idle || state_ == State::closed; }

void Parser::begin_message() {
  scan_ = kind_ == MessageKind::request ? Scan::method : Scan::version;
  body_ = Body::none;
  scanned_ = method_end_ = target_begin_ = target_end_ = version_begin_ = 0;
  reason_begin_ = reason_end_ = fields_begin_ = line_begin_ = colon_ = value_end_ = 0;
  field_count_ = 0;
  remaining_ = 0;
  chunk_ext_bytes_ = 0;
  content_length_.reset();
  version_major_ = 1;
  version_minor_ = 1;
  status_ = 0;
  chunk_ext_state_ = 0;
  chunk_has_digit_ = false;
  is_connect_ = is_pri_ = false;
  te_present_ = te_last_chunked_ = te_chunked_misplaced_ = te_other_ = te_unknown_ = false;
  conn_close_ = conn_keep_alive_ = conn_upgrade_ = upgrade_header_ = false;
  expect_continue_ = false;
  keep_alive_ = true;
  upgrade_ = false;
}

Result<std::size_t> Parser::feed(std::span<const std::uint8_t> data) {
  if (error_) {
    return fail(error_);
  }
  std::size_t pos = 0;
  bool message_done = false;
  while (pos < data.size() && !message_done) {
    auto used = step(data.subspan(pos), &message_done);
    if (!used) {
      error_ = used.error();
      return fail(error_);
    }
    if (*used == 0 && !message_done) {
      break;  // more bytes needed, or the connection was upgraded
    }
    pos += *used;
  }
  return pos;
}

Result<std::size_t> Parser::step(std::span<const std::uint8_t> data, bool* message_done) {
  switch (state_) {
    case State::idle:
    case State::closed: {
      // RFC 9112 §2.2: empty lines (CRLF) before a request-line are ignored; a lone CR waits.
      if (data[0] == '\r' && (data.size() == 1 || data[1] == '\n')) {
        return data.size() == 1 ? 0 : 2;
      }
      if (state_ == State::closed) {
        return fail(Http1Errc::data_after_close);
      }
      begin_message();
      state_ = State::head;
      return feed_head(data, message_done);
    }
    case State::head:
    case State::trailers: return feed_head(data, message_done);
    case State::body_length:
    case State::body_close: return feed_body(data, message_done);
    case State::upgraded: return 0;
    default: return feed_chunked(data);  // the trailer section completes a chunked message
  }
}

Result<std::size_t> Parser::feed_head(std::span<const std::uint8_t> data, bool* message_done) {
  auto scanned = scan(data.data(), data.size());
  if (!scanned || *scanned == 0) {
    return scanned;
  }
  if (is_pri_) {
    // RFC 9113 §3.4: "PRI" starts the HTTP/2 connection preface. Nothing is consumed, so the
    // caller hands the whole preface to its HTTP/2 codec.
    upgrade_ = true;
    state_ = State::upgraded;
    return 0;
  }
  const std::uint8_t* p = data.data();
  if (state_ == State::trailers) {
    emit_fields(p, true);
    complete_message();
    *message_done = true;
    return scanned;
  }
  HOLDFAST_TRY(validate_framing());
  start_body(p);
  if (body_ == Body::none) {
    complete_message();
    *message_done = true;
  }
  return scanned;
}

Result<void> Parser::validate_framing() const {
  if (kind_ == MessageKind::request && te_present_) {
    // RFC 9112 §6.3: chunked must be the final coding of a request, else 400.
    if (!te_last_chunked_ || te_chunked_misplaced_) {
      return fail(Http1Errc::invalid_transfer_encoding);
    }
    // RFC 9112 §6.1: a transfer coding the server does not understand is answered 501.
    if (te_unknown_) {
      return fail(Http1Errc::unknown_transfer_coding);
    }
  }
  return {};
}

void Parser::start_body(const std::uint8_t* p) {
  handler_.on_message_begin();
  if (kind_ == MessageKind::request) {
    handler_.on_request_line(view(p, 0, method_end_), view(p, target_begin_, target_end_),
                             version_minor_);
  } else {
    handler_.on_status_line(version_minor_, status_, view(p, reason_begin_, reason_end_));
  }
  emit_fields(p, false);
  const bool http11 = version_major_ == 1 && version_minor_ == 1;
  // RFC 9112 §9.3: persistent by default in HTTP/1.1, only with keep-alive in HTTP/1.0.
  keep_alive_ = !conn_close_ && (http11 || conn_keep_alive_);
  // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing: close after the message.
  keep_alive_ = keep_alive_ && !(te_present_ && !http11);
  if (kind_ == MessageKind::request) {
    // RFC 9110 §7.8: Upgrade needs `Connection: upgrade`, and is ignored in HTTP/1.0.
    upgrade_ = is_connect_ || (upgrade_header_ && conn_upgrade_ && http11);
    expect_continue_ = expect_continue_ && http11;  // RFC 9110 §10.1.1
  } else {
    upgrade_ = status_ == 101;
  }
  body_ = framing(ParserHandler::BodyMode::normal);  // visible to on_headers_complete
  if (handler_.on_headers_complete() == ParserHandler::BodyMode::none) {
    body_ = framing(ParserHandler::BodyMode::none);
  }
  if (body_ == Body::close) {
    keep_alive_ = false;
  } else if (body_ == Body::length) {
    remaining_ = *content_length_;
    state_ = State::body_length;
  } else if (body_ == Body::chunked) {
    state_ = State::chunk_size;
  }
  if (body_ == Body::close) {
    state_ = State::body_close;
  }
}

Parser::Body Parser::framing(ParserHandler::BodyMode mode) const {
  const bool has_length = content_length_.has_value() && *content_length_ > 0;
  if (kind_ == MessageKind::request) {
    // RFC 9112 §6.3: CONNECT switches to a tunnel right after the head.
    if (is_connect_ || mode == ParserHandler::BodyMode::none) {
      return Body::none;
    }
    return te_present_ ? Body::chunked : has_length ? Body::length : Body::none;
  }
  // RFC 9112 §6.3 items 1-2: 1xx, 204 and 304 responses (and answers to HEAD) have no body.
  if (status_ < 200 || status_ == 204 || status_ == 304 || mode == ParserHandler::BodyMode::none) {
    return Body::none;
  }
  if (te_present_) {
    // RFC 9112 §6.3 item 4: without chunked last, the body runs until the connection closes.
    return te_last_chunked_ && !te_chunked_misplaced_ ? Body::chunked : Body::close;
  }
  if (content_length_) {
    return has_length ? Body::length : Body::none;
  }
  return Body::close;  // RFC 9112 §6.3 item 8
}

void Parser::emit_fields(const std::uint8_t* p, bool trailers) {
  // The section was validated while scanning: every line is name ":" value CRLF, ended by CRLF.
  std::size_t line = fields_begin_;
  while (p[line] != '\r') {
    const auto* cr = static_cast<const std::uint8_t*>(std::memchr(p + line, '\r', scanned_ - line));
    const auto* colon =
        static_cast<const std::uint8_t*>(std::memchr(p + line, ':', cr - (p + line)));
    const std::string_view name = view(p, line, static_cast<std::size_t>(colon - p));
    const std::string_view value = trim_ows(
        view(p, static_cast<std::size_t>(colon - p) + 1, static_cast<std::size_t>(cr - p)));
    if (trailers) {
      handler_.on_trailer(name, value);
    } else {
      handler_.on_header(name, value);
    }
    line = static_cast<std::size_t>(cr - p) + 2;
  }
}

void Parser::complete_message() {
  if (upgrade_) {
    state_ = State::upgraded;
  } else if (kind_ == MessageKind::response && status_ < 200) {
    state_ = State::idle;  // an interim response: the final one follows on the same connection
  } else {
    state_ = keep_alive_ ? State::idle : State::closed;
  }
  handler_.on_message_complete();
}

std::size_t Parser::feed_body(std::span<const std::uint8_t> data, bool* message_done) {
  if (state_ == State::body_close) {
    handler_.on_body(data);
    return data.size();
  }
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size()));
  handler_.on_body(data.first(n));
  remaining_ -= n;
  if (remaining_ == 0) {
    complete_message();
    *message_done = true;
  }
  return n;
}

Result<std::size_t> Parser::feed_chunked(std::span<const std::uint8_t> data) {
  switch (state_) {
    case State::chunk_data: {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size()));
      handler_.on_body(data.first(n));
      remaining_ -= n;
      if (remaining_ == 0) {
        state_ = State::chunk_data_cr;
      }
      return n;
    }
    case State::chunk_data_cr:
    case State::chunk_data_lf: {
      // RFC 9112 §7.1: chunk-data is followed by CRLF.
      const bool cr = state_ == State::chunk_data_cr;
      const std::uint8_t expected = cr ? '\r' : '\n';
      if (data[0] != expected) {
        return fail(Http1Errc::invalid_chunk_data_end);
      }
      state_ = cr ? State::chunk_data_lf : State::chunk_size;
      return 1;
    }
    default: return feed_chunk_line(data);
  }
}

Result<std::size_t> Parser::feed_chunk_line(std::span<const std::uint8_t> data) {
  // RFC 9112 §7.1: chunk-size [ chunk-ext ] CRLF, consumed byte by byte as it arrives.
  for (std::size_t i = 0; i < data.size(); ++i) {
    const std::uint8_t c = data[i];
    if (state_ == State::chunk_size) {
      const int digit = hex_value(c);
      if (digit >= 0) {
        if (remaining_ > (std::numeric_limits<std::uint64_t>::max() >> 4)) {
          return fail(Http1Errc::chunk_size_overflow);
        }
        remaining_ = (remaining_ << 4) | static_cast<std::uint64_t>(digit);
        chunk_has_digit_ = true;
      } else if (!chunk_has_digit_ || (c != ';' && c != '\r')) {
        return fail(Http1Errc::invalid_chunk_size);
      } else {
        state_ = c == ';' ? State::chunk_ext : State::chunk_size_lf;
        chunk_ext_state_ = name_start;
      }
    } else if (state_ == State::chunk_ext) {
      if (++chunk_ext_bytes_ > limits_.max_chunk_ext) {
        return fail(Http1Errc::chunk_extension_too_long);
      }
      HOLDFAST_TRY(chunk_ext_byte(c));
    } else {  // State::chunk_size_lf
      if (c != '\n') {
        return fail(Http1Errc::invalid_chunk_size);
      }
      start_chunk();
      return i + 1;
    }
  }
  return data.size();
}

Result<void> Parser::chunk_ext_byte(std::uint8_t c) {
  auto& s = chunk_ext_state_;
  const bool tchar = is_tchar(c);
  switch (s) {
    case name_start: s = tchar ? name : 0xff; break;
    case name: s = tchar ? name : c == '=' ? value_start : c == ';' ? name_start : 0xfe; break;
    case value_start: s = c == '"' ? quoted : tchar ? token : 0xff; break;
    case token: s = tchar ? token : c == ';' ? name_start : 0xfe; break;
    case quoted:
      s = c == '"' ? after_quoted : c == '\\' ? escape : is_qdtext(c) ? quoted : 0xff;
      break;
    case escape: s = is_quotable(c) ? quoted : 0xff; break;
    default: s = c == ';' ? name_start : 0xfe; break;  // after_quoted
  }
  if (s == 0xfe && c == '\r') {
    state_ = State::chunk_size_lf;
    return {};
  }
  if (s >= 0xfe) {
    return fail(Http1Errc::invalid_chunk_extension);
  }
  return {};
}

void Parser::start_chunk() {
  chunk_ext_bytes_ = 0;
  chunk_has_digit_ = false;
  if (remaining_ > 0) {
    state_ = State::chunk_data;
    return;
  }
  // The last chunk: a trailer section follows (RFC 9112 §7.1.2), scanned like a head.
  state_ = State::trailers;
  scan_ = Scan::line_start;
  scanned_ = fields_begin_ = 0;
  field_count_ = 0;
}

Result<void> Parser::finish() {
  if (error_) {
    return fail(error_);
  }
  switch (state_) {
    case State::idle:
    case State::closed:
    case State::upgraded: return {};
    case State::body_close: complete_message(); return {};
    case State::head: return fail(Http1Errc::headers_truncated);
    default: return fail(Http1Errc::body_truncated);
  }
}

}  // namespace holdfast::http1
