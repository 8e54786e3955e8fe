// The parser's head scanner: validates a start line and header (or trailer) section incrementally,
// byte by byte, remembering where it stopped, and applies the framing rules of each field line.
#include <algorithm>
#include <limits>

#include "holdfast/http.h"
#include "http1/parser.h"
#include "http1/syntax.h"

namespace holdfast::http1 {
namespace {

std::string_view view(const std::uint8_t* p, std::size_t begin, std::size_t end) {
  return {reinterpret_cast<const char*>(p) + begin, end - begin};
}

bool is_digit(std::uint8_t c) { return c >= '0' && c <= '9'; }

// RFC 9112 §7: the registered transfer codings a request may apply before chunked.
bool is_known_coding(std::string_view coding) {
  for (std::string_view known : {"gzip", "x-gzip", "deflate", "compress", "x-compress"}) {
    if (iequals(coding, known)) {
      return true;
    }
  }
  return false;
}

}  // namespace

Result<std::size_t> Parser::scan(const std::uint8_t* p, std::size_t n) {
  // The head may never grow past max_header_bytes, so nothing beyond it is looked at.
  const std::size_t limit = std::min(n, limits_.max_header_bytes);
  std::size_t i = scanned_;
  while (i < limit && scan_ != Scan::done) {
    auto next = scan_ < Scan::line_start ? scan_start_line(p, limit, i) : scan_fields(p, limit, i);
    if (!next) {
      return next;
    }
    i = *next;
  }
  scanned_ = i;
  if (scan_ == Scan::done) {
    return i;
  }
  if (i == limits_.max_header_bytes) {
    return fail(Http1Errc::header_too_large);
  }
  return std::size_t{0};
}

Result<std::size_t> Parser::scan_start_line(const std::uint8_t* p, std::size_t n, std::size_t i) {
  switch (scan_) {
    case Scan::method: return scan_method(p, n, i);
    case Scan::target: return scan_target(p, n, i);
    case Scan::version: return scan_version(p, n, i);
    case Scan::status_sp:
      // RFC 9112 §4: exactly one SP between the version and the status code.
      if (p[i] != ' ') {
        return fail(Http1Errc::invalid_version);
      }
      target_begin_ = i + 1;
      scan_ = Scan::status_code;
      return i + 1;
    case Scan::status_code: return scan_status(p, n, i);
    case Scan::reason: return scan_reason(p, n, i);
    case Scan::start_cr:
      if (p[i] != '\r') {
        return fail(p[i] == '\n' ? Http1Errc::invalid_line_ending : Http1Errc::invalid_version);
      }
      scan_ = Scan::start_lf;
      return i + 1;
    default:  // Scan::start_lf
      if (p[i] != '\n') {
        return fail(Http1Errc::invalid_line_ending);
      }
      scan_ = Scan::line_start;
      fields_begin_ = i + 1;
      return i + 1;
  }
}

Result<std::size_t> Parser::scan_method(const std::uint8_t* p, std::size_t n, std::size_t i) {
  const std::size_t end = std::min(n, limits_.max_start_line);
  while (i < end && is_tchar(p[i])) {
    ++i;
  }
  if (i == n) {
    return i;
  }
  if (i >= limits_.max_start_line) {
    return fail(Http1Errc::start_line_too_long);
  }
  // RFC 9112 §3: method SP request-target SP HTTP-version; the method is a token.
  if (p[i] != ' ' || i == 0) {
    return fail(Http1Errc::invalid_method);
  }
  const std::string_view method = view(p, 0, i);
  // RFC 9110 §9.1: an unrecognized method is answered 501 (suggested_status()).
  if (!is_known_method(method)) {
    return fail(Http1Errc::unknown_method);
  }
  is_connect_ = method == "CONNECT";
  is_pri_ = method == "PRI";
  if (is_pri_) {
    scan_ = Scan::done;  // the HTTP/2 preface: Parser::feed_head() stops here
    return i;
  }
  method_end_ = i;
  target_begin_ = i + 1;
  scan_ = Scan::target;
  return i + 1;
}

Result<std::size_t> Parser::scan_target(const std::uint8_t* p, std::size_t n, std::size_t i) {
  const std::size_t end = std::min(n, limits_.max_start_line);
  while (i < end && is_target_char(p[i])) {
    ++i;
  }
  if (i == n) {
    return i;
  }
  if (i >= limits_.max_start_line) {
    return fail(Http1Errc::request_target_too_long);
  }
  if (i == target_begin_) {
    return fail(Http1Errc::invalid_target);
  }
  if (p[i] == '\r') {
    // "GET /" alone is an HTTP/0.9 simple request, which holdfast does not speak.
    return fail(Http1Errc::invalid_version);
  }
  if (p[i] != ' ') {
    return fail(Http1Errc::invalid_target);
  }
  target_end_ = i;
  version_begin_ = i + 1;
  scan_ = Scan::version;
  return i + 1;
}

Result<std::size_t> Parser::scan_version(const std::uint8_t* p, std::size_t n, std::size_t i) {
  // RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive, eight bytes.
  static constexpr std::string_view kPrefix = "HTTP/";
  if (version_begin_ + 8 > limits_.max_start_line) {
    return fail(Http1Errc::start_line_too_long);
  }
  for (; i < n; ++i) {
    const std::size_t k = i - version_begin_;
    const std::uint8_t c = p[i];
    const bool ok = k < 5    ? c == static_cast<std::uint8_t>(kPrefix[k])
                    : k == 6 ? c == '.'
                             : is_digit(c);
    if (!ok) {
      return fail(Http1Errc::invalid_version);
    }
    if (k == 7) {
      version_major_ = p[version_begin_ + 5] - '0';
      version_minor_ = c - '0';
      if (version_major_ != 1 || version_minor_ > 1) {
        return fail(Http1Errc::unsupported_version);
      }
      scan_ = kind_ == MessageKind::request ? Scan::start_cr : Scan::status_sp;
      return i + 1;
    }
  }
  return i;
}

Result<std::size_t> Parser::scan_status(const std::uint8_t* p, std::size_t n, std::size_t i) {
  // RFC 9112 §4: status-code = 3DIGIT, then SP [reason-phrase]; llhttp also accepts a bare CRLF.
  for (; i < n; ++i) {
    if (i >= limits_.max_start_line) {
      return fail(Http1Errc::start_line_too_long);
    }
    const std::size_t k = i - target_begin_;
    const std::uint8_t c = p[i];
    if (k < 3) {
      if (!is_digit(c)) {
        return fail(Http1Errc::invalid_status);
      }
      status_ = status_ * 10 + (c - '0');
      continue;
    }
    // RFC 9110 §15: valid status codes are 100 to 599.
    if (status_ < 100 || status_ > 599 || (c != ' ' && c != '\r')) {
      return fail(Http1Errc::invalid_status);
    }
    reason_begin_ = c == ' ' ? i + 1 : i;
    reason_end_ = i;
    scan_ = c == ' ' ? Scan::reason : Scan::start_lf;
    return i + 1;
  }
  return i;
}

Result<std::size_t> Parser::scan_reason(const std::uint8_t* p, std::size_t n, std::size_t i) {
  // RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
  const std::size_t end = std::min(n, limits_.max_start_line);
  while (i < end && is_field_char(p[i])) {
    ++i;
  }
  if (i == n) {
    return i;
  }
  if (p[i] == '\r') {
    reason_end_ = i;
    scan_ = Scan::start_lf;
    return i + 1;
  }
  if (i >= limits_.max_start_line) {
    return fail(Http1Errc::start_line_too_long);
  }
  return fail(p[i] == '\n' ? Http1Errc::invalid_line_ending : Http1Errc::invalid_reason);
}

Result<std::size_t> Parser::scan_fields(const std::uint8_t* p, std::size_t n, std::size_t i) {
  const std::uint8_t c = p[i];
  switch (scan_) {
    case Scan::line_start:
      if (c == '\r') {
        scan_ = Scan::end_lf;
      } else if (is_tchar(c)) {
        line_begin_ = i;
        scan_ = Scan::name;
      } else if (is_ows(c)) {
        // RFC 9112 §5.2: obs-fold is rejected; so is whitespace after the start line (§2.2).
        return fail(Http1Errc::obsolete_line_folding);
      } else {
        return fail(c == '\n' ? Http1Errc::invalid_line_ending : Http1Errc::invalid_header_name);
      }
      return i + 1;
    case Scan::name:
      while (i < n && is_tchar(p[i])) {
        ++i;
      }
      if (i == n) {
        return i;
      }
      // RFC 9112 §5.1: no whitespace between the field name and the colon.
      if (p[i] != ':') {
        return fail(Http1Errc::invalid_header_name);
      }
      colon_ = i;
      scan_ = Scan::value;
      return i + 1;
    case Scan::value:
      while (i < n && is_field_char(p[i])) {
        ++i;
      }
      if (i == n) {
        return i;
      }
      if (p[i] != '\r') {
        // RFC 9110 §5.5: CR, LF and NUL (and other controls) are never part of a value.
        return fail(p[i] == '\n' ? Http1Errc::invalid_line_ending
                                 : Http1Errc::invalid_header_value);
      }
      value_end_ = i;
      scan_ = Scan::value_lf;
      return i + 1;
    case Scan::value_lf:
      if (c != '\n') {
        return fail(Http1Errc::invalid_line_ending);
      }
      HOLDFAST_TRY(end_field_line(p));
      scan_ = Scan::line_start;
      return i + 1;
    default:  // Scan::end_lf
      if (c != '\n') {
        return fail(Http1Errc::invalid_line_ending);
      }
      scan_ = Scan::done;
      return i + 1;
  }
}

Result<void> Parser::end_field_line(const std::uint8_t* p) {
  if (++field_count_ > limits_.max_headers) {
    return fail(Http1Errc::too_many_headers);
  }
  if (state_ == State::trailers) {
    return {};  // RFC 9110 §6.5.1: trailers never carry framing; they are only passed on.
  }
  return on_field(view(p, line_begin_, colon_), trim_ows(view(p, colon_ + 1, value_end_)));
}

Result<void> Parser::on_field(std::string_view name, std::string_view value) {
  // Framing fields are checked as soon as their line ends, so a smuggling attempt fails before
  // the rest of the head arrives.
  if (iequals(name, "content-length")) {
    return on_content_length(value);
  }
  if (iequals(name, "transfer-encoding")) {
    return on_transfer_encoding(value);
  }
  if (iequals(name, "connection")) {
    // RFC 9110 §7.6.1: Connection is a list of case-insensitive options.
    for_each_list_element(value, [this](std::string_view option) {
      conn_close_ = conn_close_ || iequals(option, "close");
      conn_keep_alive_ = conn_keep_alive_ || iequals(option, "keep-alive");
      conn_upgrade_ = conn_upgrade_ || iequals(option, "upgrade");
    });
  } else if (iequals(name, "upgrade")) {
    upgrade_header_ = true;
  } else if (iequals(name, "expect")) {
    expect_continue_ = iequals(value, "100-continue");
  }
  return {};
}

Result<void> Parser::on_content_length(std::string_view value) {
  // RFC 9112 §6.3: Content-Length with Transfer-Encoding is a smuggling attempt; llhttp's strict
  // mode rejects it in responses as well, and so does holdfast.
  if (te_present_) {
    return fail(Http1Errc::content_length_with_transfer_encoding);
  }
  // RFC 9110 §8.6 lets a recipient accept a repeated identical value; llhttp strict rejects any
  // repetition, and holdfast follows: one message, one length line.
  if (content_length_) {
    return fail(Http1Errc::duplicate_content_length);
  }
  if (value.empty()) {
    return fail(Http1Errc::invalid_content_length);
  }
  std::uint64_t length = 0;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  for (char ch : value) {
    const auto c = static_cast<std::uint8_t>(ch);
    if (!is_digit(c)) {
      return fail(Http1Errc::invalid_content_length);
    }
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (length > (kMax - digit) / 10) {
      return fail(Http1Errc::content_length_overflow);
    }
    length = length * 10 + digit;
  }
  content_length_ = length;
  return {};
}

Result<void> Parser::on_transfer_encoding(std::string_view value) {
  if (content_length_) {
    return fail(Http1Errc::content_length_with_transfer_encoding);
  }
  te_present_ = true;
  // RFC 9112 §6.1: the codings of all Transfer-Encoding lines, in order; chunked must be last.
  for_each_list_element(value, [this](std::string_view element) {
    const std::string_view coding = trim_ows(element.substr(0, element.find(';')));
    te_chunked_misplaced_ = te_chunked_misplaced_ || te_last_chunked_;
    te_last_chunked_ = iequals(coding, "chunked");
    if (!te_last_chunked_) {
      te_other_ = true;
      te_unknown_ = te_unknown_ || !is_known_coding(coding);
    }
  });
  // RFC 9112 §6.3: a request whose final coding is not chunked cannot be framed (400). A coding
  // after chunked is rejected at once; a missing chunked when the head is complete.
  if (kind_ == MessageKind::request && te_chunked_misplaced_) {
    return fail(Http1Errc::invalid_transfer_encoding);
  }
  return {};
}

}  // namespace holdfast::http1
