// The client's per-loop connection pool: origins, idle connections, waiting exchanges, limits.
#include "client/pool.h"

#include <algorithm>
#include <utility>

#include "holdfast/error.h"
#include "transport/transport.h"

namespace holdfast::client {

struct Pool::Origin {
  Url url;                        // scheme, host, port of the origin (target unused)
  std::vector<Pooled*> idle;      // most recently used last: reuse is LIFO (warmest first)
  std::deque<Exchange*> waiting;  // exchanges waiting for a connection, in arrival order
  std::size_t open = 0;           // connections open or being opened
  std::size_t connecting = 0;     // of those, not yet ready for a first request
};

struct Pool::Pooled {
  Pooled(Pool& pool, Origin& o)
      : origin(&o), idle_timer(pool.loop().timers(), [&pool, this] { pool.expire_idle(this); }) {}
  Origin* origin;
  std::unique_ptr<http::ClientConnection> connection;
  event::Timer idle_timer;
  Exchange::ConnectionPhases phases;
  bool ready_once = false;
};

Pool::Pool(event::Loop& loop, const ClientOptions& options, std::shared_ptr<const tls::Context> tls,
           SharedStats& stats)
    : loop_(loop),
      options_(options),
      tls_(std::move(tls)),
      stats_(stats),
      max_per_origin_(std::max<std::size_t>(1, options.pool.max_per_origin)),
      max_total_(std::max<std::size_t>(1, options.pool.max_total)),
      max_idle_per_origin_(options.pool.max_idle_per_origin) {}

Pool::~Pool() = default;

Result<void> Pool::open() {
  net::ResolverOptions ro;
  ro.timeout = options_.timeouts.dns.count() > 0 ? options_.timeouts.dns : std::chrono::seconds(30);
  auto r = net::Resolver::create(loop_, ro);
  if (!r) {
    return fail(r.error());
  }
  resolver_ = std::move(*r);
  return {};
}

void Pool::adopt(std::unique_ptr<Exchange> exchange) {
  Exchange* raw = exchange.get();
  exchanges_.emplace(raw, std::move(exchange));
  raw->start();
}

void Pool::release(Exchange* exchange) {
  forget(exchange);
  exchanges_.erase(exchange);
}

Pool::Origin& Pool::origin_for(const Url& url) {
  auto& slot = origins_[url.origin()];
  if (!slot) {
    slot = std::make_unique<Origin>();
    slot->url = url;
  }
  return *slot;
}

void Pool::acquire(Exchange* exchange) {
  if (closing_) {
    exchange->fail_with(make_error_code(Errc::shutting_down));
    return;
  }
  Origin& origin = origin_for(exchange->url());
  if (exchange->wants_fresh_connection()) {
    origin.waiting.push_front(exchange);  // a retry goes first, on a new connection
    if (origin.open < max_per_origin_ + 1 && open_total_ < max_total_ + 1) {
      open_connection(origin);
    }
    return;
  }
  origin.waiting.push_back(exchange);
  serve_waiting(origin);
}

void Pool::forget(Exchange* exchange) {
  auto& origin = origin_for(exchange->url());
  auto it = std::find(origin.waiting.begin(), origin.waiting.end(), exchange);
  if (it != origin.waiting.end()) {
    origin.waiting.erase(it);
  }
}

void Pool::serve_waiting(Origin& origin) {
  if (closing_) {
    return;
  }
  while (!origin.waiting.empty() && !origin.idle.empty()) {
    Pooled* pooled = origin.idle.back();
    origin.idle.pop_back();
    pooled->idle_timer.cancel();
    if (!pooled->connection->check_alive()) {
      // check_alive() closed it without an owner callback: account for it here.
      on_connection_closed(pooled->connection.get(), {});
      continue;
    }
    Exchange* next = origin.waiting.front();
    origin.waiting.pop_front();
    stats_.connection_reuses.fetch_add(1, std::memory_order_relaxed);
    next->assign(pooled->connection.get(), nullptr);
  }
  // Open as many connections as there are waiters not already covered by one being opened.
  while (origin.waiting.size() > origin.connecting && origin.open < max_per_origin_ &&
         open_total_ < max_total_) {
    open_connection(origin);
  }
}

void Pool::open_connection(Origin& origin) {
  ++origin.open;
  ++origin.connecting;
  ++open_total_;
  const auto started = std::chrono::steady_clock::now();
  std::weak_ptr<bool> alive = alive_;
  resolver_->resolve(origin.url.host, origin.url.port,
                     [this, alive, &origin, started](Result<std::vector<net::SocketAddress>> r) {
                       if (!alive.expired()) {
                         on_resolved(origin, std::move(r), started);
                       }
                     });
}

void Pool::on_resolved(Origin& origin, Result<std::vector<net::SocketAddress>> addresses,
                       std::chrono::steady_clock::time_point started) {
  auto give_up = [&](std::error_code ec) {
    --origin.open;
    --origin.connecting;
    --open_total_;
    if (!origin.waiting.empty()) {
      Exchange* first = origin.waiting.front();
      origin.waiting.pop_front();
      first->fail_with(ec);
    }
    serve_waiting(origin);
  };
  if (!addresses || addresses->empty()) {
    give_up(addresses ? make_error_code(Errc::host_not_found) : addresses.error());
    return;
  }
  const auto resolved = std::chrono::steady_clock::now();
  transport::ConnectParams params;
  params.address = addresses->front();
  params.socket = options_.socket;
  params.tls = origin.url.is_tls() ? tls_ : nullptr;
  params.server_name = origin.url.host;
  params.session_key = options_.tls.session_resumption ? origin.url.origin() : std::string();
  params.connect_timeout = options_.timeouts.connect;
  params.handshake_timeout = options_.timeouts.tls_handshake;
  auto t = transport::connect(loop_, params, nullptr);
  if (!t) {
    give_up(t.error());
    return;
  }
  auto pooled = std::make_unique<Pooled>(*this, origin);
  pooled->phases = {started, resolved};
  pooled->connection = http::make_http1_client_connection(std::move(*t), this);
  stats_.connections_opened.fetch_add(1, std::memory_order_relaxed);
  connections_.emplace(pooled->connection.get(), std::move(pooled));
}

void Pool::on_connection_ready(http::ClientConnection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) {
    return;
  }
  Pooled& pooled = *it->second;
  Origin& origin = *pooled.origin;
  const bool first = !pooled.ready_once;
  if (first) {
    pooled.ready_once = true;
    --origin.connecting;
    if (connection->transport().info().tls_resumed) {
      stats_.tls_resumptions.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (origin.waiting.empty()) {
    park_idle(pooled);
    return;
  }
  Exchange* next = origin.waiting.front();
  origin.waiting.pop_front();
  if (!first) {
    stats_.connection_reuses.fetch_add(1, std::memory_order_relaxed);
  }
  next->assign(connection, first ? &pooled.phases : nullptr);
}

void Pool::park_idle(Pooled& pooled) {
  Origin& origin = *pooled.origin;
  if (origin.idle.size() >= max_idle_per_origin_) {
    pooled.connection->close();
    on_connection_closed(pooled.connection.get(), {});
    return;
  }
  origin.idle.push_back(&pooled);
  if (options_.pool.idle_timeout.count() > 0) {
    pooled.idle_timer.arm(options_.pool.idle_timeout);
  }
}

void Pool::expire_idle(Pooled* pooled) {
  pooled->connection->close();
  on_connection_closed(pooled->connection.get(), {});
}

void Pool::on_connection_closed(http::ClientConnection* connection, std::error_code ec) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) {
    return;
  }
  Pooled& pooled = *it->second;
  Origin& origin = *pooled.origin;
  pooled.idle_timer.cancel();
  std::erase(origin.idle, &pooled);
  --origin.open;
  --open_total_;
  if (!pooled.ready_once) {
    --origin.connecting;
    // The connection never came up: the first waiter hears why (connect refused, TLS failure).
    if (ec && !origin.waiting.empty()) {
      Exchange* first = origin.waiting.front();
      origin.waiting.pop_front();
      first->fail_with(ec);
    }
  }
  bury(connection);
  serve_waiting(origin);
}

