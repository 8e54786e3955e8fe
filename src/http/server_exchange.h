// One request/response exchange of a server connection: ResponseWriter::State, shared with
// handlers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "holdfast/server.h"

namespace holdfast::transport {
class Transport;
}

namespace holdfast::http {
class LoopHandle;

/// What a ResponseWriter drives: the connection that owns an exchange (HTTP/1.1), or the stream
/// table of one (HTTP/2). Every call comes on the owner's loop thread with one of its own live
/// exchanges; calls in the wrong phase (e.g. write before start) do nothing.
class ExchangeOwner {
 public:
  using State = ResponseWriter::State;
  using Writable = std::function<void(const ResponseWriter&)>;
  using BodyEnd = std::function<void(Result<void>)>;

  /// ResponseWriter::send.
  virtual void send(State& state, Response response) = 0;
  /// ResponseWriter::start.
  virtual void start_stream(State& state, int status, Headers headers) = 0;
  /// ResponseWriter::write.
  virtual void write_chunk(State& state, std::string chunk) = 0;
  /// ResponseWriter::finish.
  virtual void finish_stream(State& state) = 0;
  /// ResponseWriter::after.
  virtual void after(const std::shared_ptr<State>& state, std::chrono::milliseconds delay,
                     Writable fn) = 0;
  /// ResponseWriter::when_writable.
  virtual void when_writable(const std::shared_ptr<State>& state, Writable fn) = 0;
  /// ResponseWriter::read_body.
  virtual void read_body(const std::shared_ptr<State>& state, BodySink on_chunk,
                         BodyEnd on_end) = 0;
  /// ResponseWriter::reset.
  virtual void reset(State& state, Http2Errc code) = 0;
  /// ResponseWriter::request_tls_key_update (for the whole connection; see key_update_on).
  virtual Result<void> request_key_update(bool update_requested) = 0;

 protected:
  ~ExchangeOwner() = default;
};

/// A TLS 1.3 KeyUpdate on a server connection's transport (null: gone), with the errors
/// ResponseWriter::request_tls_key_update documents.
Result<void> key_update_on(transport::Transport* transport, bool update_requested);

}  // namespace holdfast::http

namespace holdfast {

/// An exchange: the request as it is read, then the response as the handler produces it. Created
/// by the connection when the first byte of a request arrives; queued on the connection in
/// request order; shared with the handler's ResponseWriter copies. Everything except `loop` and
/// `open` is loop-thread only.
struct ResponseWriter::State : std::enable_shared_from_this<ResponseWriter::State> {
  /// Where the exchange lives; used to post calls made on other threads. Immutable.
  std::shared_ptr<http::LoopHandle> loop;
  /// False once the connection is gone (readable from any thread).
  std::atomic<bool> open{true};

  /// The connection or stream table (a weak reference: cleared when the exchange ends or the
  /// connection closes).
  http::ExchangeOwner* owner = nullptr;
  /// The next exchange on the same connection (the connection's queue link).
  std::shared_ptr<State> next;

  enum class Phase : std::uint8_t {
    reading,    ///< the request is being read
    handling,   ///< the handler has the request; nothing sent yet
    streaming,  ///< a streamed response is under way (head sent or buffered)
    done,       ///< the response is complete (maybe still buffered in `pending`)
  };
  Phase phase = Phase::reading;

  Request request;
  /// Bytes produced while an earlier exchange is still being answered: written when this
  /// exchange reaches the head of the queue (responses go out in request order, RFC 9112 §9.3.2).
  std::string pending;
  std::size_t body_bytes = 0;  ///< request body received so far
  /// HTTP/2: when the request body's silence times out (ServerTimeouts::body_read); the epoch
  /// while it is not timed.
  std::chrono::steady_clock::time_point read_deadline{};

  bool head_request = false;  ///< HEAD: the response gets no body (RFC 9110 §9.3.2)
  bool keep_alive = true;     ///< the request allows the connection to stay open
  bool close_after = false;   ///< the connection closes once this response is sent
  bool chunked = false;       ///< the streamed body is sent in chunks
  bool until_close = false;   ///< the streamed body is delimited by the close (HTTP/1.0)
  bool expects_continue = false;
  bool continue_sent = false;  ///< "100 Continue" went out (or is queued)

  /// when_writable()'s function, run once the output is drained and this exchange is the head.
  std::function<void(const ResponseWriter&)> on_writable;

  // ---- A streamed request body (ServerOptions::stream_body) ----
  bool body_streamed = false;  ///< the handler runs at the head and reads the body itself
  bool body_complete = false;  ///< the last byte arrived (or body_error is set)
  bool body_reader = false;    ///< read_body() was called
  bool body_ended = false;     ///< on_end was called (or is not wanted any more)
  std::error_code body_error;  ///< why the body ended early
  int body_error_status = 0;   ///< the status the server answers with if the handler does not
  std::string body_buffer;     ///< received, not yet delivered to the sink
  BodySink on_body_chunk;
  std::function<void(Result<void>)> on_body_end;

  /// The part of read_body() every owner shares. Ignores a second call. A buffered body is handed
  /// over at once (Request::body, then the end): returns false. A streamed one gets its reader
  /// installed: returns true, and the owner delivers what it has.
  bool install_body_reader(BodySink on_chunk, std::function<void(Result<void>)> on_end) {
    if (body_reader || !on_end) {
      return false;
    }
    body_reader = true;
    if (!body_streamed) {
      body_ended = true;
      if (!request.body.empty() && on_chunk) {
        const auto* data = reinterpret_cast<const std::uint8_t*>(request.body.data());
        if (auto r = on_chunk({data, request.body.size()}); !r) {
          on_end(fail(r.error()));
          return false;
        }
      }
      on_end(Result<void>{});
      return false;
    }
    on_body_chunk =
        on_chunk ? std::move(on_chunk)
                 : BodySink([](std::span<const std::uint8_t>) -> Result<void> { return {}; });
    on_body_end = std::move(on_end);
    return true;
  }
};

}  // namespace holdfast
