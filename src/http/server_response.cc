// ServerConnection, writing side: response heads and bodies, in request order, and closing.
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include "holdfast/error.h"
#include "http/server_connection.h"
#include "http1/serializer.h"
#include "http1/syntax.h"

namespace holdfast::http {
namespace {

// RFC 9110 §6.4.1: 1xx, 204 and 304 responses never have content.
bool status_has_no_body(int status) { return status < 200 || status == 204 || status == 304; }

// "Connection" may hold a list ("keep-alive, close"): true when it names `option`.
bool connection_has(const Headers& headers, std::string_view option) {
  for (auto value : headers.get_all("Connection")) {
    while (!value.empty()) {
      auto comma = value.find(',');
      auto item = http1::trim_ows(value.substr(0, comma));
      if (iequals(item, option)) {
        return true;
      }
      value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    }
  }
  return false;
}

// A Content-Length the handler set itself, when it is a plain number.
std::optional<std::uint64_t> declared_length(const Headers& headers) {
  auto value = headers.get("Content-Length");
  if (!value) {
    return std::nullopt;
  }
  std::uint64_t n = 0;
  auto r = std::from_chars(value->data(), value->data() + value->size(), n);
  if (r.ec != std::errc() || r.ptr != value->data() + value->size()) {
    return std::nullopt;
  }
  return n;
}

}  // namespace

void ServerConnection::emit(State& state, std::string bytes) {
  if (bytes.empty()) {
    return;
  }
  if (!is_head(state)) {
    state.pending += bytes;  // an earlier response is still going out
    return;
  }
  put(std::move(bytes));
}

void ServerConnection::put(std::string bytes) {
  if (cork_depth_ > 0) {
    if (corked_.empty()) {
      corked_ = std::move(bytes);
    } else {
      corked_ += bytes;
    }
    return;
  }
  write_mark_ += bytes.size();  // new output is not a stall: only a queue that never shrinks is
  transport_->write(std::move(bytes));
  watch_output();
}

void ServerConnection::uncork() {
  if (--cork_depth_ == 0 && !corked_.empty()) {
    flush_corked();
    update_idle();  // it waited for the corked bytes
  }
}

void ServerConnection::flush_corked() {
  if (corked_.empty() || closed_) {
    return;
  }
  std::string bytes = std::move(corked_);
  corked_.clear();
  write_mark_ += bytes.size();
  transport_->write(std::move(bytes));
  watch_output();
}

void ServerConnection::watch_output() {
  const auto stall = context_.config().timeouts.write;
  if (closed_ || stall.count() <= 0 || write_timer_.is_armed()) {
    return;
  }
  const std::size_t pending = transport_->pending_output();
  if (pending > 0) {
    write_mark_ = pending;
    write_timer_.arm(stall);
  }
}

void ServerConnection::write_head(State& state, int status, std::string_view reason,
                                  Headers& headers, std::optional<std::uint64_t> content_length,
                                  bool chunked) {
  if (connection_has(headers, "close")) {
    state.close_after = true;
  }
  if (state.close_after || !state.keep_alive) {
    state.close_after = true;
  }
  auto& config = context_.config();
  const std::string_view date = context_.date().get();  // RFC 9110 §6.6.1
  std::vector<http1::HeaderView> fields;
  fields.reserve(headers.size() + 3);
  bool has_server = false;
  bool has_date = false;
  for (const auto& field : headers) {
    // Framing and persistence are the connection's to write; and a handler's header cannot
    // smuggle CR/LF into the response (response splitting): invalid fields are dropped.
    if (iequals(field.name, "Content-Length") || iequals(field.name, "Transfer-Encoding") ||
        iequals(field.name, "Connection") || !http1::is_valid_header_name(field.name) ||
        !http1::is_valid_header_value(field.value)) {
      continue;
    }
    has_server = has_server || iequals(field.name, "Server");
    has_date = has_date || iequals(field.name, "Date");
    fields.push_back({field.name, field.value});
  }
  if (!has_server && !config.server_header.empty() &&
      http1::is_valid_header_value(config.server_header)) {
    fields.push_back({"Server", config.server_header});
  }
  if (!has_date) {
    fields.push_back({"Date", date});
  }
  if (state.close_after) {
    fields.push_back({"Connection", "close"});
  } else if (state.request.version == HttpVersion::http1_0) {
    fields.push_back({"Connection", "keep-alive"});  // RFC 9112 §9.3: 1.0 persistence is opt-in
  }
  // RFC 9110 §2.5: the server answers HTTP/1.1 (its own version), to 1.0 clients too.
  std::string out;
  out.reserve(256);
  if (!http1::serialize_response_head(out, status, reason, fields, content_length, chunked)) {
    out.clear();  // only the reason can still be invalid here: use the standard one
    (void)http1::serialize_response_head(out, status, {}, fields, content_length, chunked);
  }
  emit(state, std::move(out));
}

void ServerConnection::send_continue(State& state) {
  if (state.continue_sent) {
    return;
  }
  state.continue_sent = true;
  emit(state, "HTTP/1.1 100 Continue\r\n\r\n");
}

void ServerConnection::send(State& state, Response response) {
  if (closed_ || state.phase != State::Phase::handling) {
    return;
  }
  int status = response.status;
  if (status < 200 || status > 599) {
    status = 500;  // an interim (or invalid) status cannot end an exchange
  }
  const bool no_body = status_has_no_body(status);
  std::optional<std::uint64_t> length;
  if (!no_body) {
    // HEAD keeps the Content-Length a GET would get (RFC 9110 §9.3.2): from the body the
    // handler built, or the one it declared itself without a body.
    length = response.body.size();
    if (state.head_request && response.body.empty()) {
      if (auto declared = declared_length(response.headers)) {
        length = declared;
      }
    }
  }
  if (state.body_streamed && !state.body_complete) {
    state.close_after = true;  // answered before its body is in: say so in this head
  }
  state.phase = State::Phase::streaming;
  cork();  // head and body in one record and one write(), also when answered from outside a read
  write_head(state, status, response.reason, response.headers, length, false);
  if (!no_body && !state.head_request) {
    emit(state, std::move(response.body));
  }
  complete(state);
  uncork();
}

void ServerConnection::start_stream(State& state, int status, Headers headers) {
  if (closed_ || state.phase != State::Phase::handling) {
    return;
  }
  if (status < 200 || status > 599) {
    status = 500;
  }
  state.phase = State::Phase::streaming;
  const bool no_body = status_has_no_body(status);
  const auto length = declared_length(headers);
  if (no_body) {
    state.head_request = true;  // nothing of the body is sent
  } else if (!length && !state.head_request) {
    if (state.request.version == HttpVersion::http1_1) {
      state.chunked = true;
    } else {
      // HTTP/1.0 has no chunked coding: the close delimits the body (RFC 9112 §6.3, rule 8).
      state.until_close = true;
      state.close_after = true;
    }
  }
  write_head(state, status, {}, headers, no_body ? std::nullopt : length, state.chunked);
}

void ServerConnection::write_chunk(State& state, std::string chunk) {
  if (closed_ || state.phase != State::Phase::streaming || chunk.empty() || state.head_request) {
    return;
  }
  if (!state.chunked) {
    emit(state, std::move(chunk));
    return;
  }
  std::string framed;
  framed.reserve(chunk.size() + 24);
  http1::serialize_chunk(
      framed, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(chunk.data()),
                                            chunk.size()));
  emit(state, std::move(framed));
}

