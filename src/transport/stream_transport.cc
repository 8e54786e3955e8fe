// The Transport implementation: a non-blocking TCP socket on one loop, optionally through a TLS
// engine.
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <utility>
#include <vector>

#include "base/slab.h"
#include "event/loop.h"
#include "event/timer.h"
#include "holdfast/error.h"
#include "net/socket.h"
#include "tls/engine.h"
#include "transport/handshake_burst.h"
#include "transport/transport.h"

namespace holdfast::transport {
namespace {

// Reads go through per-thread scratch buffers so that an idle connection owns no read buffer
// (incident 001; issue 3). 64 KiB holds four full TLS records.
constexpr std::size_t kScratchSize = 64 * 1024;
// Reads per readiness event before yielding to other connections (fairness under load).
constexpr int kMaxReadsPerEvent = 8;
// Chunks gathered into one writev().
constexpr std::size_t kMaxIov = 16;

std::span<std::uint8_t> read_scratch() {
  thread_local std::array<std::uint8_t, kScratchSize> buffer;
  return buffer;
}

std::span<std::uint8_t> plaintext_scratch() {
  thread_local std::array<std::uint8_t, kScratchSize> buffer;
  return buffer;
}

class StreamTransport final : public Transport,
                              public event::IoHandler,
                              public base::SlabAllocated<StreamTransport> {
 public:
  enum class State { connecting, handshaking, open, closed };

  StreamTransport(event::Loop& loop, net::Fd fd, TransportHandler* handler,
                  std::unique_ptr<tls::Engine> engine, State state)
      : loop_(loop),
        fd_(std::move(fd)),
        handler_(handler),
        tls_(std::move(engine)),
        timer_(loop.timers(), [this] { on_timeout(); }),
        state_(state) {}

  ~StreamTransport() override {
    if (destroyed_ != nullptr) {
      *destroyed_ = true;
    }
    end_handshake();
    close_descriptor();
  }

  Result<void> begin(std::chrono::milliseconds timeout, std::error_code timeout_code) {
    if (timeout.count() > 0) {
      timeout_code_ = timeout_code;
      timer_.arm(timeout);
    }
    const std::uint32_t interest =
        state_ == State::connecting ? event::kWritable : event::kReadable;
    return loop_.watch(fd_.get(), interest, this);
  }

  // Called once TCP is connected (client) or right after accept (server).
  Result<void> start_session() {
    timer_.cancel();
    if (!tls_) {
      state_ = State::open;
      return {};
    }
    state_ = State::handshaking;
    if (!in_handshake_burst_) {
      in_handshake_burst_ = true;
      HandshakeBurst::started();
    }
    timeout_code_ = make_error_code(Errc::tls_handshake_timeout);
    if (handshake_timeout_.count() > 0) {
      timer_.arm(handshake_timeout_);
    }
    HOLDFAST_TRY(tls_->start());
    flush();
    return {};
  }

  void set_handshake_budget(std::chrono::milliseconds budget) { handshake_timeout_ = budget; }

  // Server side: the socket is connected already; announce it from the loop, not from inside
  // accept(), so the handler is fully constructed first.
  void announce_plain_connection() {
    std::weak_ptr<bool> alive = alive_;
    loop_.post([this, alive] {
      if (!alive.expired() && state_ == State::open) {
        handler_->on_connected();
      }
    });
  }

  void set_remote(std::string address) { remote_ = std::move(address); }

  // ---- Transport ----

  void write(std::span<const std::uint8_t> data) override {
    if (state_ == State::closed || data.empty()) {
      return;
    }
    if (tls_) {
      auto r = tls_->write(data);
      if (!r) {
        fail_later(r.error());
        return;
      }
    } else {
      out_.emplace_back(reinterpret_cast<const char*>(data.data()), data.size());
      out_bytes_ += data.size();
    }
    flush();
  }

  void write(std::string data) override {
    if (tls_) {
      write(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()),
                                          data.size()));
      return;
    }
    if (state_ == State::closed || data.empty()) {
      return;
    }
    out_bytes_ += data.size();
    out_.push_back(std::move(data));
    flush();
  }

  [[nodiscard]] std::size_t pending_output() const override {
    return tls_ ? (tls_->has_pending_output() ? tls_->pending_output().size() : 0) : out_bytes_;
  }

  void pause_reading() override {
    if (!reading_paused_) {
      reading_paused_ = true;
      update_interest();
    }
  }

