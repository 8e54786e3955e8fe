// Acceptor: the accept loop, with a timed pause when descriptors run out.
#include "net/acceptor.h"

#include <cerrno>

#include "net/socket.h"

namespace holdfast::net {
namespace {

// accept_connection() reports system_category errnos; compared by value, which needs no virtual
// call and no allocation while the process is out of descriptors.
bool is_resource_exhaustion(std::error_code ec) {
  const int e = ec.category() == std::system_category() ? ec.value() : 0;
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

}  // namespace

Result<std::unique_ptr<Acceptor>> Acceptor::create(event::Loop& loop, Fd listen_fd,
                                                   SocketOptions accepted_opts,
                                                   OnAccept on_accept) {
  std::unique_ptr<Acceptor> acceptor(
      new Acceptor(loop, std::move(listen_fd), std::move(accepted_opts), std::move(on_accept)));
  // Best effort: a listening socket that refuses an option (SO_MARK without CAP_NET_ADMIN, ...)
  // only means every accepted socket is configured in full, each failing as it did before.
  acceptor->listener_configured_ = static_cast<bool>(
      apply_inheritable_options(acceptor->listen_fd_.get(), acceptor->accepted_opts_));
  HOLDFAST_TRY(loop.watch(acceptor->listen_fd_.get(), event::kReadable, acceptor.get()));
  acceptor->watching_ = true;
  return acceptor;
}

Acceptor::Acceptor(event::Loop& loop, Fd listen_fd, SocketOptions accepted_opts, OnAccept on_accept)
    : loop_(loop),
      listen_fd_(std::move(listen_fd)),
      accepted_opts_(std::move(accepted_opts)),
      on_accept_(std::move(on_accept)),
      backoff_(loop.timers(), [this] { update_watch(); }),
      alive_(std::make_shared<bool>(true)) {}

Acceptor::~Acceptor() {
  *alive_ = false;
  if (watching_) {
    loop_.unwatch(listen_fd_.get());
  }
}

void Acceptor::pause() {
  paused_ = true;
  update_watch();
}

void Acceptor::resume() {
  paused_ = false;
  update_watch();
}

void Acceptor::update_watch() {
  const bool want = !paused_ && !backoff_.is_armed();
  if (want == watching_) {
    return;
  }
  if (want) {
    watching_ = static_cast<bool>(loop_.watch(listen_fd_.get(), event::kReadable, this));
  } else {
    loop_.unwatch(listen_fd_.get());
    watching_ = false;
  }
}

void Acceptor::report(std::error_code ec) {
  if (on_error_) {
    on_error_(ec);
  }
}

// Configures an accepted socket: only the options it did not inherit from the listening socket.
Result<void> Acceptor::configure(int fd) {
  if (listener_configured_ && !inheritance_known_) {
    inherited_ = inherited_options(listen_fd_.get(), fd, accepted_opts_);
    inheritance_known_ = true;
  }
  return apply_socket_options_except(fd, accepted_opts_, SocketRole::server_accept, inherited_);
}

void Acceptor::on_io(std::uint32_t /*events*/) {
  // Bounded: one busy listener must not starve the other descriptors of this loop.
  const std::shared_ptr<bool> alive = alive_;
  for (int i = 0; i < kMaxAcceptsPerWakeup && watching_; ++i) {
    SocketAddress peer;
    auto fd = accept_connection(listen_fd_.get(), &peer);
    if (!fd) {
      const auto ec = fd.error();
      if (is_would_block(ec)) {
        return;
      }
      if (is_resource_exhaustion(ec)) {
        ++exhausted_;
        backoff_.arm(kExhaustedPause);
        update_watch();
        report(ec);
        return;
      }
      // ECONNABORTED, EPROTO, EPERM (firewall) ...: that one connection is gone; keep accepting.
      report(ec);
      continue;
    }
    if (auto applied = configure(fd->get()); !applied) {
      ++rejected_;
      report(applied.error());
      continue;  // the Fd closes the connection
    }
    ++accepted_;
    on_accept_(std::move(*fd), peer);
    if (!*alive) {
      return;
    }
  }
}

}  // namespace holdfast::net
