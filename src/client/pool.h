// The client's per-loop connection pool and the exchange (one request in flight) it serves.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/slab.h"
#include "event/loop.h"
#include "event/timer.h"
#include "holdfast/client.h"
#include "holdfast/url.h"
#include "http/client_connection.h"
#include "net/resolver.h"

namespace holdfast::tls {
class Context;
}

namespace holdfast::client {

class Pool;

/// Counters shared by every loop of one Client.
struct SharedStats {
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> requests_sent{0};
  std::atomic<std::uint64_t> connection_reuses{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> tls_resumptions{0};
  std::atomic<std::uint64_t> pipelined{0};
};

/// One request from start to callback: waits for a connection, runs on it, retries when that is
/// safe, enforces the response-header, idle-read and deadline timeouts. Owned by its Pool; it
/// deletes itself after calling back. Loop-thread only.
class Exchange final : public http::ExchangeHandler {
 public:
  Exchange(Pool& pool, Url url, Request request, RequestOptions options, Client::Callback done);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  void start();
  /// Ends the exchange with `ec` (used on shutdown and by the pool for connect failures).
  void fail_with(std::error_code ec);

  /// When a fresh connection's phases ended, for Timings.
  struct ConnectionPhases {
    std::chrono::steady_clock::time_point resolve_started;
    std::chrono::steady_clock::time_point resolved;
  };
  /// The pool's side: runs the exchange on `connection`. `phases` is null for a reused one.
  void assign(http::ClientConnection* connection, const ConnectionPhases* phases);
  [[nodiscard]] const Url& url() const { return url_; }
  [[nodiscard]] bool wants_fresh_connection() const { return attempts_ > 0; }
  [[nodiscard]] std::chrono::steady_clock::time_point started() const { return started_; }

  // ---- http::ExchangeHandler ----
  [[nodiscard]] const Request& request() const override { return request_; }
  [[nodiscard]] const std::string& target() const override { return url_.target; }
  [[nodiscard]] const std::string& host_header() const override { return host_header_; }
  void on_request_sent() override;
  void on_first_byte() override;
  void on_response_head(http::ResponseHead head) override;
  Result<void> on_response_body(std::span<const std::uint8_t> data) override;
  void on_response_complete() override;
  void on_exchange_error(std::error_code ec, const http::FailureFacts& facts) override;

 private:
  [[nodiscard]] bool may_retry(std::error_code ec, const http::FailureFacts& facts) const;
  void on_phase_timeout();
  void finish(Result<Response> result);
  std::chrono::microseconds since_start() const;

  Pool& pool_;
  Url url_;
  std::string host_header_;
  Request request_;
  RequestOptions options_;
  Client::Callback done_;
  ClientTimeouts timeouts_;
  Response response_;
  http::ClientConnection* connection_ = nullptr;
  std::chrono::steady_clock::time_point started_;
  event::Timer deadline_timer_;
  event::Timer phase_timer_;
  std::error_code phase_timeout_code_;
  int attempts_ = 0;
  bool head_seen_ = false;
};

/// Connections of one client on one loop, grouped by origin. Limits are per loop (a client with
/// N threads divides them; docs/architecture.md). Loop-thread only, except construction.
class Pool final : public http::ConnectionOwner {
 public:
  Pool(event::Loop& loop, const ClientOptions& options, std::shared_ptr<const tls::Context> tls,
       SharedStats& stats);
  ~Pool();

  /// Creates the resolver; call on the loop thread before use.
  Result<void> open();

  /// Queues the exchange for a connection of its origin; opens one when the limits allow.
  void acquire(Exchange* exchange);
  /// Removes a waiting exchange (it timed out or was cancelled before getting a connection).
  void forget(Exchange* exchange);

  /// Fails every exchange with Errc::cancelled and closes every connection (shutdown).
  void close_all();
  /// Closes the idle connections.
  void close_idle();
  /// Fork safety, in a child on the pool inherited from the parent: closes every connection's
  /// descriptor without a write, close_notify or shutdown() (Transport::abandon()), so the
  /// parent's connections are untouched, and refuses new work. The pool must then be leaked, not
  /// destroyed (its exchanges belong to the parent's callers; docs/fork.md).
  void abandon_all();

  void adopt(std::unique_ptr<Exchange> exchange);
  void release(Exchange* exchange);

  [[nodiscard]] event::Loop& loop() { return loop_; }
  [[nodiscard]] const ClientOptions& options() const { return options_; }
  [[nodiscard]] SharedStats& stats() { return stats_; }

  // ---- http::ConnectionOwner ----
  void on_connection_ready(http::ClientConnection* connection) override;
  void on_connection_closed(http::ClientConnection* connection, std::error_code ec) override;

 private:
  struct Origin;
  struct Pooled;

  Origin& origin_for(const Url& url);
  void open_connection(Origin& origin);
  void on_resolved(Origin& origin, Result<std::vector<net::SocketAddress>> addresses,
                   std::chrono::steady_clock::time_point started);
  void serve_waiting(Origin& origin);
  /// Assigns waiters to HTTP/2 connections with free streams; true if one has room left.
  bool serve_shared(Origin& origin);
  /// An HTTP/1.1 connection is up, idle again, or (pipelining) has room for one more request.
  void on_http1_ready(Pooled& pooled, bool first);
  /// An HTTP/2 connection is up or has a free stream: gives it waiters.
  void on_shared_ready(Pooled& pooled, bool first);
  /// HTTP/1.1 pipelining: gives waiters not covered by a connection being opened to busy
  /// connections with room, one per connection per round.
  void serve_pipelined(Origin& origin);
  /// True when connections to `origin` may speak HTTP/2 (then they are opened one at a time).
  [[nodiscard]] bool may_multiplex(const Origin& origin) const;
  void park_idle(Pooled& pooled);
  void expire_idle(Pooled* pooled);
  void bury(http::ClientConnection* connection);

  event::Loop& loop_;
  ClientOptions options_;
  std::shared_ptr<const tls::Context> tls_;
  SharedStats& stats_;
  std::unique_ptr<net::Resolver> resolver_;
  std::unordered_map<std::string, std::unique_ptr<Origin>> origins_;
  // Its nodes live as long as their connections: from the slab, beside them (issue 8).
  std::unordered_map<
      http::ClientConnection*, std::unique_ptr<Pooled>, std::hash<http::ClientConnection*>,
      std::equal_to<http::ClientConnection*>,
      base::SlabAllocator<std::pair<http::ClientConnection* const, std::unique_ptr<Pooled>>>>
      connections_;
  std::vector<std::unique_ptr<Pooled>> graveyard_;  // closed connections, freed from the loop
  std::unordered_map<Exchange*, std::unique_ptr<Exchange>> exchanges_;
  std::size_t open_total_ = 0;
  bool closing_ = false;
  std::size_t max_per_origin_;
  std::size_t max_total_;
  std::size_t max_idle_per_origin_;
  std::unordered_set<std::string> pipeline_origins_;  // Url::origin() form; empty: no pipelining
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace holdfast::client
