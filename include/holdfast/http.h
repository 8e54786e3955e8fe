// HTTP message types shared by the client and the server: headers, requests, responses, timings.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "holdfast/result.h"

namespace holdfast {

/// ASCII case-insensitive equality, as HTTP field names compare (RFC 9110 §5.1).
[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;

/// One header field as received or to be sent.
struct HeaderField {
  std::string name;
  std::string value;
  bool operator==(const HeaderField&) const = default;
};

/// An ordered list of header fields with case-insensitive lookup. Order and duplicates are kept as
/// received. Not thread-safe.
class Headers {
 public:
  using const_iterator = std::vector<HeaderField>::const_iterator;

  Headers() = default;
  Headers(std::initializer_list<HeaderField> fields) : fields_(fields) {}

  /// Appends a field (duplicates allowed).
  void add(std::string name, std::string value);
  /// Replaces every field named `name` by one with `value` (appended if absent).
  void set(std::string_view name, std::string value);
  /// Removes every field named `name`; returns how many were removed.
  std::size_t remove(std::string_view name);
  /// The first value of `name`, or nullopt. The view is valid until the Headers change.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const;
  /// Every value of `name`, in order.
  [[nodiscard]] std::vector<std::string_view> get_all(std::string_view name) const;
  [[nodiscard]] bool contains(std::string_view name) const { return get(name).has_value(); }

  [[nodiscard]] std::size_t size() const noexcept { return fields_.size(); }
  [[nodiscard]] bool empty() const noexcept { return fields_.empty(); }
  void clear() noexcept { fields_.clear(); }
  [[nodiscard]] const_iterator begin() const noexcept { return fields_.begin(); }
  [[nodiscard]] const_iterator end() const noexcept { return fields_.end(); }
  bool operator==(const Headers&) const = default;

 private:
  std::vector<HeaderField> fields_;
};

/// The protocol a message travelled on.
enum class HttpVersion { http1_0, http1_1, http2 };

/// "HTTP/1.1", "HTTP/2", ...
[[nodiscard]] std::string_view to_string(HttpVersion v) noexcept;

/// Streams a request body: fills `out` and returns the number of bytes written, 0 at the end of the
/// body, or an error that aborts the request (reported as Errc::body_source_failed). Called on the
/// loop thread of the connection, possibly several times; never after it returned 0 or an error.
/// A request with a body_source and no Content-Length header is sent chunked (HTTP/1.1).
using BodySource = std::function<Result<std::size_t>(std::span<std::uint8_t> out)>;

/// Receives a response body chunk by chunk as it arrives (client streaming). Returning an error
/// aborts the request with that error. Called on the connection's loop thread, in order.
using BodySink = std::function<Result<void>(std::span<const std::uint8_t> chunk)>;

/// An HTTP request. On the client, `url` is absolute ("https://host:port/path?q"); on the server
/// it is the request target as received ("/path?q").
struct Request {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;                            ///< the body, unless body_source is set
  BodySource body_source;                      ///< client: stream the body instead of `body`
  HttpVersion version = HttpVersion::http1_1;  ///< server: the version the request came with
};

/// Per-phase timings of one client request, measured from the start of the request. A phase that
/// did not happen (a reused connection has no DNS, connect or TLS) is zero.
struct Timings {
  std::chrono::microseconds dns{0};         ///< name resolution
  std::chrono::microseconds connect{0};     ///< TCP connect (after DNS)
  std::chrono::microseconds tls{0};         ///< TLS handshake (after connect)
  std::chrono::microseconds first_byte{0};  ///< from start until the first response byte
  std::chrono::microseconds total{0};       ///< from start until the response was complete
  bool reused_connection = false;           ///< the request went out on a pooled connection
  bool tls_resumed = false;                 ///< the TLS handshake resumed a session
  std::string remote_address;               ///< "ip:port" the connection went to
  std::string tls_version;                  ///< "TLSv1.3", empty for plain HTTP
  std::string tls_cipher;                   ///< negotiated cipher suite, empty for plain HTTP
  std::string alpn;                         ///< negotiated ALPN protocol, if any
  /// Which code carried the TLS records when the response completed: "holdfast" (the own TLS 1.3
  /// record layer, after take-over) or "openssl" (the kept `SSL`: TLS 1.2, take-over off, or a
  /// guard failed); empty for plain HTTP.
  std::string tls_record_path;
};

/// An HTTP response. `body` holds the body unless the client streamed it into a BodySink.
struct Response {
  int status = 200;
  std::string reason;  ///< empty: the standard phrase for `status` is sent
  Headers headers;
  std::string body;
  HttpVersion version = HttpVersion::http1_1;
  Timings timings;  ///< client only
};

}  // namespace holdfast
