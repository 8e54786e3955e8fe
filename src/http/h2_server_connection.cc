// H2ServerConnection: HTTP/2 streams served through the Handler / ResponseWriter API.
#include "http/h2_server_connection.h"

#include <charconv>
#include <utility>
#include <vector>

#include "holdfast/error.h"
#include "holdfast/http2_error.h"

namespace holdfast::http {
namespace {

std::span<const std::uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// RFC 9110 §6.4.1: 1xx, 204 and 304 responses never have content.
bool status_has_no_body(int status) { return status < 200 || status == 204 || status == 304; }

}  // namespace

H2ServerConnection::H2ServerConnection(ServerLoopContext& context)
    : context_(context),
      idle_timer_(context.loop().timers(),
                  [this] {
                    if (closing_) {
                      close();
                    } else {
                      drain();  // keep-alive idle: say GOAWAY, then close
                    }
                  }),
      write_timer_(context.loop().timers(), [this] { on_write_timeout(); }),
      read_timer_(context.loop().timers(), [this] { on_read_timeout(); }),
      after_(context.loop().timers()) {}

H2ServerConnection::~H2ServerConnection() {
  closed_ = true;
  in_destructor_ = true;
  idle_timer_.cancel();
  write_timer_.cancel();
  read_timer_.cancel();
  release_exchanges();
}

void H2ServerConnection::start(std::unique_ptr<transport::Transport> transport) {
  transport_ = std::move(transport);
  transport_->set_handler(this);
  const auto& limits = context_.config().limits;
  http2::SessionOptions options;
  options.max_concurrent_streams = static_cast<std::uint32_t>(limits.http2_max_concurrent_streams);
  options.max_header_list_size = static_cast<std::uint32_t>(limits.http2_max_header_list_size);
  // A streamed request body waiting for its reader is bounded by the stream window (back-pressure
  // through flow control, where HTTP/1.1 pauses reading the socket).
  options.initial_window_size = 256 * 1024;
  options.auto_window_update = false;
  auto session = http2::Session::server(this, options);
  if (!session) {
    close();
    return;
  }
  session_ = std::move(*session);
  flush();
  update_idle();
}

// ---- TransportHandler ----

void H2ServerConnection::on_data(std::span<const std::uint8_t> data) {
  if (closed_ || closing_) {
    return;
  }
  // Handlers run inside receive() and answer at once; their frames go out after it returns
  // (nghttp2 forbids sending from inside its receive callbacks).
  receiving_ = true;
  auto r = session_->receive(data);
  receiving_ = false;
  if (!r) {
    context_.config().counters.protocol_errors.fetch_add(1, std::memory_order_relaxed);
  }
  if (!closed_) {
    flush();
  }
  if (!closed_) {
    update_idle();
  }
}

void H2ServerConnection::on_drained() {
  write_timer_.cancel();
  write_mark_ = 0;
  if (closed_ || closing_) {
    return;
  }
  flush();
  run_writable();
}

void H2ServerConnection::on_peer_closed() { close(); }

void H2ServerConnection::on_error(std::error_code) { close(); }

// ---- Output ----

void H2ServerConnection::flush() {
  if (closed_ || closing_ || flushing_ || receiving_ || !session_) {
    return;
  }
  flushing_ = true;
  while (!closed_ && session_->wants_write() && transport_->pending_output() < kOutputHighWater) {
    output_.clear();
    if (!session_->send(output_) || output_.empty()) {
      break;
    }
    write_mark_ += output_.size();
    transport_->write(std::move(output_));
    output_ = std::string();
  }
  flushing_ = false;
  watch_output();
  finish_if_done();
}

void H2ServerConnection::watch_output() {
  const auto stall = context_.config().timeouts.write;
  if (closed_ || stall.count() <= 0 || write_timer_.is_armed() ||
      transport_->pending_output() == 0) {
    return;
  }
  write_mark_ = transport_->pending_output();
  write_timer_.arm(stall);
}

void H2ServerConnection::on_write_timeout() {
  const std::size_t pending = transport_ ? transport_->pending_output() : 0;
  if (closed_ || pending == 0) {
    return;
  }
  if (pending < write_mark_) {
    write_mark_ = pending;  // the client reads, slowly: give it another period
    write_timer_.arm(context_.config().timeouts.write);
    return;
  }
  close();  // no byte left the queue for a whole period: a stalled or vanished reader
}

void H2ServerConnection::finish_if_done() {
  if (closed_ || closing_ || session_->is_alive()) {
    return;
  }
  // The session is over (GOAWAY exchanged, no stream left, or a connection error queued its
  // GOAWAY): send what is queued, then FIN, and wait a little for the peer's close.
  closing_ = true;
  transport_->shutdown_write();
  idle_timer_.arm(kLingerTimeout);
}

void H2ServerConnection::update_idle() {
  if (closed_ || closing_) {
    return;
  }
  if (streams_.empty()) {
    transport_->release_idle_memory();  // frees only what holds nothing pending
  }
  const auto idle = context_.config().timeouts.keepalive_idle;
  if (!streams_.empty() || idle.count() <= 0) {
    idle_timer_.cancel();
  } else if (!idle_timer_.is_armed()) {
    idle_timer_.arm(idle);
  }
}

void H2ServerConnection::run_writable() {
  if (closed_ || transport_->pending_output() > 0) {
    return;
  }
  std::vector<std::shared_ptr<State>> ready;
  for (auto& [id, state] : streams_) {
    if (state->on_writable && session_->buffered(id) == 0) {
      ready.push_back(state);
    }
  }
  for (auto& state : ready) {
    if (closed_ || state->owner == nullptr || !state->on_writable) {
      continue;
    }
    auto fn = std::move(state->on_writable);
    state->on_writable = nullptr;
    fn(ResponseWriter(state));
  }
}

// ---- Read timeouts ----

void H2ServerConnection::watch_body(State& state) {
  const auto limit = context_.config().timeouts.body_read;
  if (limit.count() <= 0 || state.body_complete) {
    return;
  }
  state.read_deadline = context_.loop().now() + limit;
  arm_read_timer(state.read_deadline);
}

void H2ServerConnection::arm_read_timer(event::TimePoint deadline) {
  if (!read_timer_.is_armed() || deadline < read_timer_.deadline()) {
    read_timer_.arm_at(deadline);
  }
}

// One timer for the connection: it fires at the earliest deadline it was armed for; deadlines
// pushed back since then are found not due and the timer re-armed for the next one.
void H2ServerConnection::on_read_timeout() {
  if (closed_ || closing_) {
    return;
  }
  const event::TimePoint now = context_.loop().now();
  if (header_deadline_ != event::TimePoint{} && header_deadline_ <= now) {
    on_header_timeout();
    return;
  }
  std::vector<std::shared_ptr<State>> expired;
  event::TimePoint next = header_deadline_;
  for (auto& [id, state] : streams_) {
    // A streamed body held back for its reader has a closed window: that silence is ours.
    if (state->body_complete || state->read_deadline == event::TimePoint{} ||
        (state->body_streamed && !state->body_buffer.empty())) {
      continue;
    }
    if (state->read_deadline <= now) {
      expired.push_back(state);
    } else if (next == event::TimePoint{} || state->read_deadline < next) {
      next = state->read_deadline;
    }
  }
  for (auto& state : expired) {
    if (!closed_ && state->owner == this) {
      on_body_timeout(*state);
    }
  }
  if (!closed_ && next != event::TimePoint{}) {
    arm_read_timer(next);
  }
}

// A request body silent for body_read: that stream alone ends. Its reader hears
// Errc::body_read_timeout and the client gets 408 when no response was started (like HTTP/1.1,
// without closing the connection); then RST_STREAM stops the body: NO_ERROR after a complete
// response (RFC 9113 §8.1), CANCEL when one is still under way.
void H2ServerConnection::on_body_timeout(State& state) {
  const std::int32_t id = id_of(state);
  state.read_deadline = {};
  fail_body(state, make_error_code(Errc::body_read_timeout), 408);
  if (closed_ || state.owner != this || state.phase == State::Phase::handling) {
    return;  // no reader yet: read_body() reports the timeout, and 408 answers
  }
  session_->reset(id,
                  state.phase == State::Phase::done ? Http2Errc::stream_reset : Http2Errc::cancel);
  flush();
}

// RFC 9113 §6.10: no other frame may come between the frames of a header block, and HPACK state
// is the connection's: a block that never ends stalls the whole connection, so it closes (GOAWAY,
// then FIN), like HTTP/1.1's 408 and close.
void H2ServerConnection::on_header_timeout() {
  header_deadline_ = {};
  context_.config().counters.protocol_errors.fetch_add(1, std::memory_order_relaxed);
  session_->goaway();
  flush();
  if (closed_ || closing_) {
    return;
  }
  closing_ = true;
  transport_->shutdown_write();
  idle_timer_.arm(kLingerTimeout);
}

// ---- Streams ----

H2ServerConnection::State* H2ServerConnection::find(std::int32_t stream_id) {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : it->second.get();
}

std::int32_t H2ServerConnection::id_of(const State& state) const {
  auto it = ids_.find(&state);
  return it == ids_.end() ? 0 : it->second;
}

void H2ServerConnection::on_begin_head(std::int32_t stream_id) {
  // Slowloris: the whole header block must arrive within header_read of its first frame.
  const auto limit = context_.config().timeouts.header_read;
  if (limit.count() > 0) {
    header_stream_ = stream_id;
    header_deadline_ = context_.loop().now() + limit;
    arm_read_timer(header_deadline_);
  }
}

void H2ServerConnection::on_head(std::int32_t stream_id, http2::Head head, bool end_stream) {
  header_deadline_ = {};
  auto state = std::make_shared<State>();
  state->loop = context_.handle();
  state->owner = this;
  Request& r = state->request;
  r.method = std::move(head.method);
  r.url = std::move(head.path);
  r.headers = std::move(head.headers);
  r.version = HttpVersion::http2;
  // RFC 9113 §8.3.1: :authority stands for Host; handlers written for HTTP/1.1 read Host.
  if (!head.authority.empty() && !r.headers.contains("host")) {
    r.headers.add("host", std::move(head.authority));
  }
  state->head_request = r.method == "HEAD";
  streams_.emplace(stream_id, state);
  ids_.emplace(state.get(), stream_id);
  update_idle();
  auto& config = context_.config();
  config.counters.requests.fetch_add(1, std::memory_order_relaxed);
  if (head.too_large) {
    config.counters.protocol_errors.fetch_add(1, std::memory_order_relaxed);
    answer(*state, 431);  // RFC 6585 §5
    return;
  }
  if (auto cl = r.headers.get("content-length")) {
    std::uint64_t length = 0;
    std::from_chars(cl->data(), cl->data() + cl->size(), length);
    if (length > config.limits.max_body) {
      answer(*state, 413);
      return;
    }
  }
  state->body_complete = end_stream;
  watch_body(*state);
  if (end_stream || (config.stream_body && config.stream_body(r))) {
    state->body_streamed = !end_stream;
    dispatch(*state);
  }
}

void H2ServerConnection::dispatch(State& state) {
  state.phase = State::Phase::handling;
  const std::shared_ptr<State> keep = state.shared_from_this();
  context_.config().handler(state.request, ResponseWriter(keep));
}

void H2ServerConnection::answer(State& state, int status) {
  Response response;
  response.status = status;
  state.phase = State::Phase::handling;
  send(state, std::move(response));
}

void H2ServerConnection::on_body(std::int32_t stream_id, std::span<const std::uint8_t> data) {
  State* s = find(stream_id);
  if (s == nullptr || s->body_complete || s->body_ended) {
    session_->consume(stream_id, data.size());  // answered already: the rest is discarded
    return;
  }
  s->body_bytes += data.size();
  watch_body(*s);
  if (s->body_bytes > context_.config().limits.max_body) {
    session_->consume(stream_id, data.size());
    fail_body(*s, make_error_code(Errc::body_too_large), 413);
    return;
  }
  if (!s->body_streamed) {
    session_->consume(stream_id, data.size());  // bounded by limits.max_body
    if (s->phase == State::Phase::reading) {
      s->request.body.append(reinterpret_cast<const char*>(data.data()), data.size());
    }
    return;
  }
  // A streamed body reopens the stream's window only as its reader takes it (deliver_body):
  // a handler that reads slowly, or not yet, stops the client after one window.
  s->body_buffer.append(reinterpret_cast<const char*>(data.data()), data.size());
  deliver_body(*s);
}

void H2ServerConnection::on_end_stream(std::int32_t stream_id) {
  State* s = find(stream_id);
  if (s == nullptr || s->body_complete) {
    return;
  }
  s->body_complete = true;
  if (s->phase == State::Phase::reading) {
    dispatch(*s);
  } else if (s->body_streamed) {
    deliver_body(*s);
  }
}

void H2ServerConnection::on_stream_closed(std::int32_t stream_id, std::error_code ec) {
  if (stream_id == header_stream_) {
    header_deadline_ = {};  // refused or reset before its head was complete
  }
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) {
    return;
  }
  std::shared_ptr<State> state = std::move(it->second);
  streams_.erase(it);
  ids_.erase(state.get());
  if (ec && state->body_streamed && !state->body_complete) {
    fail_body(*state, ec, 400);
  }
  state->owner = nullptr;
  state->open.store(false, std::memory_order_relaxed);
  state->on_writable = nullptr;
  state->on_body_chunk = nullptr;
  state->on_body_end = nullptr;
  if (!closed_) {
    update_idle();
  }
}

