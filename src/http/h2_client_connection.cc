// H2ClientConnection: exchanges as HTTP/2 streams on one http2::Session, or an HTTP/1.1 fallback
// when the server does not select h2.
#include "http/h2_client_connection.h"

#include <array>
#include <unordered_map>
#include <utility>
#include <vector>

#include "holdfast/error.h"
#include "holdfast/http2_error.h"
#include "http2/session.h"

namespace holdfast::http {
namespace {

// A streamed request body is read from its source while less than this waits in the stream.
constexpr std::size_t kBodyHighWater = 64 * 1024;
constexpr std::size_t kBodyPiece = 16 * 1024;
constexpr std::size_t kOutputHighWater = 256 * 1024;
// RFC 9113 §6.5.2 recommends at least 100 concurrent streams: assumed until the SETTINGS come.
constexpr std::size_t kDefaultStreams = 100;

class H2ClientConnection final : public ClientConnection,
                                 public transport::TransportHandler,
                                 public http2::SessionHandler,
                                 public ConnectionOwner {
 public:
  H2ClientConnection(std::unique_ptr<transport::Transport> transport, ConnectionOwner* owner,
                     ClientProtocolOptions options)
      : transport_(std::move(transport)), owner_(owner), options_(options) {
    transport_->set_handler(this);
  }

  [[nodiscard]] bool speaks_h2() const { return session_ != nullptr; }

  // ---- ClientConnection ----
  void start(ExchangeHandler* exchange) override;
  void abort(ExchangeHandler* exchange, std::error_code why) override;
  [[nodiscard]] bool is_connected() const override {
    return fallback_ ? fallback_->is_connected() : session_ != nullptr && !closed_;
  }
  [[nodiscard]] bool can_take_request() const override;
  [[nodiscard]] bool is_idle() const override {
    return fallback_ ? fallback_->is_idle() : is_connected() && streams_.empty();
  }
  [[nodiscard]] bool was_used() const override {
    return fallback_ ? fallback_->was_used() : served_ > 0;
  }
  bool check_alive() override {
    if (fallback_) {
      return fallback_->check_alive();
    }
    return is_connected() && !session_->peer_sent_goaway();
  }
  void close() override;
  void abandon() override;
  transport::Transport& transport() override {
    return fallback_ ? fallback_->transport() : *transport_;
  }

  // ---- ConnectionOwner, for the HTTP/1.1 fallback ----
  void on_connection_ready(ClientConnection*) override { owner_->on_connection_ready(this); }
  void on_connection_closed(ClientConnection*, std::error_code ec) override {
    owner_->on_connection_closed(this, ec);
  }

 private:
  struct Stream {
    ExchangeHandler* exchange = nullptr;
    FailureFacts facts;
    bool pumping = false;  // the request body comes from body_source
  };

  // ---- TransportHandler ----
  void on_connected() override;
  void on_data(std::span<const std::uint8_t> data) override;
  void on_drained() override { flush(); }
  void on_peer_closed() override { fail_all(make_error_code(Errc::connection_closed)); }
  void on_error(std::error_code ec) override { fail_all(ec); }

  // ---- http2::SessionHandler ----
  void on_head(std::int32_t id, http2::Head head, bool end_stream) override;
  void on_body(std::int32_t id, std::span<const std::uint8_t> data) override;
  void on_end_stream(std::int32_t id) override;
  void on_stream_closed(std::int32_t id, std::error_code ec) override;
  void on_stream_drained(std::int32_t id) override { pump_body(id); }
  void on_goaway(std::int32_t, std::error_code) override { ready_pending_ = false; }
  void on_settings() override {
    settings_seen_ = true;
    ready_pending_ = true;
  }

  void fail_stream(std::int32_t id, std::error_code ec, bool reset);
  void pump_body(std::int32_t id);
  void flush();
  void after_io();
  void fail_all(std::error_code ec);

  std::unique_ptr<transport::Transport> transport_;
  ConnectionOwner* owner_;
  ClientProtocolOptions options_;
  std::unique_ptr<ClientConnection> fallback_;  // HTTP/1.1: every call goes there
  std::unique_ptr<http2::Session> session_;
  std::unordered_map<std::int32_t, Stream> streams_;
  std::unordered_map<ExchangeHandler*, std::int32_t> ids_;
  std::string output_;
  std::uint64_t served_ = 0;
  bool closed_ = false;
  bool in_io_ = false;          // inside Session::receive: no send, no owner callback
  bool ready_pending_ = false;  // tell the owner it can take more once out of receive
  bool settings_seen_ = false;
};

void H2ClientConnection::on_connected() {
  const bool h2 = transport_->info().tls_version.empty() ? options_.h2c_prior_knowledge
                                                         : transport_->info().alpn == "h2";
  if (!h2) {
    // The server chose HTTP/1.1 (or no ALPN): hand the transport to an HTTP/1.1 connection,
    // which becomes the transport's handler and hears of the connection now.
    fallback_ = make_http1_client_connection(std::move(transport_), this, options_.http1);
    dynamic_cast<transport::TransportHandler&>(*fallback_).on_connected();
    return;
  }
  http2::SessionOptions so;
  so.max_header_list_size = static_cast<std::uint32_t>(options_.http1.max_header_bytes);
  auto session = http2::Session::client(this, so);
  if (!session) {
    fail_all(session.error());
    return;
  }
  session_ = std::move(*session);
  flush();
  owner_->on_connection_ready(this);
}

bool H2ClientConnection::can_take_request() const {
  if (fallback_) {
    return fallback_->can_take_request();
  }
  if (!is_connected() || session_->peer_sent_goaway()) {
    return false;
  }
  std::size_t limit = settings_seen_ ? session_->peer_max_concurrent_streams() : kDefaultStreams;
  if (options_.max_streams > 0) {
    limit = std::min(limit, options_.max_streams);
  }
  return streams_.size() < limit;
}

void H2ClientConnection::start(ExchangeHandler* exchange) {
  if (fallback_) {
    fallback_->start(exchange);
    return;
  }
  const Request& req = exchange->request();
  http2::Head head;
  head.method = req.method;
  head.scheme = transport_->tls_record_path().empty() ? "http" : "https";
  head.authority = exchange->host_header();
  head.path = exchange->target();
  head.headers = req.headers;
  head.headers.remove("content-length");
  const bool streamed = static_cast<bool>(req.body_source);
  if (streamed) {
    if (auto cl = req.headers.get("content-length")) {
      head.headers.add("content-length", std::string(*cl));
    }
  } else if (!req.body.empty() || iequals(req.method, "POST") || iequals(req.method, "PUT")) {
    head.headers.add("content-length", std::to_string(req.body.size()));
  }
  auto id = session_->submit_request(head, streamed || !req.body.empty());
  if (!id) {
    exchange->on_exchange_error(id.error(), FailureFacts{.connection_was_reused = served_ > 0});
    return;
  }
  Stream& s = streams_[*id];
  s.exchange = exchange;
  s.facts = FailureFacts{.request_bytes_sent = true, .connection_was_reused = served_ > 0};
  s.pumping = streamed;
  ids_[exchange] = *id;
  if (streamed) {
    pump_body(*id);
  } else {
    if (!req.body.empty()) {
      session_->write(*id, req.body);
      session_->end_stream(*id);
    }
    exchange->on_request_sent();
  }
  flush();
}

void H2ClientConnection::pump_body(std::int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end() || !it->second.pumping) {
    return;
  }
  ExchangeHandler* exchange = it->second.exchange;
  std::array<std::uint8_t, kBodyPiece> piece{};
  while (session_->buffered(id) < kBodyHighWater) {
    auto n = exchange->request().body_source(piece);
    if (!n) {
      fail_stream(id, make_error_code(Errc::body_source_failed), true);
      return;
    }
    if (*n == 0) {
      it->second.pumping = false;
      session_->end_stream(id);
      exchange->on_request_sent();
      break;
    }
    session_->write(id, {reinterpret_cast<const char*>(piece.data()), *n});
  }
  if (!in_io_) {
    flush();
  }
}

void H2ClientConnection::abort(ExchangeHandler* exchange, std::error_code) {
  if (fallback_) {
    fallback_->abort(exchange, {});
    return;
  }
  auto it = ids_.find(exchange);
  if (it == ids_.end()) {
    return;
  }
  const std::int32_t id = it->second;
  ids_.erase(it);
  streams_.erase(id);
  if (!closed_) {
    session_->reset(id, Http2Errc::cancel);  // RFC 9113 §8.1: the others go on
    flush();
  }
}

void H2ClientConnection::on_data(std::span<const std::uint8_t> data) {
  if (closed_) {
    return;
  }
  in_io_ = true;
  auto r = session_->receive(data);
  in_io_ = false;
  if (!r) {
    flush();  // the GOAWAY the session queued
    fail_all(r.error());
    return;
  }
  after_io();
}

void H2ClientConnection::after_io() {
  flush();
  if (closed_) {
    return;
  }
  if (!session_->is_alive() || (session_->peer_sent_goaway() && streams_.empty())) {
    fail_all({});
    return;
  }
  if (std::exchange(ready_pending_, false) && can_take_request()) {
    owner_->on_connection_ready(this);
  }
}

void H2ClientConnection::flush() {
  if (closed_ || in_io_ || !session_) {
    return;
  }
  // Frames are produced while the transport holds little: a streamed body waits in its source.
  while (!closed_ && session_->wants_write() && transport_->pending_output() < kOutputHighWater) {
    output_.clear();
    in_io_ = true;
    auto r = session_->send(output_);
    in_io_ = false;
    if (!r) {
      fail_all(r.error());
      return;
    }
    if (output_.empty()) {
      break;
    }
    transport_->write(std::move(output_));
    output_ = std::string();
  }
}

void H2ClientConnection::on_head(std::int32_t id, http2::Head head, bool) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  Stream& s = it->second;
  s.facts.response_bytes_seen = true;
  if (head.too_large) {
    fail_stream(id, make_error_code(Http2Errc::header_list_too_large), true);
    return;
  }
  s.exchange->on_first_byte();
  ResponseHead rh;
  rh.status = head.status;
  rh.version = HttpVersion::http2;
  rh.headers = std::move(head.headers);
  s.exchange->on_response_head(std::move(rh));
}

