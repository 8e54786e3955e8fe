// A server connection speaking HTTP/2: one Transport, one http2::Session, one exchange per stream.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>

#include "base/slab.h"
#include "event/timer_wheel.h"
#include "holdfast/server.h"
#include "http/after_tasks.h"
#include "http/server_context.h"
#include "http/server_exchange.h"
#include "http2/session.h"
#include "transport/transport.h"

namespace holdfast::http {

/// One accepted connection speaking HTTP/2 (ALPN "h2", or prior-knowledge h2c). Every stream is
/// an exchange served by the same Handler and ResponseWriter as HTTP/1.1 (Request::version is
/// http2); responses go out as soon as their handlers produce them, interleaved by the session.
/// Loop-thread only. Created and destroyed by its ServerLoopContext (closing retires it).
class H2ServerConnection final : public transport::TransportHandler,
                                 public http2::SessionHandler,
                                 public ExchangeOwner,
                                 public base::SlabAllocated<H2ServerConnection> {
 public:
  using State = ResponseWriter::State;

  explicit H2ServerConnection(ServerLoopContext& context);
  ~H2ServerConnection();
  H2ServerConnection(const H2ServerConnection&) = delete;
  H2ServerConnection& operator=(const H2ServerConnection&) = delete;

  /// Takes ownership of the transport (connected, or a plain one about to deliver bytes), makes
  /// this its handler, and queues the server's SETTINGS. Closes at once if no session can be made.
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

  /// Graceful shutdown: GOAWAY now (RFC 9113 §6.8); streams already open complete, then close.
  void drain();
  /// Closes now: drops queued output and every exchange.
  void close();
  [[nodiscard]] bool is_closed() const { return closed_; }

  // Links of the context's intrusive lists.
  H2ServerConnection* prev_link = nullptr;
  H2ServerConnection* next_link = nullptr;

 private:
  // TransportHandler
  void on_data(std::span<const std::uint8_t> data) override;
  void on_drained() override;
  void on_peer_closed() override;
  void on_error(std::error_code ec) override;

  // http2::SessionHandler
  void on_begin_head(std::int32_t stream_id) override;
  void on_head(std::int32_t stream_id, http2::Head head, bool end_stream) override;
  void on_body(std::int32_t stream_id, std::span<const std::uint8_t> data) override;
  void on_end_stream(std::int32_t stream_id) override;
  void on_stream_closed(std::int32_t stream_id, std::error_code ec) override;
  void on_stream_drained(std::int32_t stream_id) override;

  State* find(std::int32_t stream_id);
  std::int32_t id_of(const State& state) const;
  void dispatch(State& state);
  void answer(State& state, int status);
  void deliver_body(State& state);
  void fail_body(State& state, std::error_code ec, int status);
  void end_request_body(State& state);
  Headers response_headers(const Headers& from, bool strip_length);
  void run_writable();
  void flush();
  void watch_output();
  void on_write_timeout();
  void watch_body(State& state);
  void arm_read_timer(event::TimePoint deadline);
  void on_read_timeout();
  void on_body_timeout(State& state);
  void on_header_timeout();
  void finish_if_done();
  void update_idle();
  void release_exchanges();

  // Frames are produced only while the transport holds less than this: beyond it the session
  // keeps the streams' bytes, and handlers waiting in when_writable() wait.
  static constexpr std::size_t kOutputHighWater = 256 * 1024;
  static constexpr std::chrono::milliseconds kLingerTimeout{2000};

  ServerLoopContext& context_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<http2::Session> session_;
  std::unordered_map<std::int32_t, std::shared_ptr<State>> streams_;
  std::unordered_map<const State*, std::int32_t> ids_;
  event::Timer idle_timer_;   // keep-alive idle (no stream open), then the linger after GOAWAY
  event::Timer write_timer_;  // write stall (timeouts.write)
  event::Timer read_timer_;   // the earliest of header_deadline_ and the streams' read_deadline
  event::TimePoint header_deadline_{};  // a request header block in progress must end by then
  std::int32_t header_stream_ = 0;      // the stream of that header block
  AfterTasks after_;                    // after() timers
  std::size_t write_mark_ = 0;  // queued output when write_timer_ was armed, plus what came since
  std::string output_;          // scratch for Session::send
  bool closed_ = false;
  bool closing_ = false;  // the session is finished: waiting for the peer to close after our FIN
  bool flushing_ = false;
  bool receiving_ = false;  // inside Session::receive: frames are sent after it
  bool in_destructor_ = false;
};

}  // namespace holdfast::http