void H2ServerConnection::on_stream_drained(std::int32_t stream_id) {
  State* s = find(stream_id);
  if (s != nullptr && s->on_writable && transport_->pending_output() == 0) {
    // Not from inside Session::send(): post, like HTTP/1.1's when_writable.
    auto keep = s->shared_from_this();
    context_.loop().post([keep] {
      if (keep->owner != nullptr) {
        static_cast<H2ServerConnection*>(keep->owner)->run_writable();
      }
    });
  }
}

// ---- Request bodies ----

void H2ServerConnection::deliver_body(State& state) {
  if (!state.body_reader || state.body_ended) {
    return;
  }
  if (!state.body_buffer.empty()) {
    const std::string chunk = std::move(state.body_buffer);
    state.body_buffer = std::string();
    auto delivered = state.on_body_chunk(as_bytes(chunk));
    if (closed_ || state.owner == nullptr) {
      return;
    }
    session_->consume(id_of(state), chunk.size());
    watch_body(state);  // the client may send again: its silence counts from now
    flush();            // the WINDOW_UPDATE
    if (state.body_ended) {
      return;
    }
    if (!delivered) {
      fail_body(state, delivered.error(), 500);
      return;
    }
  }
  if (state.body_complete && !state.body_error) {
    state.body_ended = true;
    auto on_end = std::move(state.on_body_end);
    state.on_body_chunk = nullptr;
    on_end(Result<void>{});
  }
}

