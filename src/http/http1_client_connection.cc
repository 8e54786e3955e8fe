// HTTP/1.1 client connection: writes one request at a time and parses its response.
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <utility>

#include "holdfast/error.h"
#include "http/client_connection.h"
#include "http1/parser.h"
#include "http1/serializer.h"

namespace holdfast::http {
namespace {

// A streamed request body is read from its source while less than this is queued for the
// socket: memory stays bounded whatever the body size (back-pressure).
constexpr std::size_t kBodyHighWater = 256 * 1024;
constexpr std::size_t kBodyPiece = 16 * 1024;

bool method_is(const Request& r, std::string_view m) { return iequals(r.method, m); }

std::optional<std::uint64_t> parse_length(std::string_view text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  return v;
}

class Http1ClientConnection final : public ClientConnection,
                                    public transport::TransportHandler,
                                    public http1::ParserHandler {
 public:
  Http1ClientConnection(std::unique_ptr<transport::Transport> transport, ConnectionOwner* owner,
                        Http1ClientLimits limits)
      : transport_(std::move(transport)),
        owner_(owner),
        parser_(http1::MessageKind::response, *this,
                http1::ParserLimits{.max_start_line = 8 * 1024,
                                    .max_header_bytes = limits.max_header_bytes,
                                    .max_headers = limits.max_headers}) {
    transport_->set_handler(this);
  }

  // ---- ClientConnection ----

  void start(ExchangeHandler* exchange) override {
    exchange_ = exchange;
    facts_ = FailureFacts{.connection_was_reused = served_ > 0};
    head_ = ResponseHead{};
    pending_.clear();
    parser_.reset();
    message_done_ = false;
    body_error_ = {};
    auto head = build_head(exchange->request());
    if (!head) {
      fail_exchange(head.error(), /*close_connection=*/false);
      return;
    }
    facts_.request_bytes_sent = true;
    transport_->write(std::move(*head));
    const Request& req = exchange->request();
    if (req.body_source) {
      pump_body();
      return;
    }
    if (!req.body.empty()) {
      transport_->write(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(req.body.data()), req.body.size()));
    }
    exchange_->on_request_sent();
  }

  void abort(ExchangeHandler* exchange, std::error_code why) override {
    if (exchange_ != exchange) {
      return;
    }
    exchange_ = nullptr;
    shut(why);
  }

  [[nodiscard]] bool is_connected() const override { return connected_ && !closed_; }
  [[nodiscard]] bool can_take_request() const override { return is_idle(); }
  [[nodiscard]] bool is_idle() const override {
    return connected_ && !closed_ && exchange_ == nullptr;
  }
  [[nodiscard]] bool was_used() const override { return served_ > 0; }

  bool check_alive() override {
    if (!is_idle()) {
      return false;
    }
    std::array<char, 1> probe{};
    const ssize_t n = ::recv(transport_->fd(), probe.data(), probe.size(), MSG_PEEK | MSG_DONTWAIT);
    const bool plain = transport_->info().tls_version.empty();
    // EOF or an error: gone. Bytes on a plain idle connection are unsolicited (protocol
    // violation). On TLS they may be a late session ticket, which the read path absorbs.
    const bool alive = (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) || (n > 0 && !plain);
    if (!alive) {
      close();
    }
    return alive;
  }

  void close() override {
    closed_ = true;
    exchange_ = nullptr;
    transport_->close();
  }

  void abandon() override {
    closed_ = true;
    exchange_ = nullptr;
    transport_->abandon();
  }

  transport::Transport& transport() override { return *transport_; }

  // ---- TransportHandler ----

  void on_connected() override {
    connected_ = true;
    owner_->on_connection_ready(this);
  }