  void resume_reading() override {
    if (!reading_paused_) {
      return;
    }
    reading_paused_ = false;
    update_interest();
    // Plaintext the engine already decrypted would otherwise wait for the next socket event.
    if (tls_ && tls_->has_buffered_plaintext()) {
      std::weak_ptr<bool> alive = alive_;
      loop_.post([this, alive] {
        if (!alive.expired() && state_ == State::open && !reading_paused_) {
          bool destroyed = false;
          destroyed_ = &destroyed;
          deliver_plaintext(destroyed);
          if (!destroyed) {
            destroyed_ = nullptr;
          }
        }
      });
    }
  }

  void shutdown_write() override {
    if (state_ == State::closed || write_shutdown_) {
      return;
    }
    write_shutdown_ = true;
    if (tls_) {
      auto r = tls_->close();
      (void)r;  // close_notify could not be queued: the FIN below still ends the stream
    }
    flush();
  }

  void close() override {
    state_ = State::closed;
    timer_.cancel();
    close_descriptor();
    end_handshake();
  }

  void abandon() override {
    // Fork safety: the epoll set may be shared with another process, so it is not touched; the
    // descriptor is closed with no write and no shutdown(), leaving the other process's
    // connection intact (incident 003).
    state_ = State::closed;
    timer_.cancel();
    fd_.reset();
    end_handshake();
  }

  void request_key_update(bool update_requested) override {
    if (tls_ && state_ == State::open && tls_->version() == "TLSv1.3" &&
        tls_->request_key_update(update_requested)) {
      flush();
    }
  }

  [[nodiscard]] std::string_view tls_record_path() const override {
    return tls_ ? tls_->record_path() : std::string_view();
  }

  void release_idle_memory() override {
    if (tls_) {
      tls_->release_buffers();
    }
    end_handshake();  // the handshake's and the first exchange's transient memory is freed now
    if (out_.empty()) {
      std::vector<std::string>().swap(out_);
    }
  }

  [[nodiscard]] bool is_connected() const override { return state_ == State::open; }
  [[nodiscard]] ConnectionInfo info() const override {
    ConnectionInfo info;
    info.remote_address = remote_;
    info.tcp_connected = tcp_connected_;
    if (tls_ && tls_->is_handshake_done()) {
      info.tls_version = tls_->version();
      info.tls_cipher = tls_->cipher();
      info.alpn = tls_->alpn();
      info.tls_resumed = tls_->is_session_reused();
    }
    return info;
  }
  [[nodiscard]] int fd() const override { return fd_.is_valid() ? fd_.get() : -1; }
  void set_handler(TransportHandler* handler) override { handler_ = handler; }
  [[nodiscard]] std::error_code eof_error() const override { return eof_error_; }

  // ---- IoHandler ----

  void on_io(std::uint32_t events) override {
    bool destroyed = false;
    destroyed_ = &destroyed;
    handle_io(events, destroyed);
    if (!destroyed) {
      destroyed_ = nullptr;
    }
  }

 private:
  void handle_io(std::uint32_t events, bool& destroyed) {
    if (state_ == State::connecting) {
      on_connect_ready(destroyed);
      return;
    }
    if ((events & event::kWritable) != 0) {
      flush();
      if (destroyed || state_ == State::closed) {
        return;
      }
    }
    if ((events & (event::kReadable | event::kError)) != 0 && !reading_paused_) {
      read_ready(destroyed);
    }
  }

  void on_connect_ready(bool& destroyed) {
    std::error_code ec = net::finish_connect(fd_.get());
    if (ec) {
      fail(ec);
      return;
    }
    tcp_connected_ = std::chrono::steady_clock::now();
    auto r = start_session();
    if (!r) {
      fail(r.error());
      return;
    }
    update_interest();
    if (!tls_) {
      handler_->on_connected();
    }
    (void)destroyed;
  }

  void read_ready(bool& destroyed) {
    for (int i = 0; i < kMaxReadsPerEvent; ++i) {
      auto n = net::read_some(fd_.get(), read_scratch());
      if (!n) {
        if (!net::is_would_block(n.error())) {
          fail(classify(n.error()));
        }
        return;
      }
      if (*n == 0) {
        on_eof();
        return;
      }
      auto chunk = read_scratch().first(*n);
      if (tls_) {
        on_ciphertext(chunk, destroyed);
      } else {
        handler_->on_data(chunk);
      }
      if (destroyed || state_ == State::closed || reading_paused_) {
        return;
      }
      if (*n < kScratchSize) {
        return;  // the socket is drained: level-triggered epoll tells us about more
      }
    }
  }