void H2ServerConnection::fail_body(State& state, std::error_code ec, int status) {
  const std::shared_ptr<State> keep = state.shared_from_this();
  state.body_error = ec;
  state.body_error_status = status;
  state.body_complete = true;
  if (state.phase == State::Phase::reading) {
    answer(state, status);  // the handler never ran
    return;
  }
  if (!state.body_reader || state.body_ended) {
    return;  // read_body() reports it when it is called
  }
  state.body_ended = true;
  state.body_buffer = std::string();
  auto on_end = std::move(state.on_body_end);
  state.on_body_chunk = nullptr;
  on_end(fail(ec));
  if (!closed_ && state.owner == this && state.phase == State::Phase::handling) {
    answer(state, status);
  }
}

void H2ServerConnection::end_request_body(State& state) {
  // The response is complete before the streamed body was read: the body is not wanted.
  if (!state.body_streamed || state.body_ended) {
    return;
  }
  state.body_ended = true;
  state.body_buffer = std::string();
  if (state.body_reader && state.on_body_end) {
    auto on_end = std::move(state.on_body_end);
    state.on_body_chunk = nullptr;
    on_end(fail(make_error_code(Errc::cancelled)));
  }
}

void H2ServerConnection::read_body(const std::shared_ptr<State>& state, BodySink on_chunk,
                                   BodyEnd on_end) {
  State& s = *state;
  if (!s.install_body_reader(std::move(on_chunk), std::move(on_end))) {
    return;  // a second call, or a buffered body handed over already
  }
  if (s.body_ended || s.body_error) {
    const bool answer_now = !s.body_ended && s.phase == State::Phase::handling;
    s.body_ended = true;
    auto end = std::move(s.on_body_end);
    end(fail(s.body_error ? s.body_error : make_error_code(Errc::cancelled)));
    if (answer_now && !closed_ && s.owner == this && s.phase == State::Phase::handling) {
      answer(s, s.body_error_status);
    }
    return;
  }
  deliver_body(s);
}

