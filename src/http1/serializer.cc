// HTTP/1.1 serializer: validated heads and chunks, so a user's header can never inject another.
#include "http1/serializer.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "holdfast/http.h"
#include "http1/syntax.h"

namespace holdfast::http1 {
namespace {

Result<void> check_fields(std::span<const HeaderView> fields, bool host_given) {
  for (const HeaderView& f : fields) {
    if (!is_valid_header_name(f.name)) {
      return fail(Http1Errc::invalid_header_name);
    }
    if (!is_valid_header_value(f.value)) {
      return fail(Http1Errc::invalid_header_value);
    }
    // Framing comes from the arguments only: a second, user-given length would let two parsers
    // disagree on where the message ends (RFC 9112 §6.3, §11.2).
    if (iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding") ||
        (host_given && iequals(f.name, "host"))) {
      return fail(Http1Errc::framing_header_in_list);
    }
  }
  return {};
}

void append_number(std::string& out, std::uint64_t value, int base) {
  std::array<char, 24> buf{};
  const auto res = std::to_chars(buf.data(), buf.data() + buf.size(), value, base);
  out.append(buf.data(), res.ptr);
}

void append_fields(std::string& out, std::span<const HeaderView> fields) {
  for (const HeaderView& f : fields) {
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
}

void append_tail(std::string& out, std::span<const HeaderView> headers,
                 std::optional<std::uint64_t> content_length, bool chunked) {
  append_fields(out, headers);
  if (content_length) {
    out.append("Content-Length: ");
    append_number(out, *content_length, 10);
    out.append("\r\n");
  } else if (chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  }
  out.append("\r\n");
}

}  // namespace

bool is_valid_header_name(std::string_view name) noexcept { return is_token(name); }

bool is_valid_header_value(std::string_view value) noexcept {
  return std::all_of(value.begin(), value.end(),
                     [](char c) { return is_field_char(static_cast<std::uint8_t>(c)); });
}

bool is_valid_method(std::string_view method) noexcept { return is_token(method); }

bool is_valid_request_target(std::string_view target) noexcept {
  return !target.empty() && std::all_of(target.begin(), target.end(), [](char c) {
    return is_target_char(static_cast<std::uint8_t>(c));
  });
}

Result<void> serialize_request_head(std::string& out, std::string_view method,
                                    std::string_view target, std::string_view host,
                                    std::span<const HeaderView> headers,
                                    std::optional<std::uint64_t> content_length, bool chunked) {
  if (!is_valid_method(method)) {
    return fail(Http1Errc::invalid_method);
  }
  if (!is_valid_request_target(target)) {
    return fail(Http1Errc::invalid_target);
  }
  if (!is_valid_header_value(host)) {
    return fail(Http1Errc::invalid_header_value);
  }
  if (content_length && chunked) {
    return fail(Http1Errc::invalid_framing);
  }
  HOLDFAST_TRY(check_fields(headers, !host.empty()));
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (!host.empty()) {
    out.append("Host: ").append(host).append("\r\n");
  }
  append_tail(out, headers, content_length, chunked);
  return {};
}

Result<void> serialize_response_head(std::string& out, int status, std::string_view reason,
                                     std::span<const HeaderView> headers,
                                     std::optional<std::uint64_t> content_length, bool chunked) {
  if (status < 100 || status > 599) {
    return fail(Http1Errc::invalid_status);
  }
  if (!is_valid_header_value(reason)) {
    return fail(Http1Errc::invalid_reason);
  }
  if (content_length && chunked) {
    return fail(Http1Errc::invalid_framing);
  }
  HOLDFAST_TRY(check_fields(headers, false));
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<std::uint64_t>(status), 10);
  out.append(" ").append(reason.empty() ? reason_phrase(status) : reason).append("\r\n");
  append_tail(out, headers, content_length, chunked);
  return {};
}

void serialize_chunk(std::string& out, std::span<const std::uint8_t> data) {
  if (data.empty()) {
    return;
  }
  append_number(out, data.size(), 16);
  out.append("\r\n");
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  out.append("\r\n");
}

Result<void> serialize_last_chunk(std::string& out, std::span<const HeaderView> trailers) {
  for (const HeaderView& f : trailers) {
    if (!is_valid_header_name(f.name)) {
      return fail(Http1Errc::invalid_header_name);
    }
    if (!is_valid_header_value(f.value)) {
      return fail(Http1Errc::invalid_header_value);
    }
  }
  out.append("0\r\n");
  append_fields(out, trailers);
  out.append("\r\n");
  return {};
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

}  // namespace holdfast::http1
