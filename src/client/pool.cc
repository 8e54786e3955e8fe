// The client's per-loop connection pool: origins, idle connections, waiting exchanges, limits.
#include "client/pool.h"

#include <algorithm>
#include <utility>

#include "base/slab.h"
#include "holdfast/error.h"
#include "http/h2_client_connection.h"
#include "transport/transport.h"

namespace holdfast::client {

struct Pool::Origin {
  Url url;                        // scheme, host, port of the origin (target unused)
  std::vector<Pooled*> idle;      // most recently used last: reuse is LIFO (warmest first)
  std::deque<Exchange*> waiting;  // exchanges waiting for a connection, in arrival order
  std::size_t open = 0;           // connections open or being opened
  std::size_t connecting = 0;     // of those, not yet ready for a first request
  std::vector<Pooled*> shared;    // HTTP/2 connections: several exchanges each
  bool http1_only = false;        // a handshake chose HTTP/1.1: stop waiting for multiplexing
  bool pipelining = false;        // listed in PoolOptions::pipeline_origins, depth > 1
  std::vector<Pooled*> http1;     // with pipelining: the HTTP/1.1 connections that are up
};

struct Pool::Pooled : base::SlabAllocated<Pool::Pooled> {
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
      max_idle_per_origin_(options.pool.max_idle_per_origin) {
  if (options.pool.pipeline_depth <= 1) {
    return;
  }
  for (const std::string& text : options.pool.pipeline_origins) {
    auto url = parse_url(text);
    pipeline_origins_.insert(url ? url->origin() : text);
  }
}

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
    slot->pipelining = pipeline_origins_.contains(url.origin());
  }
  return *slot;
}

