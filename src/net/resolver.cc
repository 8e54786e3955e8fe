// Resolver: c-ares channel whose sockets and timeouts live on the event loop.
#include "net/resolver.h"

#include <ares.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <utility>

#include "holdfast/error.h"

namespace holdfast::net {
namespace {

bool library_ready() {
  static std::once_flag once;
  static int status = ARES_ENOTINITIALIZED;
  std::call_once(once, [] { status = ares_library_init(ARES_LIB_INIT_ALL); });
  return status == ARES_SUCCESS;
}

std::error_code map_status(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME: return make_error_code(Errc::host_not_found);
    case ARES_ETIMEOUT: return make_error_code(Errc::dns_timeout);
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION: return make_error_code(Errc::cancelled);
    default:  // ESERVFAIL, EREFUSED, ECONNREFUSED, EBADRESP, ENOMEM, ...
      return make_error_code(Errc::dns_failure);
  }
}

std::string lower_without_final_dot(std::string_view host) {
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_name_or_subdomain_of(const std::string& name, std::string_view zone) {
  if (name == zone) {
    return true;
  }
  return name.size() > zone.size() && name.ends_with(zone) &&
         name[name.size() - zone.size() - 1] == '.';
}

// IPv4 first: a dual-stack name is then tried over IPv4 before IPv6 by the connector.
std::vector<SocketAddress> collect(const ares_addrinfo* res, std::uint16_t port) {
  std::vector<SocketAddress> out;
  for (const ares_addrinfo_node* n = res != nullptr ? res->nodes : nullptr; n != nullptr;
       n = n->ai_next) {
    auto addr = SocketAddress::from_sockaddr(n->ai_addr, static_cast<socklen_t>(n->ai_addrlen));
    if (!addr) {
      continue;
    }
    addr->set_port(port);
    if (std::find(out.begin(), out.end(), *addr) == out.end()) {
      out.push_back(*addr);
    }
  }
  std::stable_partition(out.begin(), out.end(),
                        [](const SocketAddress& a) { return a.family() == AF_INET; });
  return out;
}

}  // namespace

// One resolution in flight. Owned by c-ares (its callback argument) until on_addrinfo runs.
struct Resolver::Query {
  Query(Resolver& r, Callback c, std::uint16_t p)
      : owner(r),
        cb(std::move(c)),
        port(p),
        deadline(r.loop_.timers(), [this] { on_deadline(); }) {}

  void on_deadline() {
    // c-ares keeps the query until its own tries end; the caller hears about it now.
    done = true;
    --owner.pending_;
    owner.complete(std::move(cb), fail(Errc::dns_timeout));
  }

  Resolver& owner;
  Callback cb;
  std::uint16_t port;
  event::Timer deadline;
  bool done = false;
};

// Forwards readiness of one c-ares socket to the Resolver.
class Resolver::SocketWatch final : public event::IoHandler {
 public:
  SocketWatch(Resolver& r, int fd) : owner_(r), fd_(fd) {}
  void on_io(std::uint32_t events) override { owner_.process(fd_, events); }

 private:
  Resolver& owner_;
  int fd_;
};

Result<std::unique_ptr<Resolver>> Resolver::create(event::Loop& loop, ResolverOptions options) {
  if (options.tries < 1 || options.timeout.count() < 1) {
    return fail(Errc::invalid_argument);
  }
  if (!library_ready()) {
    return fail(Errc::dns_failure);
  }
  std::unique_ptr<Resolver> r(new Resolver(loop, std::move(options)));
  HOLDFAST_TRY(r->init_channel());
  return r;
}

Resolver::Resolver(event::Loop& loop, ResolverOptions options)
    : loop_(loop),
      options_(std::move(options)),
      ares_timer_(loop.timers(),
                  [this] {
                    retired_.clear();
                    ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
                    reschedule();
                  }),
      alive_(std::make_shared<bool>(true)) {}

Result<void> Resolver::init_channel() {
  // c-ares doubles the timeout on each try: T + 2T + ... = T * (2^tries - 1) = options.timeout.
  const int tries = std::min(options_.tries, 10);
  const auto per_try = std::max<std::int64_t>(1, options_.timeout.count() / ((1 << tries) - 1));
  ares_options opts{};
  opts.timeout = static_cast<int>(std::min<std::int64_t>(per_try, 1 << 30));
  opts.tries = tries;
  opts.sock_state_cb = &Resolver::on_sock_state;
  opts.sock_state_cb_data = this;
  const int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
  ares_channel channel = nullptr;
  if (ares_init_options(&channel, &opts, mask) != ARES_SUCCESS) {
    return fail(Errc::dns_failure);
  }
  channel_ = channel;
  if (!options_.servers.empty()) {
    std::string csv;
    for (const auto& s : options_.servers) {
      csv += (csv.empty() ? "" : ",") + s.to_string();
    }
    if (ares_set_servers_ports_csv(channel_, csv.c_str()) != ARES_SUCCESS) {
      return fail(Errc::invalid_argument);
    }
  }
  return {};
}

Resolver::~Resolver() {
  *alive_ = false;
  destroying_ = true;
  ares_timer_.cancel();
  if (channel_ != nullptr) {
    ares_destroy(channel_);  // runs on_addrinfo(ARES_EDESTRUCTION) for every pending query
  }
  for (auto& [fd, watch] : watches_) {
    loop_.unwatch(fd);
  }
  // Deliver everything not yet delivered; nothing below touches `this`.
  std::vector<Ready> ready = std::move(ready_);
  for (auto& r : ready) {
    r.cb(std::move(r.result));
  }
}

void Resolver::resolve(const std::string& host, std::uint16_t port, Callback cb) {
  if (host.empty()) {
    complete(std::move(cb), fail(Errc::invalid_argument));
    return;
  }
  if (auto numeric = SocketAddress::parse(host, port)) {
    complete(std::move(cb), std::vector<SocketAddress>{*numeric});
    return;
  }
  const std::string name = lower_without_final_dot(host);
  if (is_name_or_subdomain_of(name, "localhost")) {
    // RFC 6761 §6.3: localhost names resolve to loopback without asking DNS.
    auto v4 = SocketAddress::parse("127.0.0.1", port);
    auto v6 = SocketAddress::parse("::1", port);
    complete(std::move(cb), std::vector<SocketAddress>{*v4, *v6});
    return;
  }
  if (is_name_or_subdomain_of(name, "invalid")) {
    complete(std::move(cb), fail(Errc::host_not_found));  // RFC 6761 §6.4
    return;
  }
  auto* query = new Query(*this, std::move(cb), port);
  ++pending_;
  query->deadline.arm(options_.timeout);
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NOSORT;  // we order IPv4 first ourselves; sorting would connect() probes
  // May call on_addrinfo before returning (e.g. /etc/hosts): delivery is deferred by complete().
  ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, &Resolver::on_addrinfo, query);
  reschedule();
}

