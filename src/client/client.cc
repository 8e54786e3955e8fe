// holdfast::Client: loop threads, one pool per loop, synchronous and asynchronous requests.
#include "holdfast/client.h"

#include <atomic>
#include <future>
#include <mutex>
#include <utility>
#include <vector>

#include "client/pool.h"
#include "event/loop.h"
#include "event/loop_group.h"
#include "holdfast/error.h"
#include "holdfast/init.h"
#include "holdfast/url.h"
#include "tls/context.h"

namespace holdfast {

struct Client::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)) {}

  ~Impl() {
    if (!group) {
      return;
    }
    // Close every connection on its own loop thread, then stop the threads.
    for (std::size_t i = 0; i < pools.size(); ++i) {
      run_on(i, [pool = pools[i].get()] { pool->close_all(); });
    }
    group->stop_and_join();
    pools.clear();
  }

  // Runs `fn` on loop i and waits for it.
  void run_on(std::size_t i, std::function<void()> fn) {
    std::promise<void> done;
    group->loop(i).post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // Starts the loops and pools on first use (lazily, so a Client costs nothing until used).
  Result<void> ensure_started() {
    std::call_once(started, [this] { start_error = start(); });
    if (start_error) {
      return fail(start_error);
    }
    return {};
  }

  std::error_code start() {
    if (auto r = init(); !r) {
      return r.error();
    }
    auto ctx = tls::Context::shared_client(options.tls);
    if (!ctx) {
      return ctx.error();
    }
    auto g = event::LoopGroup::start(std::max<std::size_t>(1, options.threads));
    if (!g) {
      return g.error();
    }
    group = std::move(*g);
    // Limits are enforced per loop: split them so that the client as a whole keeps them.
    ClientOptions per_loop = options;
    const std::size_t n = group->size();
    per_loop.pool.max_per_origin = std::max<std::size_t>(1, options.pool.max_per_origin / n);
    per_loop.pool.max_total = std::max<std::size_t>(1, options.pool.max_total / n);
    std::error_code err;
    for (std::size_t i = 0; i < n; ++i) {
      pools.push_back(std::make_unique<client::Pool>(group->loop(i), per_loop, *ctx, stats));
      run_on(i, [&, pool = pools.back().get()] {
        if (auto r = pool->open(); !r && !err) {
          err = r.error();
        }
      });
    }
    return err;
  }

  bool on_own_loop_thread() const {
    if (!group) {
      return false;
    }
    for (std::size_t i = 0; i < group->size(); ++i) {
      if (group->loop(i).is_in_loop_thread()) {
        return true;
      }
    }
    return false;
  }

  ClientOptions options;
  std::once_flag started;
  std::error_code start_error;
  std::unique_ptr<event::LoopGroup> group;
  std::vector<std::unique_ptr<client::Pool>> pools;
  std::atomic<std::size_t> next_pool{0};
  client::SharedStats stats;
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() = default;

void Client::request_async(Request request, RequestOptions options, Callback on_done) {
  if (auto r = impl_->ensure_started(); !r) {
    on_done(fail(r.error()));
    return;
  }
  auto url = parse_url(request.url);
  if (!url) {
    on_done(fail(url.error()));
    return;
  }
  const std::size_t i = impl_->next_pool.fetch_add(1, std::memory_order_relaxed) %
                        impl_->pools.size();
  client::Pool* pool = impl_->pools[i].get();
  pool->loop().post([pool, url = std::move(*url), request = std::move(request),
                     options = std::move(options), on_done = std::move(on_done)]() mutable {
    pool->adopt(std::make_unique<client::Exchange>(*pool, std::move(url), std::move(request),
                                                   std::move(options), std::move(on_done)));
  });
}

Result<Response> Client::request(Request request, const RequestOptions& options) {
  if (impl_->on_own_loop_thread()) {
    return fail(Errc::invalid_argument);  // waiting here would block the loop that must answer
  }
  std::promise<Result<Response>> promise;
  auto future = promise.get_future();
  request_async(std::move(request), options,
                [&promise](Result<Response> r) { promise.set_value(std::move(r)); });
  return future.get();
}

Result<Response> Client::get(std::string_view url) {
  Request r;
  r.url = std::string(url);
  return request(std::move(r));
}

Client::Stats Client::stats() const {
  const auto& s = impl_->stats;
  return Stats{.connections_opened = s.connections_opened.load(),
               .requests_sent = s.requests_sent.load(),
               .connection_reuses = s.connection_reuses.load(),
               .retries = s.retries.load(),
               .tls_resumptions = s.tls_resumptions.load()};
}

void Client::close_idle_connections() {
  if (!impl_->group) {
    return;
  }
  for (std::size_t i = 0; i < impl_->pools.size(); ++i) {
    impl_->run_on(i, [pool = impl_->pools[i].get()] { pool->close_idle(); });
  }
}

}  // namespace holdfast