void Pool::acquire(Exchange* exchange) {
  if (closing_) {
    exchange->fail_with(make_error_code(Errc::shutting_down));
    return;
  }
  Origin& origin = origin_for(exchange->url());
  if (exchange->wants_fresh_connection() && may_multiplex(origin)) {
    origin.waiting.push_front(exchange);  // a retry goes first, on a connection of its own
    serve_waiting(origin);                // (the one it failed on takes no more streams)
    return;
  }
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

bool Pool::may_multiplex(const Origin& origin) const {
  if (origin.http1_only || options_.force_http1) {
    return false;
  }
  if (!origin.url.is_tls()) {
    return options_.h2c_prior_knowledge;
  }
  return std::find(options_.tls.alpn.begin(), options_.tls.alpn.end(), "h2") !=
         options_.tls.alpn.end();
}

bool Pool::serve_shared(Origin& origin) {
  bool has_room = false;
  for (std::size_t i = 0; i < origin.shared.size() && !origin.waiting.empty(); ++i) {
    Pooled* pooled = origin.shared[i];
    while (!origin.waiting.empty() && pooled->connection->can_take_request()) {
      pooled->idle_timer.cancel();
      Exchange* next = origin.waiting.front();
      origin.waiting.pop_front();
      stats_.connection_reuses.fetch_add(1, std::memory_order_relaxed);
      next->assign(pooled->connection.get(), nullptr);
    }
  }
  for (Pooled* pooled : origin.shared) {
    has_room = has_room || pooled->connection->can_take_request();
  }
  return has_room;
}

void Pool::serve_waiting(Origin& origin) {
  if (closing_) {
    return;
  }
  const bool room = serve_shared(origin);
  if (may_multiplex(origin)) {
    // One HTTP/2 connection at a time: the waiters share it once it is up, and a second one
    // opens only when every connection is at its stream limit.
    if (!origin.waiting.empty() && !room && origin.connecting == 0 &&
        origin.open < max_per_origin_ && open_total_ < max_total_) {
      open_connection(origin);
    }
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
  serve_pipelined(origin);
}

void Pool::serve_pipelined(Origin& origin) {
  bool progress = origin.pipelining;
  while (progress && origin.waiting.size() > origin.connecting) {
    progress = false;
    // By index: a start() that fails at once calls back into the pool.
    for (std::size_t i = 0; i < origin.http1.size() && origin.waiting.size() > origin.connecting;
         ++i) {
      Exchange* next = origin.waiting.front();
      if (next->wants_fresh_connection() || next->request().body_source) {
        return;  // a retry or a streamed body: it waits for a connection of its own, in order
      }
      http::ClientConnection* connection = origin.http1[i]->connection.get();
      if (connection->is_idle() || !connection->can_take_request()) {
        continue;
      }
      origin.waiting.pop_front();
      stats_.connection_reuses.fetch_add(1, std::memory_order_relaxed);
      stats_.pipelined.fetch_add(1, std::memory_order_relaxed);
      next->assign(connection, nullptr);
      progress = true;
    }
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
  http::ClientProtocolOptions protocol;
  protocol.offer_h2 = origin.url.is_tls() && may_multiplex(origin);
  protocol.h2c_prior_knowledge = !origin.url.is_tls() && may_multiplex(origin);
  protocol.max_streams = options_.pool.max_streams_per_connection;
  protocol.http1.pipeline_depth = origin.pipelining ? options_.pool.pipeline_depth : 0;
  pooled->connection = http::make_client_connection(std::move(*t), this, protocol);
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
  if (http::is_multiplexed(*connection)) {
    on_shared_ready(pooled, first);
    return;
  }
  on_http1_ready(pooled, first);
}

void Pool::on_http1_ready(Pooled& pooled, bool first) {
  Origin& origin = *pooled.origin;
  http::ClientConnection* connection = pooled.connection.get();
  // The server chose HTTP/1.1 where HTTP/2 was offered: the other waiters get connections of
  // their own (they waited for this one to be multiplexed).
  const bool learned_http1 = first && !origin.http1_only && may_multiplex(origin);
  if (learned_http1) {
    origin.http1_only = true;
  }
  if (first && origin.pipelining) {
    origin.http1.push_back(&pooled);
  }
  if (!connection->is_idle()) {
    serve_waiting(origin);  // a pipelined response completed: room for one more
    return;
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
  if (learned_http1 || origin.pipelining) {
    serve_waiting(origin);
  }
}

void Pool::on_shared_ready(Pooled& pooled, bool first) {
  Origin& origin = *pooled.origin;
  if (std::find(origin.shared.begin(), origin.shared.end(), &pooled) == origin.shared.end()) {
    origin.shared.push_back(&pooled);
  }
  bool first_assigned = !first;
  while (!origin.waiting.empty() && pooled.connection->can_take_request()) {
    pooled.idle_timer.cancel();
    Exchange* next = origin.waiting.front();
    origin.waiting.pop_front();
    if (first_assigned) {
      stats_.connection_reuses.fetch_add(1, std::memory_order_relaxed);
    }
    next->assign(pooled.connection.get(), first_assigned ? nullptr : &pooled.phases);
    first_assigned = true;
  }
  if (pooled.connection->is_idle() && options_.pool.idle_timeout.count() > 0) {
    pooled.idle_timer.arm(options_.pool.idle_timeout);
  }
  serve_waiting(origin);  // still waiters: past the stream limit, a second connection opens
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
  if (!pooled->connection->is_idle()) {
    return;  // a multiplexed connection that took streams again
  }
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
  std::erase(origin.shared, &pooled);
  std::erase(origin.http1, &pooled);
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
    for (Pooled* pooled : origin->shared) {
      if (pooled->connection->is_idle()) {
        idle.push_back(pooled);
      }
    }
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
  // One at a time: failing one may end others (the requests pipelined behind it on a connection).
  while (!exchanges_.empty()) {
    exchanges_.begin()->first->fail_with(make_error_code(Errc::cancelled));
  }
  for (auto& [raw, pooled] : connections_) {
    pooled->idle_timer.cancel();
    pooled->connection->close();
  }
  connections_.clear();
  graveyard_.clear();
  for (auto& [key, origin] : origins_) {
    origin->idle.clear();
    origin->shared.clear();
    origin->http1.clear();
    origin->waiting.clear();
    origin->open = origin->connecting = 0;
  }
  open_total_ = 0;
  resolver_.reset();
}

}  // namespace holdfast::client