void H2ClientConnection::on_body(std::int32_t id, std::span<const std::uint8_t> data) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  if (auto r = it->second.exchange->on_response_body(data); !r) {
    fail_stream(id, r.error(), true);
  }
}

void H2ClientConnection::on_end_stream(std::int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  ExchangeHandler* exchange = it->second.exchange;
  ids_.erase(exchange);
  streams_.erase(it);
  ++served_;
  ready_pending_ = true;
  if (streams_.empty()) {
    transport_->release_idle_memory();  // frees only what holds nothing pending
  }
  exchange->on_response_complete();
}

void H2ClientConnection::on_stream_closed(std::int32_t id, std::error_code ec) {
  if (!streams_.contains(id)) {
    return;
  }
  if (ec == Http2Errc::goaway || ec == Http2Errc::refused_stream) {
    streams_[id].facts.request_bytes_sent = false;  // RFC 9113 §8.7: never processed
  }
  fail_stream(id, ec ? ec : make_error_code(Http2Errc::stream_reset), false);
}

void H2ClientConnection::fail_stream(std::int32_t id, std::error_code ec, bool reset) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  Stream s = it->second;
  streams_.erase(it);
  ids_.erase(s.exchange);
  ready_pending_ = true;
  if (reset && !closed_) {
    session_->reset(id, Http2Errc::cancel);
  }
  s.exchange->on_exchange_error(ec, s.facts);
}

