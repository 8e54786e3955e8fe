// ServerConnection, reading side: requests parsed off the transport, timeouts, lifecycle.
#include "http/server_connection.h"

#include <charconv>
#include <utility>

#include "holdfast/error.h"
#include "holdfast/http1_error.h"
#include "http1/serializer.h"

namespace holdfast::http {
namespace {

// A streamed request body waiting for its reader (read_body not called yet) is buffered up to
// this much; then reading pauses, and the kernel's receive window pushes back on the client.
constexpr std::size_t kBodyBufferLimit = 256 * 1024;

std::span<const std::uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

ServerConnection::ServerConnection(ServerLoopContext& context)
    : context_(context),
      read_timer_(context.loop().timers(), [this] { on_read_timeout(); }),
      write_timer_(context.loop().timers(), [this] { on_write_timeout(); }),
      after_(context.loop().timers()) {}

ServerConnection::~ServerConnection() {
  // Normally closed (and retired) already; not when the transport could not be created, or when
  // the server goes away: then no user callback runs any more.
  closed_ = true;
  in_destructor_ = true;
  read_timer_.cancel();
  write_timer_.cancel();
  release_exchanges();
}

void ServerConnection::start(std::unique_ptr<transport::Transport> transport) {
  transport_ = std::move(transport);
  // Before the first request the keep-alive idle timeout applies: a connection that never
  // sends a byte is an idle one. The header timeout starts with the first byte.
  arm_read_timer(context_.config().timeouts.keepalive_idle);
}

// ---- TransportHandler ----

void ServerConnection::on_connected() {
  if (context_.config().tls && transport_) {
    auto& counters = context_.config().counters;
    counters.tls_handshakes.fetch_add(1, std::memory_order_relaxed);
    if (transport_->info().tls_resumed) {
      counters.tls_resumptions.fetch_add(1, std::memory_order_relaxed);
    }
    if (transport_->info().alpn == "h2") {
      // RFC 9113 §3.2: ALPN chose HTTP/2; the connection speaks it from the first byte on.
      read_timer_.cancel();
      closed_ = true;
      context_.hand_over_to_http2(this, std::move(transport_));
    }
  }
}

void ServerConnection::on_data(std::span<const std::uint8_t> data) {
  if (closed_ || read_phase_ == ReadPhase::lingering || read_phase_ == ReadPhase::stopped) {
    return;  // discarded: a close is under way
  }
  if (read_phase_ == ReadPhase::body) {
    arm_read_timer(context_.config().timeouts.body_read);  // the longest silence in a body
  }
  if (paused_ || !input_.empty()) {
    input_.append(reinterpret_cast<const char*>(data.data()), data.size());
    if (!paused_) {
      drain_input();
    }
    return;
  }
  const std::size_t used = parse(data);
  if (!closed_ && used < data.size() && read_phase_ != ReadPhase::stopped &&
      read_phase_ != ReadPhase::lingering) {
    auto rest = data.subspan(used);
    input_.assign(reinterpret_cast<const char*>(rest.data()), rest.size());
  }
  update_idle();
}

void ServerConnection::on_drained() {
  write_timer_.cancel();
  write_mark_ = 0;
  if (closed_) {
    return;
  }
  if (read_phase_ == ReadPhase::lingering) {
    if (peer_closed_ || context_.is_draining()) {
      close();
    } else if (!read_timer_.is_armed()) {
      read_timer_.arm(kLingerTimeout);
    }
    return;
  }
  run_writable();
  if (!closed_) {
    update_idle();
  }
}

void ServerConnection::on_peer_closed() {
  peer_closed_ = true;
  if (closed_) {
    return;
  }
  if (read_phase_ == ReadPhase::lingering) {
    if (transport_->pending_output() == 0) {
      close();
    }
    return;
  }
  // A streamed body cut short: its handler runs already and hears of it (and may still answer).
  if (reading_ != nullptr && reading_->phase != State::Phase::reading) {
    fail_body(*reading_, make_error_code(Errc::connection_closed), 400);
    if (closed_) {
      return;
    }
  }
  // A request cut short can never be answered: forget it (its handler never ran). Requests read
  // in full are still answered (the client may have half-closed after sending them).
  if (reading_ != nullptr) {
    State* dropped = reading_;
    reading_ = nullptr;
    dropped->owner = nullptr;
    dropped->open.store(false, std::memory_order_relaxed);
    if (head_.get() == dropped) {
      head_.reset();
      tail_ = nullptr;
    } else {
      State* prev = head_.get();
      while (prev->next.get() != dropped) {
        prev = prev->next.get();
      }
      prev->next.reset();
      tail_ = prev;
    }
    --queued_;
  }
  stop_reading();
  if (!head_) {
    close();
    return;
  }
  tail_->close_after = true;
}

void ServerConnection::on_error(std::error_code) { close(); }

// ---- ParserHandler ----

void ServerConnection::on_request_line(std::string_view method, std::string_view target,
                                       int version_minor) {
  Request& r = reading_->request;
  r.method.assign(method);
  r.url.assign(target);
  r.version = version_minor == 0 ? HttpVersion::http1_0 : HttpVersion::http1_1;
}

void ServerConnection::on_header(std::string_view name, std::string_view value) {
  reading_->request.headers.add(std::string(name), std::string(value));
}

http1::ParserHandler::BodyMode ServerConnection::on_headers_complete() {
  State& s = *reading_;
  read_phase_ = ReadPhase::body;
  arm_read_timer(context_.config().timeouts.body_read);
  s.keep_alive = parser_->keep_alive();
  s.head_request = s.request.method == "HEAD";
  // The parser validated Content-Length (1*DIGIT, no duplicates): refuse a body over the limit
  // before reading it, and before inviting it with 100 Continue (RFC 9110 §10.1.1).
  if (auto cl = s.request.headers.get("Content-Length")) {
    std::uint64_t length = 0;
    std::from_chars(cl->data(), cl->data() + cl->size(), length);
    if (length > context_.config().limits.max_body) {
      body_too_large_ = true;
      return BodyMode::normal;
    }
  }
  if (parser_->expects_continue() && s.request.version == HttpVersion::http1_1) {
    s.expects_continue = true;
    send_continue(s);
  }
  s.body_streamed = wants_streamed_body(s);
  return BodyMode::normal;
}

void ServerConnection::on_body(std::span<const std::uint8_t> data) {
  if (body_too_large_) {
    return;
  }
  State& s = *reading_;
  if (s.body_bytes + data.size() > context_.config().limits.max_body) {
    body_too_large_ = true;  // a chunked body grew over the limit
    return;
  }
  s.body_bytes += data.size();
  // A streamed body is handed over after feed() returns, never from inside the parser: the
  // handler may answer, or close, from its callback.
  auto& into = s.body_streamed ? s.body_buffer : s.request.body;
  into.append(reinterpret_cast<const char*>(data.data()), data.size());
}

void ServerConnection::on_message_complete() { message_complete_ = true; }

// ---- Reading ----

std::size_t ServerConnection::parse(std::span<const std::uint8_t> data) {
  std::size_t off = 0;
  processing_ = true;
  cork();
  while (off < data.size() && !closed_) {
    if (read_phase_ == ReadPhase::stopped || read_phase_ == ReadPhase::lingering) {
      off = data.size();  // nothing more is read on this connection
      break;
    }
    if (reading_ == nullptr) {
      if (!can_start_request()) {
        // Pipelining bound (limits.max_pipelined): stop reading until answers go out; the kernel's
        // receive window then pushes back on the client.
        if (!paused_) {
          paused_ = true;
          transport_->pause_reading();
        }
        break;
      }
      begin_request();
    }
    auto fed = parser_->feed(data.subspan(off));
    if (!fed) {
      const int status = suggested_status(fed.error());
      if (reading_->phase != State::Phase::reading) {
        fail_body(*reading_, fed.error(), status == 0 ? 400 : status);  // a streamed body
      } else {
        reject(*reading_, status == 0 ? 400 : status);
      }
      off = data.size();
      break;
    }
    off += *fed;
    if (body_too_large_) {
      if (reading_->phase != State::Phase::reading) {
        fail_body(*reading_, make_error_code(Errc::body_too_large), 413);
      } else {
        reject(*reading_, 413);
      }
      off = data.size();
      break;
    }
    if (reading_->body_streamed) {
      const bool done = message_complete_;
      message_complete_ = false;
      if (!step_streamed(*reading_, done)) {
        break;  // the body goes on in the next read (or reading stopped)
      }
      continue;
    }
    if (!message_complete_) {
      break;  // the parser needs more bytes; keep the rest for the next read
    }
    message_complete_ = false;
    if (parser_->is_upgrade()) {
      // No protocol switch is offered: CONNECT and the HTTP/2 preface (PRI) are refused; an
      // Upgrade header is ignored (RFC 9110 §7.8: the server may) and HTTP/1.1 goes on.
      const auto& method = reading_->request.method;
      if (method == "CONNECT" || method == "PRI") {
        reject(*reading_, 501);
        off = data.size();
        break;
      }
      parser_->reset();
    }
    dispatch();
  }
  processing_ = false;
  uncork();
  return off;
}

void ServerConnection::drain_input() {
  if (processing_ || closed_ || input_.empty()) {
    return;
  }
  std::string buffered = std::move(input_);
  input_.clear();
  auto bytes = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(buffered.data()),
                                             buffered.size());
  const std::size_t used = parse(bytes);
  if (!closed_ && used < buffered.size() && read_phase_ != ReadPhase::stopped &&
      read_phase_ != ReadPhase::lingering) {
    buffered.erase(0, used);
    buffered.append(input_);  // anything that arrived while parsing (nothing, normally)
    input_ = std::move(buffered);
  }
  // A partial head larger than the limits would allow cannot become valid: the parser keeps
  // refusing to consume it, so bound the buffer here (RFC 9112 §2.3 lets servers limit heads).
  const auto& limits = context_.config().limits;
  if (!closed_ && reading_ != nullptr && read_phase_ == ReadPhase::head &&
      input_.size() > limits.max_start_line + limits.max_header_bytes + 4) {
    reject(*reading_, 431);
  }
}

bool ServerConnection::can_start_request() const {
  return !closed_ && !no_more_requests_ && queued_ <= context_.config().limits.max_pipelined;
}

void ServerConnection::begin_request() {
  auto state = std::make_shared<State>();
  state->loop = context_.handle();
  state->owner = this;
  if (tail_ == nullptr) {
    head_ = state;
  } else {
    tail_->next = state;
  }
  tail_ = state.get();
  reading_ = state.get();
  ++queued_;
  if (!parser_) {
    const auto& limits = context_.config().limits;
    parser_ = std::make_unique<http1::Parser>(
        http1::MessageKind::request, *this,
        http1::ParserLimits{limits.max_start_line, limits.max_header_bytes, limits.max_headers});
  }
  body_too_large_ = false;
  message_complete_ = false;
  read_phase_ = ReadPhase::head;
  // Slowloris: the whole head must arrive within header_read of its first byte (not re-armed
  // as bytes trickle in).
  arm_read_timer(context_.config().timeouts.header_read);
}

void ServerConnection::dispatch() {
  std::shared_ptr<State> state = reading_->shared_from_this();
  reading_ = nullptr;
  read_phase_ = ReadPhase::idle;
  read_timer_.cancel();
  state->phase = State::Phase::handling;
  context_.config().counters.requests.fetch_add(1, std::memory_order_relaxed);
  // RFC 9112 §9.6: after a request with "close" (or an HTTP/1.0 one without keep-alive) the
  // server reads no further request on the connection.
  if (!state->keep_alive || no_more_requests_ || context_.is_draining()) {
    state->close_after = true;
    stop_reading();
  }
  context_.config().handler(state->request, ResponseWriter(state));
}

bool ServerConnection::wants_streamed_body(const State& state) const {
  const auto& predicate = context_.config().stream_body;
  if (!predicate || parser_->is_upgrade()) {
    return false;
  }
  // Only a request that has a body: GET without one keeps the plain path.
  if (!parser_->is_chunked() && parser_->content_length().value_or(0) == 0) {
    return false;
  }
  return predicate(state.request);
}

// One parsed step of a request whose body is streamed: runs its handler at once (the first
// time), hands over the body bytes, and finishes the read when the message is complete. Returns
// true when parsing goes on with the next request in the same bytes.
bool ServerConnection::step_streamed(State& state, bool message_done) {
  const std::shared_ptr<State> keep = state.shared_from_this();
  if (message_done) {
    end_streamed_read(state);
  }
  if (state.phase == State::Phase::reading) {
    state.phase = State::Phase::handling;
    context_.config().counters.requests.fetch_add(1, std::memory_order_relaxed);
    if (!state.keep_alive || no_more_requests_ || context_.is_draining()) {
      state.close_after = true;  // RFC 9112 §9.6; reading stops once the body is in
      if (message_done) {
        stop_reading();
      }
    }
    context_.config().handler(state.request, ResponseWriter(keep));
  }
  if (closed_) {
    return false;
  }
  deliver_body(state);
  if (closed_ || !message_done) {
    if (!closed_ && reading_ == &state && !state.body_reader &&
        state.body_buffer.size() >= kBodyBufferLimit) {
      pause_for_body();
    }
    return false;
  }
  return read_phase_ != ReadPhase::stopped && read_phase_ != ReadPhase::lingering;
}

void ServerConnection::end_streamed_read(State& state) {
  reading_ = nullptr;
  read_phase_ = ReadPhase::idle;
  read_timer_.cancel();
  state.body_complete = true;
  if (state.close_after && state.phase != State::Phase::reading) {
    stop_reading();
  }
}

// Hands buffered body bytes to the reader, then the end of the body.
void ServerConnection::deliver_body(State& state) {
  if (!state.body_reader || state.body_ended) {
    return;
  }
  if (!state.body_buffer.empty()) {
    const std::string chunk = std::move(state.body_buffer);
    state.body_buffer = std::string();
    auto delivered = state.on_body_chunk(as_bytes(chunk));
    if (closed_ || state.body_ended) {
      return;  // the handler answered (or the connection went) from inside its sink
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
    return;
  }
  if (body_paused_ && reading_ == &state) {
    resume_for_body();
  }
}

// A streamed body ended early: no more of it (or of this connection) is read; the reader hears
// why, and if the handler has not started to answer by then, `status` answers for it.
void ServerConnection::fail_body(State& state, std::error_code ec, int status) {
  const std::shared_ptr<State> keep = state.shared_from_this();
  if (reading_ == &state) {
    reading_ = nullptr;
  }
  state.body_error = ec;
  state.body_error_status = status;
  state.body_complete = true;
  state.close_after = true;
  stop_reading();
  if (!state.body_reader || state.body_ended) {
    return;  // read_body() reports it when it is called
  }
  state.body_ended = true;
  state.body_buffer = std::string();
  auto on_end = std::move(state.on_body_end);
  state.on_body_chunk = nullptr;
  on_end(fail(ec));
  if (!closed_ && state.owner == this && state.phase == State::Phase::handling) {
    reject(state, status);
  }
}

void ServerConnection::pause_for_body() {
  body_paused_ = true;
  read_timer_.cancel();  // the client is not slow: we are not reading
  if (!paused_) {
    paused_ = true;
    transport_->pause_reading();
  }
}

void ServerConnection::resume_for_body() {
  body_paused_ = false;
  if (closed_ || !paused_ || read_phase_ != ReadPhase::body) {
    return;
  }
  paused_ = false;
  transport_->resume_reading();
  arm_read_timer(context_.config().timeouts.body_read);
  drain_input();
}

void ServerConnection::read_body(const std::shared_ptr<State>& state, BodySink on_chunk,
                                 BodyEnd on_end) {
  State& s = *state;
  if (!s.install_body_reader(std::move(on_chunk), std::move(on_end))) {
    return;  // a second call, or a buffered body handed over already
  }
  if (s.body_ended) {
    // The response completed before the body was read (Errc::cancelled), or the body failed.
    auto end = std::move(s.on_body_end);
    end(fail(s.body_error ? s.body_error : make_error_code(Errc::cancelled)));
    return;
  }
  if (s.body_error) {
    s.body_ended = true;
    auto end = std::move(s.on_body_end);
    end(fail(s.body_error));
    if (!closed_ && s.owner == this && s.phase == State::Phase::handling) {
      reject(s, s.body_error_status);
    }
    return;
  }
  deliver_body(s);
}

void ServerConnection::when_writable(const std::shared_ptr<State>& state, Writable fn) {
  state->on_writable = std::move(fn);
  if (is_head(*state) && transport_->pending_output() == 0) {
    // Never from inside the caller: a handler writing from its callback would recurse.
    context_.loop().post([state] {
      if (state->owner != nullptr) {
        static_cast<ServerConnection*>(state->owner)->run_writable();
      }
    });
  }
}

void ServerConnection::run_writable() {
  if (closed_ || !head_ || !head_->on_writable || transport_->pending_output() > 0) {
    return;
  }
  auto fn = std::move(head_->on_writable);
  head_->on_writable = nullptr;
  const std::shared_ptr<State> keep = head_;
  cork();
  fn(ResponseWriter(keep));
  uncork();
}

void ServerConnection::reject(State& state, int status) {
  context_.config().counters.protocol_errors.fetch_add(1, std::memory_order_relaxed);
  reading_ = nullptr;
  state.phase = State::Phase::handling;
  state.keep_alive = false;
  state.close_after = true;
  stop_reading();
  Response response;
  response.status = status;
  response.headers.add("Content-Type", "text/plain");
  response.body = std::to_string(status) + " " + std::string(http1::reason_phrase(status)) + "\n";
  send(state, std::move(response));
}

void ServerConnection::stop_reading() {
  no_more_requests_ = true;
  if (read_phase_ != ReadPhase::lingering) {
    read_phase_ = ReadPhase::stopped;
  }
  read_timer_.cancel();
  std::string().swap(input_);
  if (!paused_ && transport_) {
    paused_ = true;
    transport_->pause_reading();
  }
}

void ServerConnection::maybe_resume_reading() {
  if (!paused_ || closed_ || no_more_requests_ || body_paused_ || !can_start_request()) {
    return;
  }
  paused_ = false;
  transport_->resume_reading();
  drain_input();  // requests already received wait in input_ (no-op while parsing: the loop goes
                  // on)
}

void ServerConnection::arm_read_timer(std::chrono::milliseconds after) {
  if (after.count() > 0) {
    read_timer_.arm(after);
  } else {
    read_timer_.cancel();
  }
}

void ServerConnection::on_read_timeout() {
  switch (read_phase_) {
    case ReadPhase::head:
    case ReadPhase::body:
      if (reading_->phase != State::Phase::reading) {
        fail_body(*reading_, make_error_code(Errc::body_read_timeout), 408);
        return;
      }
      // RFC 9110 §15.5.9: 408, then close. Queued behind earlier answers like any response.
      reject(*reading_, 408);
      return;
    case ReadPhase::idle:       // keep-alive timeout: close quietly
    case ReadPhase::lingering:  // the client did not close after our last response
    case ReadPhase::stopped: close(); return;
  }
}

void ServerConnection::on_write_timeout() {
  const std::size_t pending = transport_ ? transport_->pending_output() : 0;
  if (pending == 0) {
    return;
  }
  if (pending < write_mark_) {
    write_mark_ = pending;  // the client reads, slowly: give it another period
    write_timer_.arm(context_.config().timeouts.write);
    return;
  }
  close();  // no byte left the queue for a whole period: a stalled or vanished reader
}

void ServerConnection::update_idle() {
  if (closed_ || head_ || reading_ != nullptr || !input_.empty() || !corked_.empty() ||
      read_phase_ != ReadPhase::idle || transport_->pending_output() > 0) {
    return;
  }
  if (context_.is_draining()) {
    close();  // graceful shutdown closes idle connections at once
    return;
  }
  // Idle: keep nothing that can be rebuilt on the next request.
  parser_.reset();
  std::string().swap(input_);
  transport_->release_idle_memory();
  after_.reap();
  arm_read_timer(context_.config().timeouts.keepalive_idle);
}

void ServerConnection::drain() {
  if (closed_) {
    return;
  }
  if (!head_ && reading_ == nullptr && input_.empty()) {
    close();
    return;
  }
  no_more_requests_ = true;
  if (reading_ == nullptr) {
    stop_reading();
  }
  if (tail_ != nullptr) {
    tail_->close_after = true;  // the last request already begun is the last one answered
  }
  update_idle();
}

void ServerConnection::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  read_timer_.cancel();
  write_timer_.cancel();
  release_exchanges();
  after_.cancel_all();
  std::string().swap(input_);
  std::string().swap(corked_);
  if (transport_) {
    transport_->close();
  }
  context_.retire(this);
}

void ServerConnection::release_exchanges() {
  // Iteratively, so a long queue does not recurse through shared_ptr destructors. A streamed
  // body's reader hears that the connection went (its writer does nothing from now on).
  for (auto s = std::move(head_); s;) {
    s->owner = nullptr;
    s->open.store(false, std::memory_order_relaxed);
    s->on_writable = nullptr;
    if (s->body_reader && !s->body_ended && !in_destructor_) {
      s->body_ended = true;
      auto on_end = std::move(s->on_body_end);
      s->on_body_chunk = nullptr;
      on_end(fail(make_error_code(Errc::connection_closed)));
    }
    s = std::move(s->next);
  }
  tail_ = nullptr;
  reading_ = nullptr;
  queued_ = 0;
}

void ServerConnection::after(const std::shared_ptr<State>& state, std::chrono::milliseconds delay,
                             std::function<void(const ResponseWriter&)> fn) {
  if (closed_) {
    return;
  }
  after_.add(state, delay, std::move(fn));
}

// HTTP/1.1 has no per-exchange reset: the earlier responses go out, then the connection closes
// (advance_queue) without the rest of this one and without answering the requests behind it.
void ServerConnection::reset(State& state, Http2Errc /*code*/) {
  if (closed_ || state.phase == State::Phase::reading || state.phase == State::Phase::done) {
    return;
  }
  if (state.until_close && is_head(state)) {
    close();  // a FIN would end a close-delimited body as if it were whole (RFC 9112 §6.3)
    return;
  }
  if (reading_ == &state) {
    reading_ = nullptr;  // the rest of its body is not read
  }
  stop_reading();
  state.pending = std::string();
  state.close_after = true;
  complete(state);
}

Result<void> ServerConnection::request_key_update(bool update_requested) {
  return key_update_on(closed_ ? nullptr : transport_.get(), update_requested);
}

}  // namespace holdfast::http