void Resolver::on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
  auto* query = static_cast<Query*>(arg);
  Resolver& self = query->owner;
  if (!query->done) {
    --self.pending_;
    if (status == ARES_SUCCESS) {
      auto addrs = collect(res, query->port);
      if (addrs.empty()) {
        self.complete(std::move(query->cb), fail(Errc::host_not_found));
      } else {
        self.complete(std::move(query->cb), std::move(addrs));
      }
    } else {
      self.complete(std::move(query->cb), fail(map_status(status)));
    }
  }
  if (res != nullptr) {
    ares_freeaddrinfo(res);
  }
  delete query;
}

void Resolver::on_sock_state(void* data, int fd, int readable, int writable) {
  auto& self = *static_cast<Resolver*>(data);
  const std::uint32_t events =
      (readable ? event::kReadable : 0u) | (writable ? event::kWritable : 0u);
  auto it = self.watches_.find(fd);
  if (events == 0) {
    if (it != self.watches_.end()) {
      self.loop_.unwatch(fd);
      // c-ares may be running inside this watch's on_io: free it later, not now.
      self.retired_.push_back(std::move(it->second));
      self.watches_.erase(it);
    }
    return;
  }
  if (it != self.watches_.end()) {
    (void)self.loop_.modify(fd, events, it->second.get());
    return;
  }
  auto watch = std::make_unique<SocketWatch>(self, fd);
  // If the loop cannot watch it, c-ares' timeout still ends the query.
  if (self.loop_.watch(fd, events, watch.get())) {
    self.watches_.emplace(fd, std::move(watch));
  }
}

void Resolver::process(int fd, std::uint32_t events) {
  // The watch calling us is live (the loop never calls unwatched handlers), so retired_ is not on
  // the stack now.
  retired_.clear();
  const bool read = (events & (event::kReadable | event::kError)) != 0;
  const bool write = (events & event::kWritable) != 0;
  ares_process_fd(channel_, read ? fd : ARES_SOCKET_BAD, write ? fd : ARES_SOCKET_BAD);
  reschedule();
}

void Resolver::reschedule() {
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
    ares_timer_.cancel();
    return;
  }
  const auto ms = std::chrono::milliseconds{tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000};
  ares_timer_.arm(ms);
}

void Resolver::complete(Callback cb, Result<std::vector<SocketAddress>> result) {
  ready_.push_back(Ready{std::move(cb), std::move(result)});
  if (destroying_ || flush_posted_) {
    return;  // the destructor delivers, or a flush is already queued
  }
  flush_posted_ = true;
  // Deliver from a posted function, outside c-ares and timer frames, so that a callback may start
  // new resolutions or destroy this Resolver.
  loop_.post([this, alive = alive_] {
    if (*alive) {
      flush();
    }
  });
}

void Resolver::flush() {
  flush_posted_ = false;
  std::vector<Ready> ready = std::move(ready_);
  ready_.clear();
  for (auto& r : ready) {
    r.cb(std::move(r.result));  // may destroy *this: the loop touches only the local vector
  }
}

}  // namespace holdfast::net
