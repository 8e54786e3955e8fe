// One request/response exchange of a server connection: ResponseWriter::State, shared with
// handlers.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "holdfast/server.h"

namespace holdfast::http {
class LoopHandle;
class ServerConnection;
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

  /// The connection (a weak reference: cleared when the connection closes).
  http::ServerConnection* connection = nullptr;
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

  bool head_request = false;  ///< HEAD: the response gets no body (RFC 9110 §9.3.2)
  bool keep_alive = true;     ///< the request allows the connection to stay open
  bool close_after = false;   ///< the connection closes once this response is sent
  bool chunked = false;       ///< the streamed body is sent in chunks
  bool until_close = false;   ///< the streamed body is delimited by the close (HTTP/1.0)
  bool expects_continue = false;
  bool continue_sent = false;  ///< "100 Continue" went out (or is queued)
};

}  // namespace holdfast
