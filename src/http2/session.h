// Sans-I/O HTTP/2 session over libnghttp2's memory API: bytes in, events and bytes out, no sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "holdfast/http.h"
#include "holdfast/http2_error.h"
#include "holdfast/result.h"

namespace holdfast::http2 {

/// The head of a request (server side: method, scheme, authority, path) or of a response
/// (client side: status), with the regular header fields in `headers` (names in lower case, as
/// HTTP/2 sends them; pseudo-headers are not repeated there).
struct Head {
  std::string method;
  std::string scheme;
  std::string authority;
  std::string path;
  int status = 0;
  Headers headers;
  /// The header list exceeded SessionOptions::max_header_list_size: the fields past the limit
  /// were dropped. A server answers 431, a client resets the stream.
  bool too_large = false;
};

/// Events of a session, delivered from inside Session::receive() (and, for on_stream_drained, from
/// Session::send()). A handler may call the session's submit_*, write, end_stream, reset and
/// goaway methods from inside these, but must not destroy the session or call receive()/send().
class SessionHandler {
 public:
  /// Server: the first frame of a request's header block arrived on `stream_id` (on_head follows
  /// once the block is complete; until then no other frame may arrive, RFC 9113 §6.10).
  virtual void on_begin_head(std::int32_t /*stream_id*/) {}
  /// A header block opened a stream (server: a request; client: a final response; 1xx responses
  /// are skipped). `end_stream`: no body follows (on_end_stream still comes, right after).
  virtual void on_head(std::int32_t stream_id, Head head, bool end_stream) = 0;
  /// A piece of a stream's body.
  virtual void on_body(std::int32_t stream_id, std::span<const std::uint8_t> data) = 0;
  /// The peer ended its side of the stream (END_STREAM after a body or trailers).
  virtual void on_end_stream(std::int32_t stream_id) = 0;
  /// The stream is closed: `ec` empty when both sides ended normally, else why (an Http2Errc from
  /// the RST_STREAM code, Http2Errc::goaway for a client stream the server never processed).
  virtual void on_stream_closed(std::int32_t stream_id, std::error_code ec) = 0;
  /// Everything written to the stream so far was taken into frames (back-pressure: write more).
  virtual void on_stream_drained(std::int32_t /*stream_id*/) {}
  /// The peer sent GOAWAY: streams above `last_stream_id` were not processed (and get
  /// on_stream_closed with Http2Errc::goaway); `ec` is the peer's error code (empty: NO_ERROR).
  virtual void on_goaway(std::int32_t /*last_stream_id*/, std::error_code /*ec*/) {}
  /// The peer's SETTINGS arrived (e.g. a new MAX_CONCURRENT_STREAMS).
  virtual void on_settings() {}

 protected:
  ~SessionHandler() = default;
};

/// Limits and settings a session announces and enforces.
struct SessionOptions {
  /// SETTINGS_MAX_CONCURRENT_STREAMS we announce (server: streams beyond it are refused).
  std::uint32_t max_concurrent_streams = 100;
  /// SETTINGS_MAX_HEADER_LIST_SIZE we announce and enforce (RFC 9113 §6.5.2 size: name + value +
  /// 32 per field).
  std::uint32_t max_header_list_size = 64 * 1024;
  /// SETTINGS_INITIAL_WINDOW_SIZE we announce for each stream.
  std::uint32_t initial_window_size = 1u << 20;
  /// The connection-level receive window (RFC 9113 §6.9.2), raised with WINDOW_UPDATE at start.
  std::uint32_t connection_window_size = 16u << 20;
  /// True: received body bytes reopen the flow-control windows at once. False: only consume()
  /// does, so a reader that does not keep up stops the peer after one window (back-pressure).
  bool auto_window_update = true;
};

/// One HTTP/2 connection's protocol state: a client or a server session. Feed it the peer's bytes
/// with receive(), take what to send with send(). Not thread-safe; moves nothing by itself.
class Session {
 public:
  /// A client session: the connection preface and SETTINGS (ENABLE_PUSH = 0: server push is
  /// refused, RFC 9113 §8.4) are queued for send() at once.
  static Result<std::unique_ptr<Session>> client(SessionHandler* handler, SessionOptions options);
  /// A server session: expects the client preface; its SETTINGS are queued for send() at once.
  static Result<std::unique_ptr<Session>> server(SessionHandler* handler, SessionOptions options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Processes the peer's bytes. An error is a connection error (Http2Errc): a GOAWAY is queued
  /// (send() it, then close the connection).
  Result<void> receive(std::span<const std::uint8_t> data);
  /// Appends every frame that is ready to `out` (respecting the peer's flow-control windows).
  Result<void> send(std::string& out);
  /// True while frames are ready to send.
  [[nodiscard]] bool wants_write() const;
  /// False once the session is finished (GOAWAY exchanged and no stream left, or a fatal error):
  /// close the connection after sending what is left.
  [[nodiscard]] bool is_alive() const;

  /// Client: opens a stream with a request head. `has_body`: body bytes follow through write()
  /// and end_stream(); else the HEADERS frame ends the stream. Returns the stream id; fails with
  /// Http2Errc::refused_stream when no new stream can be opened (GOAWAY received, ids exhausted).
  Result<std::int32_t> submit_request(const Head& head, bool has_body);
  /// Server: answers stream `stream_id` with a response head; `has_body` as for submit_request.
  Result<void> submit_response(std::int32_t stream_id, int status, const Headers& headers,
                               bool has_body);
  /// Queues body bytes on a stream opened with has_body; sent as flow control allows.
  void write(std::int32_t stream_id, std::string_view data);
  /// Ends the body of a stream opened with has_body (after what was written).
  void end_stream(std::int32_t stream_id);
  /// Body bytes written to the stream and not yet taken into frames.
  [[nodiscard]] std::size_t buffered(std::int32_t stream_id) const;
  /// Gives `bytes` of a stream's received body back to the flow-control windows (only with
  /// SessionOptions::auto_window_update off; bytes of closed streams are given back by the
  /// session).
  void consume(std::int32_t stream_id, std::size_t bytes);
  /// Resets one stream (RST_STREAM with `code`); the others are untouched. Codes above
  /// http_1_1_required are sent as INTERNAL_ERROR, except Http2Errc::stream_reset: NO_ERROR
  /// (RFC 9113 §8.1: after a complete response, the client may stop sending its body).
  void reset(std::int32_t stream_id, Http2Errc code);
  /// Server graceful shutdown (RFC 9113 §6.8): GOAWAY with the last stream id processed; streams
  /// already open complete, new ones are refused. `code` empty: NO_ERROR.
  void goaway(std::error_code code = {});

  /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited: 0xffffffff until it says).
  [[nodiscard]] std::uint32_t peer_max_concurrent_streams() const;
  /// Streams open (not closed) on this session.
  [[nodiscard]] std::size_t open_streams() const;
  /// Whether the peer sent GOAWAY, and its last-stream-id.
  [[nodiscard]] bool peer_sent_goaway() const;
  [[nodiscard]] std::int32_t peer_last_stream_id() const;

  struct Impl;  ///< internal (nghttp2 callbacks)

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace holdfast::http2