// ---- Responses ----

Headers H2ServerConnection::response_headers(const Headers& from, bool strip_length) {
  Headers out;
  bool has_server = false;
  bool has_date = false;
  for (const auto& f : from) {
    if (strip_length && iequals(f.name, "content-length")) {
      continue;
    }
    has_server = has_server || iequals(f.name, "server");
    has_date = has_date || iequals(f.name, "date");
    out.add(f.name, f.value);
  }
  const auto& config = context_.config();
  if (!has_server && !config.server_header.empty()) {
    out.add("server", config.server_header);
  }
  if (!has_date) {
    out.add("date", std::string(context_.date().get()));  // RFC 9110 §6.6.1
  }
  return out;
}

void H2ServerConnection::send(State& state, Response response) {
  if (state.phase != State::Phase::handling || closed_) {
    return;
  }
  const std::int32_t id = id_of(state);
  Headers headers = response_headers(response.headers, true);
  const bool no_body = status_has_no_body(response.status);
  if (!no_body) {
    headers.add("content-length", std::to_string(response.body.size()));
  }
  const bool has_body = !no_body && !state.head_request && !response.body.empty();
  state.phase = State::Phase::done;
  if (!session_->submit_response(id, response.status, headers, has_body)) {
    return;
  }
  if (has_body) {
    session_->write(id, response.body);
    session_->end_stream(id);
  }
  end_request_body(state);
  flush();
}