void H2ClientConnection::fail_all(std::error_code ec) {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (transport_) {
    transport_->close();
  }
  auto streams = std::move(streams_);
  streams_.clear();
  ids_.clear();
  for (auto& [id, s] : streams) {
    s.exchange->on_exchange_error(
        ec ? ec
           : make_error_code(s.facts.response_bytes_seen ? Errc::connection_closed
                                                         : Errc::closed_before_response),
        s.facts);
  }
  owner_->on_connection_closed(this, ec);
}

void H2ClientConnection::close() {
  if (fallback_) {
    fallback_->close();
    return;
  }
  closed_ = true;
  streams_.clear();
  ids_.clear();
  transport_->close();
}

void H2ClientConnection::abandon() {
  if (fallback_) {
    fallback_->abandon();
    return;
  }
  closed_ = true;
  streams_.clear();
  ids_.clear();
  transport_->abandon();
}

}  // namespace

std::unique_ptr<ClientConnection> make_client_connection(
    std::unique_ptr<transport::Transport> transport, ConnectionOwner* owner,
    const ClientProtocolOptions& options) {
  if (!options.offer_h2 && !options.h2c_prior_knowledge) {
    return make_http1_client_connection(std::move(transport), owner, options.http1);
  }
  return std::make_unique<H2ClientConnection>(std::move(transport), owner, options);
}

bool is_multiplexed(const ClientConnection& connection) {
  const auto* h2 = dynamic_cast<const H2ClientConnection*>(&connection);
  return h2 != nullptr && h2->speaks_h2();
}

}  // namespace holdfast::http
