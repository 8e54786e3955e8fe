// ResponseWriter: a handler's handle on one exchange; calls from other threads go through post().
#include <utility>

#include "http/server_connection.h"
#include "http/server_context.h"
#include "http/server_exchange.h"

namespace holdfast {
namespace {

using http::ServerConnection;
using State = ResponseWriter::State;

// Runs `fn(connection, state)` on the exchange's loop: at once on that loop's thread, else
// posted (in call order). Does nothing once the connection (or the whole server) is gone.
template <typename Fn>
void run_on_loop(const std::shared_ptr<State>& state, Fn fn) {
  if (!state) {
    return;
  }
  if (state->loop->is_in_loop_thread()) {
    if (state->connection != nullptr) {
      fn(*state->connection, state);
    }
    return;
  }
  state->loop->post([state, fn = std::move(fn)]() mutable {
    if (state->connection != nullptr) {
      fn(*state->connection, state);
    }
  });
}

}  // namespace

void ResponseWriter::send(Response response) const {
  run_on_loop(state_, [response = std::move(response)](ServerConnection& c,
                                                       const std::shared_ptr<State>& s) mutable {
    c.send(*s, std::move(response));
  });
}

void ResponseWriter::start(int status, Headers headers) const {
  run_on_loop(state_, [status, headers = std::move(headers)](
                          ServerConnection& c, const std::shared_ptr<State>& s) mutable {
    c.start_stream(*s, status, std::move(headers));
  });
}

void ResponseWriter::write(std::string chunk) const {
  run_on_loop(state_, [chunk = std::move(chunk)](ServerConnection& c,
                                                 const std::shared_ptr<State>& s) mutable {
    c.write_chunk(*s, std::move(chunk));
  });
}

void ResponseWriter::finish() const {
  run_on_loop(state_,
              [](ServerConnection& c, const std::shared_ptr<State>& s) { c.finish_stream(*s); });
}

void ResponseWriter::after(std::chrono::milliseconds delay,
                           std::function<void(const ResponseWriter&)> fn) const {
  run_on_loop(state_, [delay, fn = std::move(fn)](ServerConnection& c,
                                                  const std::shared_ptr<State>& s) mutable {
    c.after(s, delay, std::move(fn));
  });
}

bool ResponseWriter::is_open() const {
  return state_ && state_->open.load(std::memory_order_relaxed);
}

}  // namespace holdfast
