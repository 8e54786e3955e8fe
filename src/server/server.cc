// holdfast::Server: one listening socket accepted on loop 0, connections spread over the loops.
#include "holdfast/server.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <future>
#include <mutex>
#include <utility>
#include <vector>

#include "event/loop_group.h"
#include "holdfast/error.h"
#include "http/server_context.h"
#include "net/acceptor.h"
#include "net/socket.h"
#include "tls/context.h"

namespace holdfast {

struct Server::Impl {
  http::ServerConfig config;
  std::size_t max_connections = 0;
  std::unique_ptr<event::LoopGroup> group;
  std::vector<std::unique_ptr<http::ServerLoopContext>> contexts;
  std::unique_ptr<net::Acceptor> acceptor;  // loop 0 only
  net::SocketAddress bound;
  std::size_t next_loop = 0;  // loop 0 only

  std::mutex mutex;
  std::condition_variable all_closed;
  std::atomic<bool> shutting_down{false};
  std::atomic<bool> acceptor_paused{false};  // paused for max_connections
  bool stopped = false;                      // guarded by mutex

  event::Loop& loop(std::size_t i) { return group->loop(i); }

  // Runs `fn` on loop `i` and waits for it. Must not be called from a loop thread of the server.
  template <typename Fn>
  void run_and_wait(std::size_t i, Fn fn) {
    std::promise<void> done;
    auto finished = done.get_future();
    loop(i).post([&] {
      fn();
      done.set_value();
    });
    finished.wait();
  }

  bool on_a_loop_thread() {
    for (std::size_t i = 0; i < group->size(); ++i) {
      if (loop(i).is_in_loop_thread()) {
        return true;
      }
    }
    return false;
  }