  void on_data(std::span<const std::uint8_t> data) override {
    if (exchange_ == nullptr) {
      // RFC 9112 §9.6 allows no response without a request: the connection is out of sync.
      shut(make_error_code(Errc::protocol_error));
      return;
    }
    if (!facts_.response_bytes_seen) {
      facts_.response_bytes_seen = true;
      exchange_->on_first_byte();
    }
    if (pending_.empty()) {
      const std::size_t used = parse(data);
      if (used < data.size() && exchange_ != nullptr && !message_done_) {
        pending_.assign(reinterpret_cast<const char*>(data.data() + used), data.size() - used);
      }
    } else {
      pending_.append(reinterpret_cast<const char*>(data.data()), data.size());
      const std::size_t used = parse(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(pending_.data()), pending_.size()));
      pending_.erase(0, used);
    }
    after_parse();
  }

  void on_drained() override {
    if (exchange_ != nullptr && streaming_body_) {
      pump_body();
    }
  }

  void on_peer_closed() override {
    if (exchange_ == nullptr) {
      shut({});
      return;
    }
    if (!message_done_) {
      auto finished = parser_.finish();
      std::error_code eof = transport_->eof_error();
      if (finished && message_done_ && eof) {
        // A body delimited by the close must end with TLS close_notify, or it may be truncated.
        fail_exchange(eof, true);
        return;
      }
      if (!finished || !message_done_) {
        fail_exchange(make_error_code(facts_.response_bytes_seen ? Errc::connection_closed
                                                                 : Errc::closed_before_response),
                      true);
        return;
      }
    }
    keep_alive_ = false;
    after_parse();
  }

  void on_error(std::error_code ec) override {
    closed_ = true;
    if (exchange_ != nullptr) {
      ExchangeHandler* ex = std::exchange(exchange_, nullptr);
      ex->on_exchange_error(ec, facts_);
    }
    owner_->on_connection_closed(this, ec);
  }

  // ---- ParserHandler ----

  void on_status_line(int version_minor, int status, std::string_view reason) override {
    head_.status = status;
    head_.reason.assign(reason);
    head_.version = version_minor == 0 ? HttpVersion::http1_0 : HttpVersion::http1_1;
  }

  void on_header(std::string_view name, std::string_view value) override {
    head_.headers.add(std::string(name), std::string(value));
  }

  BodyMode on_headers_complete() override {
    if (is_informational()) {
      return BodyMode::normal;
    }
    keep_alive_ = parser_.keep_alive();
    exchange_->on_response_head(head_);
    // RFC 9112 §6.3: a response to HEAD never has a body, whatever its headers say.
    return method_is(exchange_->request(), "HEAD") ? BodyMode::none : BodyMode::normal;
  }

  void on_body(std::span<const std::uint8_t> data) override {
    if (body_error_ || exchange_ == nullptr) {
      return;
    }
    auto r = exchange_->on_response_body(data);
    if (!r) {
      body_error_ = r.error();
    }
  }

  void on_message_complete() override {
    if (is_informational()) {
      head_ = ResponseHead{};  // RFC 9110 §15.2: 1xx is interim; the final response follows
      return;
    }
    message_done_ = true;
  }

 private:
  [[nodiscard]] bool is_informational() const {
    return head_.status >= 100 && head_.status < 200 && head_.status != 101;
  }

  // Feeds the parser until the response is complete, the input is used up, or an error.
  std::size_t parse(std::span<const std::uint8_t> data) {
    std::size_t used = 0;
    while (used < data.size() && !message_done_ && exchange_ != nullptr && !body_error_) {
      auto n = parser_.feed(data.subspan(used));
      if (!n) {
        fail_exchange(n.error(), true);
        return data.size();
      }
      if (*n == 0) {
        break;  // an incomplete head: wait for more bytes
      }
      used += *n;
    }
    return used;
  }

  void after_parse() {
    if (exchange_ == nullptr) {
      return;
    }
    if (body_error_) {
      fail_exchange(body_error_, true);
      return;
    }
    if (!message_done_) {
      return;
    }
    ++served_;
    const bool reusable = keep_alive_ && pending_.empty() && !streaming_body_;
    ExchangeHandler* ex = std::exchange(exchange_, nullptr);
    if (!reusable) {
      closed_ = true;
      transport_->close();
    } else {
      transport_->release_idle_memory();
    }
    ex->on_response_complete();
    if (reusable) {
      owner_->on_connection_ready(this);
    } else {
      owner_->on_connection_closed(this, {});
    }
  }

