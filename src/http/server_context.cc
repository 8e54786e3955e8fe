// ServerLoopContext, LoopHandle and DateCache: the per-loop side of a server.
#include "http/server_context.h"

#include <cstdio>
#include <ctime>
#include <utility>

#include "http/h2_server_connection.h"
#include "http/server_connection.h"
#include "transport/transport.h"

namespace holdfast::http {
namespace {

// The intrusive lists of connections (HTTP/1.1 and HTTP/2 alike: prev_link / next_link).
template <typename Connection>
void push_front(Connection*& head, Connection* connection) {
  connection->prev_link = nullptr;
  connection->next_link = head;
  if (head != nullptr) {
    head->prev_link = connection;
  }
  head = connection;
}

template <typename Connection>
void unlink_from(Connection*& head, Connection* connection) {
  if (connection->prev_link != nullptr) {
    connection->prev_link->next_link = connection->next_link;
  } else {
    head = connection->next_link;
  }
  if (connection->next_link != nullptr) {
    connection->next_link->prev_link = connection->prev_link;
  }
  connection->prev_link = nullptr;
  connection->next_link = nullptr;
}

template <typename Connection>
void delete_all(Connection*& head) {
  while (head != nullptr) {
    Connection* c = head;
    head = c->next_link;
    delete c;
  }
}

}  // namespace

bool LoopHandle::post(std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  if (loop_ == nullptr) {
    return false;
  }
  loop_->post(std::move(fn));
  return true;
}

bool LoopHandle::is_in_loop_thread() {
  std::lock_guard lock(mutex_);
  return loop_ != nullptr && loop_->is_in_loop_thread();
}

void LoopHandle::detach() {
  std::lock_guard lock(mutex_);
  loop_ = nullptr;
}

std::string_view DateCache::get() {
  // The coarse clock is a vDSO read: checking it per response is cheaper than a timer per loop,
  // and the text is formatted only when the second changes.
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != second_) {
    second_ = ts.tv_sec;
    tm t{};
    gmtime_r(&second_, &t);
    // IMF-fixdate (RFC 9110 §5.6.7) with fixed English names: strftime would follow the locale.
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const int n = std::snprintf(text_, sizeof text_, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                                kDays[t.tm_wday % 7], t.tm_mday, kMonths[t.tm_mon % 12],
                                t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec);
    size_ = n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  return {text_, size_};
}

ServerLoopContext::ServerLoopContext(event::Loop& loop, ServerConfig& config)
    : loop_(loop), config_(config), handle_(std::make_shared<LoopHandle>(&loop)) {}

ServerLoopContext::~ServerLoopContext() {
  close_all();
  reap();
}

void ServerLoopContext::adopt(net::Fd fd, const net::SocketAddress& peer) {
  if (draining_) {
    fd.reset();
    config_.counters.connections_open.fetch_sub(1, std::memory_order_relaxed);
    if (config_.on_connection_closed) {
      config_.on_connection_closed();
    }
    return;
  }
  transport::AcceptParams params;
  params.tls = config_.tls;
  params.handshake_timeout = config_.timeouts.tls_handshake;
  if (!config_.tls && config_.h2c_prior_knowledge) {
    // RFC 9113 §3.3: prior knowledge, the client preface is the first thing on the wire.
    auto* h2 = new H2ServerConnection(*this);
    auto transport = transport::accept(loop_, std::move(fd), peer, params, h2);
    if (transport) {
      link_http2(std::move(*transport), h2);
      return;
    }
    delete h2;
    config_.counters.connections_open.fetch_sub(1, std::memory_order_relaxed);
    if (config_.on_connection_closed) {
      config_.on_connection_closed();
    }
    return;
  }
  auto* connection = new ServerConnection(*this);
  auto transport = transport::accept(loop_, std::move(fd), peer, params, connection);
  if (!transport) {
    delete connection;
    config_.counters.connections_open.fetch_sub(1, std::memory_order_relaxed);
    if (config_.on_connection_closed) {
      config_.on_connection_closed();
    }
    return;
  }
  push_front(live_, connection);
  connection->start(std::move(*transport));
}

void ServerLoopContext::link_http2(std::unique_ptr<transport::Transport> transport,
                                   H2ServerConnection* connection) {
  push_front(live_h2_, connection);
  connection->start(std::move(transport));
}

void ServerLoopContext::hand_over_to_http2(ServerConnection* from,
                                           std::unique_ptr<transport::Transport> transport) {
  unlink_from(live_, from);
  push_front(retired_, from);
  schedule_reap();
  link_http2(std::move(transport), new H2ServerConnection(*this));
}

void ServerLoopContext::drain() {
  draining_ = true;
  for (H2ServerConnection* c = live_h2_; c != nullptr;) {
    H2ServerConnection* next = c->next_link;  // drain() may retire c (unlinking it)
    c->drain();
    c = next;
  }
  for (ServerConnection* c = live_; c != nullptr;) {
    ServerConnection* next = c->next_link;  // drain() may retire c (unlinking it)
    c->drain();
    c = next;
  }
}

void ServerLoopContext::close_all() {
  draining_ = true;
  while (live_ != nullptr) {
    live_->close();
  }
  while (live_h2_ != nullptr) {
    live_h2_->close();
  }
}

void ServerLoopContext::schedule_reap() {
  if (!reap_posted_) {
    reap_posted_ = true;
    loop_.post([this] { reap(); });
  }
}

void ServerLoopContext::retire(ServerConnection* connection) {
  unlink_from(live_, connection);
  push_front(retired_, connection);
  schedule_reap();
  config_.counters.connections_open.fetch_sub(1, std::memory_order_relaxed);
  if (config_.on_connection_closed) {
    config_.on_connection_closed();
  }
}

void ServerLoopContext::retire(H2ServerConnection* connection) {
  unlink_from(live_h2_, connection);
  push_front(retired_h2_, connection);
  schedule_reap();
  config_.counters.connections_open.fetch_sub(1, std::memory_order_relaxed);
  if (config_.on_connection_closed) {
    config_.on_connection_closed();
  }
}

void ServerLoopContext::reap() {
  reap_posted_ = false;
  delete_all(retired_);
  delete_all(retired_h2_);
}

}  // namespace holdfast::http