  void on_accept(net::Fd fd, const net::SocketAddress& peer);
  void on_connection_closed();
  Result<void> start_acceptor(net::Fd listen_fd, const SocketOptions& socket);
};

void Server::Impl::on_accept(net::Fd fd, const net::SocketAddress& peer) {
  config.counters.connections_accepted.fetch_add(1, std::memory_order_relaxed);
  const auto open = config.counters.connections_open.fetch_add(1, std::memory_order_relaxed) + 1;
  if (max_connections > 0 && open >= max_connections) {
    // Further connections wait in the kernel's backlog until one closes.
    acceptor->pause();
    acceptor_paused.store(true);
  }
  // Round robin from the one acceptor: even spread however few connections there are (unlike
  // SO_REUSEPORT's hash), and a single socket to close at shutdown (docs/server.md).
  const std::size_t i = next_loop++ % contexts.size();
  if (i == 0) {
    contexts[0]->adopt(std::move(fd), peer);
    return;
  }
  // std::function needs a copyable callable: the descriptor travels in a shared holder, which
  // closes it if the task is dropped (server stopping).
  auto holder = std::make_shared<net::Fd>(std::move(fd));
  http::ServerLoopContext* context = contexts[i].get();
  loop(i).post([context, holder, peer] { context->adopt(std::move(*holder), peer); });
}

void Server::Impl::on_connection_closed() {
  if (max_connections > 0 && acceptor_paused.load() && !shutting_down.load() &&
      config.counters.connections_open.load() < max_connections) {
    acceptor_paused.store(false);
    contexts[0]->handle()->post([this] {
      if (acceptor && !shutting_down.load()) {
        acceptor->resume();
      }
    });
  }
  if (shutting_down.load() && config.counters.connections_open.load() == 0) {
    std::lock_guard lock(mutex);
    all_closed.notify_all();
  }
}

Result<void> Server::Impl::start_acceptor(net::Fd listen_fd, const SocketOptions& socket) {
  // The acceptor watches loop 0's epoll: create it on that thread.
  Result<void> result;
  run_and_wait(0, [&] {
    auto a = net::Acceptor::create(
        loop(0), std::move(listen_fd), socket,
        [this](net::Fd fd, const net::SocketAddress& peer) { on_accept(std::move(fd), peer); });
    if (!a) {
      result = fail(a.error());
      return;
    }
    acceptor = std::move(*a);
  });
  return result;
}

namespace {

// Checks that `owned` (ServerOptions::listen_fd) listens, and makes it non-blocking.
Result<net::Fd> adopt_listening_socket(net::Fd owned) {
  int listening = 0;
  socklen_t length = sizeof listening;
  if (::getsockopt(owned.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 ||
      listening == 0) {
    return fail(Errc::invalid_argument);
  }
  const int flags = ::fcntl(owned.get(), F_GETFL);
  if (flags < 0 || ::fcntl(owned.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return fail(std::error_code(errno, std::system_category()));
  }
  return owned;
}

// The socket to accept on: the one given in options.listen_fd, or a new one bound as configured.
Result<net::Fd> listening_socket(const ServerOptions& options, net::Fd given) {
  if (given.get() >= 0) {
    return adopt_listening_socket(std::move(given));
  }
  auto address = net::SocketAddress::parse(options.bind, options.port);
  if (!address) {
    return fail(address.error());
  }
  return net::listen_tcp(*address, net::ListenOptions{4096, options.reuse_port}, options.socket);
}

}  // namespace

Result<ListeningSocket> listen_tcp_socket(const std::string& bind, std::uint16_t port,
                                          bool reuse_port) {
  auto address = net::SocketAddress::parse(bind, port);
  if (!address) {
    return fail(address.error());
  }
  auto fd = net::listen_tcp(*address, net::ListenOptions{4096, reuse_port}, SocketOptions{});
  if (!fd) {
    return fail(fd.error());
  }
  auto local = net::local_address(fd->get());
  if (!local) {
    return fail(local.error());
  }
  return ListeningSocket{fd->release(), local->port()};
}

Result<std::unique_ptr<Server>> Server::start(ServerOptions options, Handler handler) {
  // Owned from here on, whatever fails next (server.h).
  net::Fd given(options.listen_fd >= 0 ? options.listen_fd : -1);
  if (!handler) {
    return fail(Errc::invalid_argument);
  }
  auto impl = std::make_unique<Impl>();
  impl->config.timeouts = options.timeouts;
  impl->config.limits = options.limits;
  impl->config.server_header = options.server_header;
  impl->config.handler = std::move(handler);
  impl->config.stream_body = std::move(options.stream_body);
  impl->config.h2c_prior_knowledge = options.h2c_prior_knowledge;
  impl->max_connections = options.limits.max_connections;
  if (options.tls) {
    auto ctx = tls::Context::server(*options.tls);
    if (!ctx) {
      return fail(ctx.error());
    }
    impl->config.tls = std::move(*ctx);
  }
  auto listen_fd = listening_socket(options, std::move(given));
  if (!listen_fd) {
    return fail(listen_fd.error());
  }
  auto bound = net::local_address(listen_fd->get());
  if (!bound) {
    return fail(bound.error());
  }
  impl->bound = *bound;
  auto group = event::LoopGroup::start(std::max<std::size_t>(1, options.threads));
  if (!group) {
    return fail(group.error());
  }
  impl->group = std::move(*group);
  for (std::size_t i = 0; i < impl->group->size(); ++i) {
    impl->contexts.push_back(
        std::make_unique<http::ServerLoopContext>(impl->loop(i), impl->config));
  }
  Impl* raw = impl.get();
  impl->config.on_connection_closed = [raw] { raw->on_connection_closed(); };
  auto started = impl->start_acceptor(std::move(*listen_fd), options.socket);
  std::unique_ptr<Server> server(new Server(std::move(impl)));
  if (!started) {
    return fail(started.error());  // ~Server stops the loops
  }
  return server;
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { shutdown(std::chrono::milliseconds{0}); }

void Server::shutdown(std::chrono::milliseconds grace) {
  Impl& s = *impl_;
  if (!s.group) {
    return;
  }
  if (s.on_a_loop_thread()) {
    // Called from a handler: waiting here would deadlock the loop. Stop accepting and drain
    // now; the rest happens when the Server is destroyed (which must be on another thread).
    if (!s.shutting_down.exchange(true)) {
      for (std::size_t i = 0; i < s.contexts.size(); ++i) {
        s.loop(i).post([&s, i] {
          if (i == 0) {
            s.acceptor.reset();
          }
          s.contexts[i]->drain();
        });
      }
    }
    return;
  }
  {
    std::lock_guard lock(s.mutex);
    if (s.stopped) {
      return;
    }
    s.stopped = true;
  }
  s.shutting_down.store(true);
  const std::size_t n = s.contexts.size();
  // 1. Stop accepting: the listening socket closes, new connections are refused by the kernel.
  s.run_and_wait(0, [&s] { s.acceptor.reset(); });
  // 2. Idle connections close now; busy ones after their current requests.
  for (std::size_t i = 0; i < n; ++i) {
    s.run_and_wait(i, [&s, i] { s.contexts[i]->drain(); });
  }
  // 3. Wait for them, up to the grace period.
  {
    std::unique_lock lock(s.mutex);
    s.all_closed.wait_for(lock, grace,
                          [&s] { return s.config.counters.connections_open.load() == 0; });
  }
  // 4. Close what is left, then stop the loops; writers held by other threads become no-ops.
  for (std::size_t i = 0; i < n; ++i) {
    s.run_and_wait(i, [&s, i] { s.contexts[i]->close_all(); });
    s.contexts[i]->handle()->detach();
  }
  s.group->stop_and_join();
  s.contexts.clear();
  s.group.reset();
}

std::uint16_t Server::port() const { return impl_->bound.port(); }

std::string Server::address() const { return impl_->bound.to_string(); }

Server::Stats Server::stats() const {
  const auto& c = impl_->config.counters;
  Stats out;
  out.connections_accepted = c.connections_accepted.load(std::memory_order_relaxed);
  out.connections_open = c.connections_open.load(std::memory_order_relaxed);
  out.requests = c.requests.load(std::memory_order_relaxed);
  out.tls_handshakes = c.tls_handshakes.load(std::memory_order_relaxed);
  out.tls_resumptions = c.tls_resumptions.load(std::memory_order_relaxed);
  out.protocol_errors = c.protocol_errors.load(std::memory_order_relaxed);
  return out;
}

}  // namespace holdfast