  void fail_exchange(std::error_code ec, bool close_connection) {
    ExchangeHandler* ex = std::exchange(exchange_, nullptr);
    if (close_connection) {
      closed_ = true;
      transport_->close();
    }
    if (ex != nullptr) {
      ex->on_exchange_error(ec, facts_);
    }
    if (close_connection) {
      owner_->on_connection_closed(this, ec);
    } else {
      owner_->on_connection_ready(this);
    }
  }

  void shut(std::error_code why) {
    closed_ = true;
    transport_->close();
    owner_->on_connection_closed(this, why);
  }

  Result<std::string> build_head(const Request& req) {
    std::vector<http1::HeaderView> fields;
    fields.reserve(req.headers.size() + 2);
    for (const auto& f : req.headers) {
      if (iequals(f.name, "Host") || iequals(f.name, "Transfer-Encoding") ||
          iequals(f.name, "Content-Length")) {
        continue;  // framing headers are ours to write, from the body we actually send
      }
      fields.push_back({f.name, f.value});
    }
    std::optional<std::uint64_t> length;
    streaming_body_ = static_cast<bool>(req.body_source);
    chunked_ = false;
    if (streaming_body_) {
      if (auto cl = req.headers.get("Content-Length")) {
        length = parse_length(*cl);
        if (!length) {
          return fail(Errc::invalid_argument);
        }
      } else {
        chunked_ = true;
      }
    } else if (!req.body.empty() || method_is(req, "POST") || method_is(req, "PUT") ||
               method_is(req, "PATCH")) {
      length = req.body.size();  // RFC 9110 §8.6: a POST without body still says 0
    }
    std::string out;
    HOLDFAST_TRY(http1::serialize_request_head(out, req.method, exchange_->target(),
                                               exchange_->host_header(), fields, length, chunked_));
    return out;
  }

  void pump_body() {
    std::array<std::uint8_t, kBodyPiece> piece{};
    while (exchange_ != nullptr && streaming_body_ &&
           transport_->pending_output() < kBodyHighWater) {
      auto n = exchange_->request().body_source(piece);
      if (!n) {
        streaming_body_ = false;
        fail_exchange(make_error_code(Errc::body_source_failed), true);
        return;
      }
      std::string out;
      if (*n == 0) {
        streaming_body_ = false;
        if (chunked_) {
          (void)http1::serialize_last_chunk(out);  // no trailers: cannot fail
          transport_->write(std::move(out));
        }
        exchange_->on_request_sent();
        return;
      }
      const auto data = std::span<const std::uint8_t>(piece).first(*n);
      if (chunked_) {
        http1::serialize_chunk(out, data);
        transport_->write(std::move(out));
      } else {
        transport_->write(data);
      }
    }
  }

  std::unique_ptr<transport::Transport> transport_;
  ConnectionOwner* owner_;
  http1::Parser parser_;
  ExchangeHandler* exchange_ = nullptr;
  ResponseHead head_;
  FailureFacts facts_;
  std::string pending_;  // an incomplete response head, kept until the rest arrives
  std::error_code body_error_;
  std::uint64_t served_ = 0;
  bool connected_ = false;
  bool closed_ = false;
  bool keep_alive_ = false;
  bool message_done_ = false;
  bool streaming_body_ = false;
  bool chunked_ = false;
};

}  // namespace

std::unique_ptr<ClientConnection> make_http1_client_connection(
    std::unique_ptr<transport::Transport> transport, ConnectionOwner* owner,
    Http1ClientLimits limits) {
  return std::make_unique<Http1ClientConnection>(std::move(transport), owner, limits);
}

}  // namespace holdfast::http