void H2ServerConnection::start_stream(State& state, int status, Headers headers) {
  if (state.phase != State::Phase::handling || closed_) {
    return;
  }
  const std::int32_t id = id_of(state);
  const bool has_body = !status_has_no_body(status) && !state.head_request;
  state.phase = has_body ? State::Phase::streaming : State::Phase::done;
  if (!session_->submit_response(id, status, response_headers(headers, false), has_body)) {
    state.phase = State::Phase::done;
    return;
  }
  flush();
}

void H2ServerConnection::write_chunk(State& state, std::string chunk) {
  if (state.phase != State::Phase::streaming || closed_) {
    return;
  }
  session_->write(id_of(state), chunk);
  flush();
}

void H2ServerConnection::finish_stream(State& state) {
  if (state.phase != State::Phase::streaming || closed_) {
    return;
  }
  state.phase = State::Phase::done;
  session_->end_stream(id_of(state));
  end_request_body(state);
  flush();
}

void H2ServerConnection::after(const std::shared_ptr<State>& state, std::chrono::milliseconds delay,
                               Writable fn) {
  if (closed_) {
    return;
  }
  after_.add(state, delay, std::move(fn));
}

void H2ServerConnection::when_writable(const std::shared_ptr<State>& state, Writable fn) {
  state->on_writable = std::move(fn);
  if (session_->buffered(id_of(*state)) == 0 && transport_->pending_output() == 0) {
    // Never from inside the caller: a handler writing from its callback would recurse.
    context_.loop().post([state] {
      if (state->owner != nullptr) {
        static_cast<H2ServerConnection*>(state->owner)->run_writable();
      }
    });
  }
}

void H2ServerConnection::reset(State& state, Http2Errc code) {
  if (closed_ || state.phase == State::Phase::reading || state.phase == State::Phase::done) {
    return;
  }
  // RFC 9113 §5.4.2: a stream error ends this stream only; the session discards what the client
  // still sends on it and gives its flow-control credit back.
  state.phase = State::Phase::done;
  session_->reset(id_of(state), code);
  end_request_body(state);
  flush();
}

Result<void> H2ServerConnection::request_key_update(bool update_requested) {
  if (closed_ || closing_) {
    return fail(Errc::connection_closed);
  }
  // Frames already handed to the transport go out under the old keys, the rest under the new.
  return key_update_on(transport_.get(), update_requested);
}

// ---- Lifecycle ----

void H2ServerConnection::drain() {
  if (closed_ || closing_) {
    return;
  }
  session_->goaway();
  flush();
}

void H2ServerConnection::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  idle_timer_.cancel();
  write_timer_.cancel();
  read_timer_.cancel();
  after_.cancel_all();
  if (transport_) {
    transport_->close();
  }
  release_exchanges();
  context_.retire(this);
}

void H2ServerConnection::release_exchanges() {
  auto streams = std::move(streams_);
  streams_.clear();
  ids_.clear();
  for (auto& [id, state] : streams) {
    if (!in_destructor_ && state->body_reader && !state->body_ended && state->on_body_end) {
      state->body_ended = true;
      auto on_end = std::move(state->on_body_end);
      state->owner = nullptr;
      on_end(fail(make_error_code(Errc::connection_closed)));
    }
    state->owner = nullptr;
    state->open.store(false, std::memory_order_relaxed);
    state->on_writable = nullptr;
    state->on_body_chunk = nullptr;
    state->on_body_end = nullptr;
  }
}

}  // namespace holdfast::http
