// holdfast::Client: loop threads, one pool per loop, synchronous and asynchronous requests,
// restarted in a forked child (docs/fork.md).
#include "holdfast/client.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/process.h"
#include "client/pool.h"
#include "event/loop.h"
#include "holdfast/error.h"
#include "holdfast/init.h"
#include "holdfast/url.h"
#include "tls/context.h"

namespace holdfast {
namespace {

constexpr std::uint64_t kNotStarted = std::numeric_limits<std::uint64_t>::max();
// How long fork() waits for the loop threads to finish their current task. A loop that does not
// park in time (a callback blocking) makes the child leak, not clean up, the inherited state.
constexpr auto kParkTimeout = std::chrono::seconds(2);

// The loop threads of one process: one Loop, thread and Pool each.
struct Engine {
  std::vector<std::unique_ptr<event::Loop>> loops;
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<client::Pool>> pools;
};

// Loop threads parked in a task while fork() runs, so the child inherits pools between tasks.
struct Park {
  std::mutex mutex;
  std::condition_variable cv;
  std::size_t parked = 0;
  bool released = false;
};

// What a forked child inherited and must neither use nor destroy: kept reachable (so leak
// checkers see it as owned) in a push-only list, since a mutex could itself have been inherited
// locked. Never freed.
struct Inherited {
  Engine* engine = nullptr;
  std::mutex* mutex = nullptr;
  std::shared_ptr<Park> park;
  Inherited* next = nullptr;
};
std::atomic<Inherited*> g_inherited{nullptr};

void keep_inherited(Inherited* node) {
  node->next = g_inherited.load(std::memory_order_relaxed);
  while (!g_inherited.compare_exchange_weak(node->next, node, std::memory_order_release,
                                            std::memory_order_relaxed)) {
  }
}

}  // namespace

struct Client::Impl final : base::ForkParticipant {
  explicit Impl(ClientOptions o) : options(std::move(o)) { base::register_fork_participant(this); }

  ~Impl() {
    base::unregister_fork_participant(this);
    delete start_mutex;  // no other thread can use it now
    if (!engine) {
      return;
    }
    if (engine_generation != base::fork_generation()) {
      abandon_inherited();  // the parent's engine: no threads here, sockets shared
      return;
    }
    // Close every connection on its own loop thread, then stop the threads.
    for (std::size_t i = 0; i < engine->pools.size(); ++i) {
      run_on(i, [pool = engine->pools[i].get()] { pool->close_all(); });
    }
    stop_and_join();
    engine->pools.clear();
  }

