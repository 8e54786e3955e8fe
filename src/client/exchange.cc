// One client request from start to callback: timeouts, timings, body handling and the retry rule.
#include <utility>

#include "client/pool.h"
#include "holdfast/error.h"
#include "holdfast/http2_error.h"

namespace holdfast::client {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using Steady = std::chrono::steady_clock;

// Only a failed connection is worth another try; our own limits and the user's errors are final.
bool is_connection_failure(std::error_code ec) {
  if (ec.category() == std::system_category()) {
    return true;  // ECONNRESET, EPIPE, ...
  }
  // user_timeout / keepalive_lost: the path silently dropped the (reused) connection.
  // HTTP/2 GOAWAY or REFUSED_STREAM: the server did not process the stream (RFC 9113 §8.7).
  return ec == Errc::connection_closed || ec == Errc::closed_before_response ||
         ec == Errc::protocol_error || ec == Errc::user_timeout || ec == Errc::keepalive_lost ||
         ec == Http2Errc::goaway || ec == Http2Errc::refused_stream;
}

}  // namespace

Exchange::Exchange(Pool& pool, Url url, Request request, RequestOptions options,
                   Client::Callback done)
    : pool_(pool),
      url_(std::move(url)),
      host_header_(url_.host_header()),
      request_(std::move(request)),
      options_(std::move(options)),
      done_(std::move(done)),
      timeouts_(options_.timeouts.value_or(pool.options().timeouts)),
      started_(Steady::now()),
      deadline_timer_(pool.loop().timers(),
                      [this] { fail_with(make_error_code(Errc::deadline_exceeded)); }),
      phase_timer_(pool.loop().timers(), [this] { on_phase_timeout(); }) {
  if (!request_.headers.contains("User-Agent") && !pool.options().user_agent.empty()) {
    request_.headers.add("User-Agent", pool.options().user_agent);
  }
}

Exchange::~Exchange() = default;

void Exchange::start() {
  if (timeouts_.deadline.count() > 0) {
    deadline_timer_.arm(timeouts_.deadline);
  }
  pool_.acquire(this);
}

void Exchange::assign(http::ClientConnection* connection, const ConnectionPhases* phases) {
  connection_ = connection;
  const auto& info = connection->transport().info();
  response_.timings.reused_connection = phases == nullptr;
  response_.timings.remote_address = info.remote_address;
  response_.timings.tls_version = info.tls_version;
  response_.timings.tls_cipher = info.tls_cipher;
  response_.timings.alpn = info.alpn;
  response_.timings.tls_resumed = info.tls_resumed;
  if (phases != nullptr) {
    const auto now = Steady::now();
    auto& t = response_.timings;
    t.dns = duration_cast<microseconds>(phases->resolved - phases->resolve_started);
    if (info.tls_version.empty()) {
      t.connect = duration_cast<microseconds>(now - phases->resolved);
    } else {
      t.connect = duration_cast<microseconds>(info.tcp_connected - phases->resolved);
      t.tls = duration_cast<microseconds>(now - info.tcp_connected);
    }
  }
  pool_.stats().requests_sent.fetch_add(1, std::memory_order_relaxed);
  connection->start(this);
}

void Exchange::on_request_sent() {
  // The response-header timeout runs from here; without one, idle_read bounds the silence.
  if (timeouts_.response_headers.count() > 0) {
    phase_timeout_code_ = make_error_code(Errc::response_header_timeout);
    phase_timer_.arm(timeouts_.response_headers);
  } else if (timeouts_.idle_read.count() > 0) {
    phase_timeout_code_ = make_error_code(Errc::idle_read_timeout);
    phase_timer_.arm(timeouts_.idle_read);
  }
}

void Exchange::on_first_byte() { response_.timings.first_byte = since_start(); }

void Exchange::on_response_head(http::ResponseHead head) {
  head_seen_ = true;
  response_.status = head.status;
  response_.reason = std::move(head.reason);
  response_.version = head.version;
  response_.headers = std::move(head.headers);
  if (timeouts_.idle_read.count() > 0) {
    phase_timeout_code_ = make_error_code(Errc::idle_read_timeout);
    phase_timer_.arm(timeouts_.idle_read);
  } else {
    phase_timer_.cancel();
  }
}

Result<void> Exchange::on_response_body(std::span<const std::uint8_t> data) {
  if (timeouts_.idle_read.count() > 0) {
    phase_timer_.arm(timeouts_.idle_read);
  }
  if (options_.on_body) {
    return options_.on_body(data);
  }
  if (response_.body.size() + data.size() > pool_.options().max_response_body) {
    return fail(Errc::body_too_large);
  }
  response_.body.append(reinterpret_cast<const char*>(data.data()), data.size());
  return {};
}

void Exchange::on_response_complete() {
  // Read now, not at assign(): a client takes over after reading the tickets that follow the
  // handshake, so the first request on a connection may start on OpenSSL's record path.
  response_.timings.tls_record_path = std::string(connection_->transport().tls_record_path());
  connection_ = nullptr;
  finish(std::move(response_));
}

bool Exchange::may_retry(std::error_code ec, const http::FailureFacts& facts) const {
  if (!pool_.options().retry || attempts_ > 0 || !is_connection_failure(ec)) {
    return false;
  }
  if (!facts.request_bytes_sent) {
    return true;  // the request never left: always safe
  }
  // A reused connection that the server had already closed: the classic keep-alive race.
  // A streamed body cannot be replayed once its source was read.
  return facts.connection_was_reused && !facts.response_bytes_seen &&
         http::is_idempotent(request_) && !request_.body_source;
}

void Exchange::on_exchange_error(std::error_code ec, const http::FailureFacts& facts) {
  connection_ = nullptr;
  phase_timer_.cancel();
  if (may_retry(ec, facts)) {
    ++attempts_;
    head_seen_ = false;
    response_ = Response{};
    pool_.stats().retries.fetch_add(1, std::memory_order_relaxed);
    pool_.acquire(this);
    return;
  }
  finish(fail(ec));
}

void Exchange::on_phase_timeout() { fail_with(phase_timeout_code_); }

void Exchange::fail_with(std::error_code ec) {
  if (connection_ != nullptr) {
    http::ClientConnection* c = std::exchange(connection_, nullptr);
    c->abort(this, ec);
  }
  finish(fail(ec));
}

void Exchange::finish(Result<Response> result) {
  deadline_timer_.cancel();
  phase_timer_.cancel();
  if (result) {
    result->timings.total = since_start();
  }
  Client::Callback done = std::move(done_);
  pool_.release(this);  // destroys *this: touch no member below
  if (done) {
    done(std::move(result));
  }
}

std::chrono::microseconds Exchange::since_start() const {
  return duration_cast<microseconds>(Steady::now() - started_);
}

}  // namespace holdfast::client
