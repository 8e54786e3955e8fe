// ResponseWriter: a handler's handle on one exchange; calls from other threads go through post().
#include <system_error>
#include <utility>

#include "holdfast/error.h"
#include "http/server_context.h"
#include "http/server_exchange.h"
#include "transport/transport.h"

namespace holdfast {
namespace {

using http::ExchangeOwner;
using State = ResponseWriter::State;

// Runs `fn(owner, state)` on the exchange's loop: at once on that loop's thread, else
// posted (in call order). Does nothing once the connection (or the whole server) is gone.
template <typename Fn>
void run_on_loop(const std::shared_ptr<State>& state, Fn fn) {
  if (!state) {
    return;
  }
  if (state->loop->is_in_loop_thread()) {
    if (state->owner != nullptr) {
      fn(*state->owner, state);
    }
    return;
  }
  state->loop->post([state, fn = std::move(fn)]() mutable {
    if (state->owner != nullptr) {
      fn(*state->owner, state);
    }
  });
}

}  // namespace

void ResponseWriter::send(Response response) const {
  run_on_loop(state_, [response = std::move(response)](ExchangeOwner& c,
                                                       const std::shared_ptr<State>& s) mutable {
    c.send(*s, std::move(response));
  });
}

void ResponseWriter::start(int status, Headers headers) const {
  run_on_loop(state_, [status, headers = std::move(headers)](
                          ExchangeOwner& c, const std::shared_ptr<State>& s) mutable {
    c.start_stream(*s, status, std::move(headers));
  });
}

void ResponseWriter::write(std::string chunk) const {
  run_on_loop(state_, [chunk = std::move(chunk)](ExchangeOwner& c,
                                                 const std::shared_ptr<State>& s) mutable {
    c.write_chunk(*s, std::move(chunk));
  });
}

void ResponseWriter::finish() const {
  run_on_loop(state_,
              [](ExchangeOwner& c, const std::shared_ptr<State>& s) { c.finish_stream(*s); });
}

void ResponseWriter::after(std::chrono::milliseconds delay,
                           std::function<void(const ResponseWriter&)> fn) const {
  run_on_loop(state_, [delay, fn = std::move(fn)](ExchangeOwner& c,
                                                  const std::shared_ptr<State>& s) mutable {
    c.after(s, delay, std::move(fn));
  });
}

void ResponseWriter::when_writable(std::function<void(const ResponseWriter&)> fn) const {
  run_on_loop(state_,
              [fn = std::move(fn)](ExchangeOwner& c, const std::shared_ptr<State>& s) mutable {
                c.when_writable(s, std::move(fn));
              });
}

void ResponseWriter::read_body(BodySink on_chunk, std::function<void(Result<void>)> on_end) const {
  run_on_loop(state_, [on_chunk = std::move(on_chunk), on_end = std::move(on_end)](
                          ExchangeOwner& c, const std::shared_ptr<State>& s) mutable {
    c.read_body(s, std::move(on_chunk), std::move(on_end));
  });
}

void ResponseWriter::reset(Http2Errc code) const {
  run_on_loop(state_,
              [code](ExchangeOwner& c, const std::shared_ptr<State>& s) { c.reset(*s, code); });
}

void ResponseWriter::request_tls_key_update(bool update_requested,
                                            std::function<void(Result<void>)> on_done) const {
  run_on_loop(state_, [update_requested, on_done = std::move(on_done)](
                          ExchangeOwner& c, const std::shared_ptr<State>&) {
    auto r = c.request_key_update(update_requested);
    if (on_done) {
      on_done(r);
    }
  });
}

bool ResponseWriter::is_open() const {
  return state_ && state_->open.load(std::memory_order_relaxed);
}

}  // namespace holdfast

namespace holdfast::http {

Result<void> key_update_on(transport::Transport* transport, bool update_requested) {
  if (transport == nullptr || !transport->is_connected()) {
    return fail(Errc::connection_closed);
  }
  // RFC 8446 §4.6.3: KeyUpdate exists in TLS 1.3 only (TLS 1.2 renegotiation is refused).
  if (transport->tls_record_path().empty() || transport->info().tls_version != "TLSv1.3") {
    return fail(std::make_error_code(std::errc::operation_not_supported));
  }
  transport->request_key_update(update_requested);
  return {};
}

}  // namespace holdfast::http