  void on_ciphertext(std::span<const std::uint8_t> chunk, bool& destroyed) {
    auto fed = tls_->feed(chunk);
    flush();  // handshake messages, alerts, KeyUpdate answers
    if (destroyed || state_ == State::closed) {
      return;
    }
    if (!fed) {
      fail(fed.error());
      return;
    }
    if (state_ == State::handshaking && tls_->is_handshake_done()) {
      state_ = State::open;
      timer_.cancel();
      handler_->on_connected();
      if (destroyed || state_ == State::closed) {
        return;
      }
    }
    deliver_plaintext(destroyed);
  }

  void deliver_plaintext(bool& destroyed) {
    while (!reading_paused_) {
      auto n = tls_->read(plaintext_scratch());
      if (!n) {
        fail(n.error());
        return;
      }
      if (*n == 0) {
        break;
      }
      handler_->on_data(plaintext_scratch().first(*n));
      if (destroyed || state_ == State::closed) {
        return;
      }
    }
    if (tls_->is_peer_closed() && !peer_closed_) {
      peer_closed_ = true;
      handler_->on_peer_closed();
    }
  }

  void on_eof() {
    if (state_ != State::open) {
      fail(tls_ && state_ == State::handshaking ? tls_->on_transport_eof()
                                                : make_error_code(Errc::closed_before_response));
      return;
    }
    if (tls_) {
      eof_error_ = tls_->on_transport_eof();
    }
    reading_paused_ = true;  // nothing more will come: stop polling for reads
    update_interest();
    if (!peer_closed_) {
      peer_closed_ = true;
      handler_->on_peer_closed();
    }
  }

  // Sends what is queued; watches for writability while anything remains.
  void flush() {
    if (!fd_.is_valid()) {
      return;
    }
    auto sent = tls_ ? flush_tls() : flush_plain();
    if (!sent) {
      fail_later(classify(sent.error()));
      return;
    }
    const bool drained = pending_output() == 0;
    if (drained && write_shutdown_ && !fin_sent_) {
      fin_sent_ = true;
      ::shutdown(fd_.get(), SHUT_WR);
    }
    const bool was_waiting = waiting_to_write_;
    waiting_to_write_ = !drained;
    if (was_waiting != waiting_to_write_) {
      update_interest();
    }
    if (was_waiting && drained && state_ == State::open) {
      handler_->on_drained();
    }
  }

  Result<void> flush_tls() {
    while (tls_->has_pending_output()) {
      auto out = tls_->pending_output();
      auto n = net::write_some(fd_.get(), out);
      if (!n) {
        return net::is_would_block(n.error()) ? Result<void>{}
                                              : Result<void>(::holdfast::fail(n.error()));
      }
      tls_->consume_output(*n);
    }
    return {};
  }

  Result<void> flush_plain() {
    while (out_head_ < out_.size()) {
      std::array<iovec, kMaxIov> iov{};
      std::size_t count = 0;
      for (std::size_t i = out_head_; i < out_.size() && count < kMaxIov; ++i, ++count) {
        const std::size_t skip = (i == out_head_) ? out_offset_ : 0;
        iov[count] = {out_[i].data() + skip, out_[i].size() - skip};
      }
      auto n = net::writev_some(fd_.get(), std::span<const iovec>(iov.data(), count));
      if (!n) {
        return net::is_would_block(n.error()) ? Result<void>{}
                                              : Result<void>(::holdfast::fail(n.error()));
      }
      consume_plain(*n);
    }
    return {};
  }

  void consume_plain(std::size_t n) {
    out_bytes_ -= n;
    while (n > 0) {
      const std::size_t left = out_[out_head_].size() - out_offset_;
      if (n < left) {
        out_offset_ += n;
        return;
      }
      n -= left;
      out_offset_ = 0;
      ++out_head_;
    }
    if (out_head_ == out_.size()) {
      out_.clear();  // keeps capacity for the next burst; release_idle_memory() frees it
      out_head_ = 0;
    }
  }

  void update_interest() {
    if (!fd_.is_valid() || state_ == State::closed) {
      return;
    }
    std::uint32_t interest = 0;
    if (state_ == State::connecting || waiting_to_write_) {
      interest |= event::kWritable;
    }
    if (state_ != State::connecting && !reading_paused_) {
      interest |= event::kReadable;
    }
    auto r = loop_.modify(fd_.get(), interest, this);
    (void)r;  // modify fails only for a descriptor the loop does not know: nothing to update
  }

  std::error_code classify(std::error_code ec) const {
    if (ec.category() == std::system_category() && fd_.is_valid()) {
      return net::classify_socket_error(fd_.get(), ec.value());
    }
    return ec;
  }

