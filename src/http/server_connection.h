// A server connection: one Transport, the HTTP/1.1 request parser, and the queue of exchanges.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "base/slab.h"
#include "event/timer_wheel.h"
#include "holdfast/server.h"
#include "http/after_tasks.h"
#include "http/server_context.h"
#include "http/server_exchange.h"
#include "http1/parser.h"
#include "transport/transport.h"

namespace holdfast::http {

/// One accepted connection speaking HTTP/1.1. Reads requests (at most limits.max_pipelined ahead
/// of the one being answered), hands each to the server's handler, and writes responses in
/// request order. Owns its transport and timers; idle, it holds no buffer, parser or exchange.
/// Loop-thread only. Created and destroyed by its ServerLoopContext (never from inside one of its
/// own callbacks: closing retires it, and the context deletes it later).
class ServerConnection final : public transport::TransportHandler,
                               public http1::ParserHandler,
                               public ExchangeOwner,
                               public base::SlabAllocated<ServerConnection> {
 public:
  using State = ResponseWriter::State;

  explicit ServerConnection(ServerLoopContext& context);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  /// Takes ownership of the transport (created with this connection as its handler) and starts
  /// the keep-alive timer that bounds the wait for the first request.
  void start(std::unique_ptr<transport::Transport> transport);

  // ---- ExchangeOwner: calls from ResponseWriter (loop thread; `state` is one of ours) ----
  void send(State& state, Response response) override;
  void start_stream(State& state, int status, Headers headers) override;
  void write_chunk(State& state, std::string chunk) override;
  void finish_stream(State& state) override;
  void after(const std::shared_ptr<State>& state, std::chrono::milliseconds delay,
             Writable fn) override;
  void when_writable(const std::shared_ptr<State>& state, Writable fn) override;
  void read_body(const std::shared_ptr<State>& state, BodySink on_chunk, BodyEnd on_end) override;
  void reset(State& state, Http2Errc code) override;
  Result<void> request_key_update(bool update_requested) override;

  /// Graceful shutdown: closes now when idle, else after the requests already begun.
  void drain();
  /// Closes now: drops queued output and every exchange.
  void close();
  [[nodiscard]] bool is_closed() const { return closed_; }

  // Links of the context's intrusive lists.
  ServerConnection* prev_link = nullptr;
  ServerConnection* next_link = nullptr;

 private:
  enum class ReadPhase : std::uint8_t { idle, head, body, lingering, stopped };

  // TransportHandler
  void on_connected() override;
  void on_data(std::span<const std::uint8_t> data) override;
  void on_drained() override;
  void on_peer_closed() override;
  void on_error(std::error_code ec) override;

  // ParserHandler
  void on_request_line(std::string_view method, std::string_view target,
                       int version_minor) override;
  void on_header(std::string_view name, std::string_view value) override;
  BodyMode on_headers_complete() override;
  void on_body(std::span<const std::uint8_t> data) override;
  void on_message_complete() override;

  // Reading (server_connection.cc)
  void process_input(std::span<const std::uint8_t> data);
  std::size_t parse(std::span<const std::uint8_t> data);
  bool can_start_request() const;
  void begin_request();
  void dispatch();
  bool wants_streamed_body(const State& state) const;
  bool step_streamed(State& state, bool message_done);
  void end_streamed_read(State& state);
  void deliver_body(State& state);
  void fail_body(State& state, std::error_code ec, int status);
  void pause_for_body();
  void resume_for_body();
  void run_writable();
  void reject(State& state, int status);
  void stop_reading();
  void maybe_resume_reading();
  void drain_input();
  void arm_read_timer(std::chrono::milliseconds after);
  void on_read_timeout();
  void on_write_timeout();
  void update_idle();

  // Writing (server_response.cc)
  void emit(State& state, std::string bytes);
  void complete(State& state);
  void advance_queue();
  void begin_close();
  void write_head(State& state, int status, std::string_view reason, Headers& headers,
                  std::optional<std::uint64_t> content_length, bool chunked);
  void send_continue(State& state);
  void watch_output();
  // Output of one batch (the requests of one read, one writable turn, one send()) is corked and
  // leaves in one transport write: one TLS record and one write() instead of one per piece.
  void put(std::string bytes);
  void cork() { ++cork_depth_; }
  void uncork();
  void flush_corked();
  bool is_head(const State& state) const { return head_.get() == &state; }

  void release_exchanges();

  // How long a connection that decided to close keeps reading (and discarding) after its last
  // response, so that unread request bytes do not turn the close into a RST that could destroy
  // the response before the client read it (the "lingering close" of nginx and Apache).
  static constexpr std::chrono::milliseconds kLingerTimeout{2000};

  ServerLoopContext& context_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<http1::Parser> parser_;  // exists while a request is being read
  std::string input_;                      // bytes the parser has not consumed yet
  std::shared_ptr<State> head_;            // the exchange being answered (queue front)
  State* tail_ = nullptr;                  // the newest exchange (queue back)
  State* reading_ = nullptr;               // the exchange whose request is being read
  event::Timer read_timer_;                // idle, header, body and linger timeouts
  event::Timer write_timer_;               // write stall
  AfterTasks after_;                       // after() timers
  std::size_t write_mark_ = 0;  // pending output when write_timer_ was armed, plus what came since
  std::string corked_;          // output held while cork_depth_ > 0
  int cork_depth_ = 0;
  std::uint32_t queued_ = 0;  // exchanges in the queue
  ReadPhase read_phase_ = ReadPhase::idle;
  bool closed_ = false;
  bool paused_ = false;            // transport reading paused (pipelining bound or stop)
  bool no_more_requests_ = false;  // a close is decided: read no further request
  bool peer_closed_ = false;
  bool processing_ = false;  // inside process_input (re-entrancy guard)
  bool message_complete_ = false;
  bool body_too_large_ = false;
  bool body_paused_ = false;    // reading paused: a streamed body waits for its reader
  bool in_destructor_ = false;  // release_exchanges() calls no user callback
};

}  // namespace holdfast::http