void Pool::bury(http::ClientConnection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) {
    return;
  }
  // The connection may be on the stack (this is called from its callbacks): free it later.
  if (graveyard_.empty()) {
    std::weak_ptr<bool> alive = alive_;
    loop_.post([this, alive] {
      if (!alive.expired()) {
        graveyard_.clear();
      }
    });
  }
  graveyard_.push_back(std::move(it->second));
  connections_.erase(it);
}

void Pool::close_idle() {
  for (auto& [key, origin] : origins_) {
    auto idle = origin->idle;
    for (Pooled* pooled : idle) {
      pooled->connection->close();
      on_connection_closed(pooled->connection.get(), {});
    }
  }
}

void Pool::abandon_all() {
  closing_ = true;
  for (auto& [raw, pooled] : connections_) {
    pooled->connection->abandon();
  }
}

void Pool::close_all() {
  closing_ = true;
  std::vector<Exchange*> live;
  live.reserve(exchanges_.size());
  for (auto& [raw, owned] : exchanges_) {
    live.push_back(raw);
  }
  for (Exchange* ex : live) {
    ex->fail_with(make_error_code(Errc::cancelled));
  }
  for (auto& [raw, pooled] : connections_) {
    pooled->idle_timer.cancel();
    pooled->connection->close();
  }
  connections_.clear();
  graveyard_.clear();
  for (auto& [key, origin] : origins_) {
    origin->idle.clear();
    origin->waiting.clear();
    origin->open = origin->connecting = 0;
  }
  open_total_ = 0;
  resolver_.reset();
}

}  // namespace holdfast::client