void ServerConnection::finish_stream(State& state) {
  if (closed_ || state.phase != State::Phase::streaming) {
    return;
  }
  if (state.chunked && !state.head_request) {
    emit(state, "0\r\n\r\n");  // RFC 9112 §7.1: the last chunk, no trailers
  }
  complete(state);
}

void ServerConnection::complete(State& state) {
  state.phase = State::Phase::done;
  if (is_head(state)) {
    advance_queue();
  }
}

void ServerConnection::advance_queue() {
  while (!closed_ && head_ && head_->phase == State::Phase::done) {
    std::shared_ptr<State> done = std::move(head_);
    head_ = std::move(done->next);
    if (!head_) {
      tail_ = nullptr;
    }
    --queued_;
    done->owner = nullptr;  // later calls through its writer do nothing
    done->open.store(false, std::memory_order_relaxed);
    done->on_writable = nullptr;
    if (done->body_streamed && !done->body_complete) {
      // Answered before its body was in: the rest is not read (RFC 9112 §9.6 lets the server
      // close instead), and a reader still waiting hears why.
      done->close_after = true;
      if (done->body_reader && !done->body_ended) {
        done->body_ended = true;
        auto on_end = std::move(done->on_body_end);
        done->on_body_chunk = nullptr;
        on_end(fail(make_error_code(Errc::cancelled)));
        if (closed_) {
          return;
        }
      }
    } else if (done->body_streamed && !done->body_ended) {
      done->body_ended = true;  // complete but never read: read_body() reports cancelled
    }
    if (done->close_after) {
      begin_close();
      return;
    }
    if (head_ && !head_->pending.empty()) {
      std::string bytes = std::move(head_->pending);
      head_->pending = std::string();
      put(std::move(bytes));
    }
    if (head_ && head_->on_writable && transport_->pending_output() == 0) {
      // Its when_writable() waited for its turn; the output is drained already.
      context_.loop().post([state = head_] {
        if (state->owner != nullptr) {
          static_cast<ServerConnection*>(state->owner)->run_writable();
        }
      });
    }
  }
  if (closed_) {
    return;
  }
  maybe_resume_reading();
  update_idle();
}

void ServerConnection::begin_close() {
  // Exchanges behind a closing one were never dispatched (reading stopped at it), except one
  // cut short: drop them.
  release_exchanges();
  no_more_requests_ = true;
  read_phase_ = ReadPhase::lingering;
  std::string().swap(input_);
  parser_.reset();
  // FIN after the last response byte; then read and discard until the client closes too, so a
  // request it is still sending cannot make the kernel answer with a RST (RFC 9112 §9.6).
  flush_corked();
  transport_->shutdown_write();
  if (paused_) {
    paused_ = false;
    transport_->resume_reading();
  }
  if (transport_->pending_output() == 0) {
    // Shutting down, nothing is worth waiting for once the response is out.
    if (peer_closed_ || context_.is_draining()) {
      close();
      return;
    }
    read_timer_.arm(kLingerTimeout);
  }
}

}  // namespace holdfast::http