  // Runs `fn` on loop i and waits for it.
  void run_on(std::size_t i, std::function<void()> fn) {
    std::promise<void> done;
    engine->loops[i]->post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  void stop_and_join() {
    for (std::size_t i = 0; i < engine->threads.size(); ++i) {
      engine->loops[i]->stop();
      engine->threads[i].join();
    }
    engine->threads.clear();
  }

  // Starts the loops and pools on first use in this process (lazily, so a Client costs nothing
  // until used; again in a forked child, whose loop threads did not survive fork()).
  Result<void> ensure_started() {
    const std::uint64_t generation = base::fork_generation();
    if (started_generation.load(std::memory_order_acquire) != generation) {
      const std::lock_guard<std::mutex> lock(*start_mutex);
      if (started_generation.load(std::memory_order_relaxed) != generation) {
        if (engine) {
          abandon_inherited();
        }
        start_error = start();
        engine_generation = generation;
        started_generation.store(generation, std::memory_order_release);
      }
    }
    if (start_error) {
      return fail(start_error);
    }
    return {};
  }

  std::error_code start() {
    if (auto r = init(); !r) {
      return r.error();
    }
    ClientTlsOptions tls = options.tls;
    if (options.force_http1) {
      std::erase(tls.alpn, "h2");
    }
    auto ctx = tls::Context::shared_client(tls);
    if (!ctx) {
      return ctx.error();
    }
    engine = std::make_unique<Engine>();
    const std::size_t n = std::max<std::size_t>(1, options.threads);
    for (std::size_t i = 0; i < n; ++i) {
      auto loop = event::Loop::create();
      if (!loop) {
        stop_and_join();
        engine.reset();
        return loop.error();
      }
      engine->loops.push_back(std::move(*loop));
      engine->threads.emplace_back([l = engine->loops.back().get()] { l->run(); });
    }
    // Limits are enforced per loop: split them so that the client as a whole keeps them.
    ClientOptions per_loop = options;
    per_loop.pool.max_per_origin = std::max<std::size_t>(1, options.pool.max_per_origin / n);
    per_loop.pool.max_total = std::max<std::size_t>(1, options.pool.max_total / n);
    std::error_code err;
    for (std::size_t i = 0; i < n; ++i) {
      engine->pools.push_back(
          std::make_unique<client::Pool>(*engine->loops[i], per_loop, *ctx, stats));
      run_on(i, [&, pool = engine->pools.back().get()] {
        if (auto r = pool->open(); !r && !err) {
          err = r.error();
        }
      });
    }
    return err;
  }

  // In a forked child: drops the engine inherited from the parent without touching anything the
  // parent still uses. Sockets are closed silently (Pool::abandon_all), each loop's epoll fd and
  // eventfd are closed by ~Loop (which calls no epoll_ctl), and the pools, threads' handles and
  // exchanges are leaked: their destructors would write to sockets, call back the parent's
  // callers or join threads that do not exist here.
  void abandon_inherited() {
    auto* node = new Inherited{
        .engine = engine.release(), .mutex = nullptr, .park = nullptr, .next = nullptr};
    if (inherited_consistent) {
      for (auto& pool : node->engine->pools) {
        pool->abandon_all();
      }
      node->engine->loops.clear();
    }
    // Inconsistent (a loop did not park before fork): everything is kept, descriptors included.
    keep_inherited(node);
    inherited_consistent = true;
  }

  // The engine started in this process, or null (not started yet, or inherited through fork()).
  Engine* current_engine() const {
    if (started_generation.load(std::memory_order_acquire) != base::fork_generation()) {
      return nullptr;
    }
    return engine.get();
  }

  bool on_own_loop_thread() const {
    const Engine* e = current_engine();
    if (e == nullptr) {
      return false;
    }
    for (const auto& loop : e->loops) {
      if (loop->is_in_loop_thread()) {
        return true;
      }
    }
    return false;
  }

  // ---- base::ForkParticipant ----

  void before_fork() override {
    start_mutex->lock();
    if (!engine || engine_generation != base::fork_generation()) {
      return;
    }
    park = std::make_shared<Park>();
    std::size_t expected = 0;
    for (auto& loop : engine->loops) {
      if (loop->is_in_loop_thread()) {
        continue;  // fork() called from this client's own callback: unsupported (docs/fork.md)
      }
      ++expected;
      loop->post([p = park] {
        std::unique_lock<std::mutex> lock(p->mutex);
        ++p->parked;
        p->cv.notify_all();
        p->cv.wait(lock, [&] { return p->released; });
      });
    }
    std::unique_lock<std::mutex> lock(park->mutex);
    parked_all = park->cv.wait_for(lock, kParkTimeout, [&] { return park->parked == expected; }) &&
                 expected == engine->loops.size();
  }

  void after_fork_parent() override {
    if (park) {
      {
        const std::lock_guard<std::mutex> lock(park->mutex);
        park->released = true;
      }
      park->cv.notify_all();
      park.reset();
    }
    start_mutex->unlock();
  }

  void after_fork_child() override {
    // Both the start mutex and the park's mutex and condition variable were locked or waited on
    // by threads that do not exist here: leak them (destroying a condition variable with waiters
    // blocks in glibc) and start from fresh ones.
    auto* node = new Inherited{
        .engine = nullptr, .mutex = start_mutex, .park = std::move(park), .next = nullptr};
    keep_inherited(node);
    start_mutex = new std::mutex;
    if (node->park) {
      inherited_consistent = parked_all;
    }
  }

  ClientOptions options;
  std::mutex* start_mutex = new std::mutex;  // never freed: leaked and replaced in a child
  std::atomic<std::uint64_t> started_generation{kNotStarted};
  std::uint64_t engine_generation = kNotStarted;
  std::error_code start_error;
  std::unique_ptr<Engine> engine;
  std::atomic<std::size_t> next_pool{0};
  client::SharedStats stats;
  std::shared_ptr<Park> park;        // set between before_fork and after_fork_*
  bool parked_all = false;           // every loop thread was parked when fork() ran
  bool inherited_consistent = true;  // in a child: the inherited pools may be walked
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
  auto& pools = impl_->engine->pools;
  const std::size_t i = impl_->next_pool.fetch_add(1, std::memory_order_relaxed) % pools.size();
  client::Pool* pool = pools[i].get();
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
               .tls_resumptions = s.tls_resumptions.load(),
               .pipelined = s.pipelined.load()};
}

void Client::close_idle_connections() {
  Engine* e = impl_->current_engine();
  if (e == nullptr) {
    return;  // not started in this process: nothing of ours is idle
  }
  for (std::size_t i = 0; i < e->pools.size(); ++i) {
    impl_->run_on(i, [pool = e->pools[i].get()] { pool->close_idle(); });
  }
}

}  // namespace holdfast