  void on_timeout() {
    if (state_ == State::connecting || state_ == State::handshaking) {
      fail(timeout_code_);
    }
  }

  // Reports a fatal error now (from an event) and closes.
  void fail(std::error_code ec) {
    if (state_ == State::closed) {
      return;
    }
    close();
    handler_->on_error(ec);
  }

  // Reports a fatal error found inside a call from the handler (write, resume): the handler hears
  // of it from the loop, never re-entrantly from within its own call.
  void fail_later(std::error_code ec) {
    if (state_ == State::closed) {
      return;
    }
    close();
    std::weak_ptr<bool> alive = alive_;
    loop_.post([this, alive, ec] {
      if (!alive.expired()) {
        handler_->on_error(ec);
      }
    });
  }

  // The handshake ended (done, failed or closed): after a burst of them, the heap is trimmed.
  void end_handshake() {
    if (in_handshake_burst_) {
      in_handshake_burst_ = false;
      HandshakeBurst::ended();
    }
  }

  void close_descriptor() {
    if (fd_.is_valid()) {
      loop_.unwatch(fd_.get());
      fd_.reset();
    }
  }

  event::Loop& loop_;
  net::Fd fd_;
  TransportHandler* handler_;
  std::unique_ptr<tls::Engine> tls_;
  event::Timer timer_;
  State state_;
  std::error_code timeout_code_;
  std::chrono::milliseconds handshake_timeout_{0};
  std::error_code eof_error_;
  // Plain-TCP output: chunks sent in order; out_head_/out_offset_ mark what is already sent.
  std::vector<std::string> out_;
  std::size_t out_head_ = 0;
  std::size_t out_offset_ = 0;
  std::size_t out_bytes_ = 0;
  bool reading_paused_ = false;
  bool waiting_to_write_ = false;
  bool write_shutdown_ = false;
  bool fin_sent_ = false;
  bool peer_closed_ = false;
  bool in_handshake_burst_ = false;  // counted in HandshakeBurst until first idle, or closed
  bool* destroyed_ = nullptr;        // set while a callback runs, so a handler may delete us
  // Guards posted tasks; its control block lives in the slab, beside the transport.
  std::shared_ptr<bool> alive_ = std::allocate_shared<bool>(base::SlabAllocator<bool>(), true);
  std::string remote_;                                     // "ip:port"
  std::chrono::steady_clock::time_point tcp_connected_{};  // client: when connect() completed
};

}  // namespace

Result<std::unique_ptr<Transport>> connect(event::Loop& loop, const ConnectParams& params,
                                           TransportHandler* handler) {
  auto fd = net::open_tcp_socket(params.address.family());
  if (!fd) {
    return fail(fd.error());
  }
  HOLDFAST_TRY(net::apply_socket_options(fd->get(), params.socket, SocketRole::client_connect));
  std::unique_ptr<tls::Engine> engine;
  if (params.tls) {
    auto e = tls::Engine::client(params.tls, params.server_name, params.session_key);
    if (!e) {
      return fail(e.error());
    }
    engine = std::move(*e);
  }
  HOLDFAST_TRY(net::start_connect(fd->get(), params.address));
  auto t = std::make_unique<StreamTransport>(loop, std::move(*fd), handler, std::move(engine),
                                             StreamTransport::State::connecting);
  t->set_remote(params.address.to_string());
  // One timer covers connect and then the handshake: connect_timeout first; the handshake gets
  // its own budget when TCP is up (re-armed in start_session via begin's timeout code).
  t->set_handshake_budget(params.handshake_timeout);
  HOLDFAST_TRY(t->begin(params.connect_timeout, make_error_code(Errc::connect_timeout)));
  return std::unique_ptr<Transport>(std::move(t));
}

Result<std::unique_ptr<Transport>> accept(event::Loop& loop, net::Fd fd,
                                          const net::SocketAddress& peer,
                                          const AcceptParams& params, TransportHandler* handler) {
  std::unique_ptr<tls::Engine> engine;
  if (params.tls) {
    auto e = tls::Engine::server(params.tls);
    if (!e) {
      return fail(e.error());
    }
    engine = std::move(*e);
  }
  const bool plain = !engine;
  auto t = std::make_unique<StreamTransport>(loop, std::move(fd), handler, std::move(engine),
                                             StreamTransport::State::handshaking);
  t->set_remote(peer.to_string());
  t->set_handshake_budget(params.handshake_timeout);
  HOLDFAST_TRY(t->begin(std::chrono::milliseconds{0}, {}));
  HOLDFAST_TRY(t->start_session());
  if (plain) {
    t->announce_plain_connection();
  }
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace holdfast::transport
