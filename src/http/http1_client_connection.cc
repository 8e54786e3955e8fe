// HTTP/1.1 client connection: writes requests (pipelined when allowed) and parses the responses
// in order.
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/slab.h"
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
                                    public http1::ParserHandler,
                                    public base::SlabAllocated<Http1ClientConnection> {
 public:
  Http1ClientConnection(std::unique_ptr<transport::Transport> transport, ConnectionOwner* owner,
                        Http1ClientLimits limits)
      : transport_(std::move(transport)),
        owner_(owner),
        parser_(http1::MessageKind::response, *this,
                http1::ParserLimits{.max_start_line = 8 * 1024,
                                    .max_header_bytes = limits.max_header_bytes,
                                    .max_headers = limits.max_headers}),
        depth_(std::max<std::size_t>(1, limits.pipeline_depth)) {
    transport_->set_handler(this);
  }

  // ---- ClientConnection ----

  void start(ExchangeHandler* exchange) override {
    const bool first = queue_.empty();
    if (first) {
      begin_response();
    }
    FailureFacts facts{.connection_was_reused = served_ > 0 || !first};
    auto head = build_head(*exchange);
    if (!head) {
      exchange->on_exchange_error(head.error(), facts);
      owner_->on_connection_ready(this);
      return;
    }
    facts.request_bytes_sent = true;
    queue_.push_back(InFlight{.exchange = exchange, .facts = facts});
    // Every write is queued whole by the transport (the TLS engine buffers records itself):
    // nothing is ever re-issued, however slow the socket (incident 004).
    transport_->write(std::move(*head));
    const Request& req = exchange->request();
    if (req.body_source) {
      writer_ = exchange;
      pump_body();
      return;
    }
    if (!req.body.empty()) {
      transport_->write(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(req.body.data()), req.body.size()));
    }
    queue_.back().sent = true;
    if (first) {
      exchange->on_request_sent();
    }
  }

  void abort(ExchangeHandler* exchange, std::error_code why) override {
    auto it = std::find_if(queue_.begin(), queue_.end(),
                           [exchange](const InFlight& f) { return f.exchange == exchange; });
    if (it == queue_.end()) {
      return;
    }
    if (it != queue_.begin()) {
      it->exchange = nullptr;  // its response is not read: the connection closes at its turn
      return;
    }
    queue_.erase(queue_.begin());  // pipelines are short: a vector beats a deque here
    close_with({}, make_error_code(Errc::closed_before_response), why);
  }

  [[nodiscard]] bool is_connected() const override { return connected_ && !closed_; }
  [[nodiscard]] bool can_take_request() const override {
    if (!is_connected()) {
      return false;
    }
    if (queue_.empty()) {
      return true;
    }
    // RFC 9112 §9.3.2: nothing is pipelined after a non-idempotent request.
    return queue_.size() < depth_ && writer_ == nullptr && !closing_ &&
           std::all_of(queue_.begin(), queue_.end(), [](const InFlight& f) {
             return f.exchange != nullptr && is_idempotent(f.exchange->request());
           });
  }
  [[nodiscard]] bool is_idle() const override { return is_connected() && queue_.empty(); }
  [[nodiscard]] bool was_used() const override { return served_ > 0; }

  bool check_alive() override {
    if (!is_idle()) {
      return false;
    }
    std::array<char, 1> probe{};
    const ssize_t n = ::recv(transport_->fd(), probe.data(), probe.size(), MSG_PEEK | MSG_DONTWAIT);
    const bool plain = transport_->tls_record_path().empty();
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
    queue_.clear();
    writer_ = nullptr;
    transport_->close();
  }

  void abandon() override {
    closed_ = true;
    queue_.clear();
    writer_ = nullptr;
    transport_->abandon();
  }

  transport::Transport& transport() override { return *transport_; }

  // ---- TransportHandler ----

  void on_connected() override {
    connected_ = true;
    owner_->on_connection_ready(this);
  }

  void on_data(std::span<const std::uint8_t> data) override {
    if (queue_.empty()) {
      // RFC 9112 §9.6 allows no response without a request: the connection is out of sync.
      shut(make_error_code(Errc::protocol_error));
      return;
    }
    if (pending_.empty()) {
      const std::size_t used = consume(data);
      if (!closed_ && used < data.size()) {
        pending_.assign(reinterpret_cast<const char*>(data.data() + used), data.size() - used);
      }
      return;
    }
    pending_.append(reinterpret_cast<const char*>(data.data()), data.size());
    const std::size_t used = consume(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(pending_.data()), pending_.size()));
    if (!closed_) {
      pending_.erase(0, used);
    }
  }

  void on_drained() override {
    if (writer_ != nullptr) {
      pump_body();
    }
  }

  void on_peer_closed() override {
    if (queue_.empty()) {
      shut({});
      return;
    }
    auto finished = parser_.finish();  // completes a body delimited by the close
    const std::error_code unanswered = make_error_code(Errc::closed_before_response);
    if (!finished || !message_done_) {
      const bool seen = queue_.front().facts.response_bytes_seen;
      const auto ec = seen ? make_error_code(Errc::connection_closed) : unanswered;
      close_with(ec, unanswered, ec);
      return;
    }
    // A body delimited by the close must end with TLS close_notify, or it may be truncated.
    const std::error_code error = body_error_ ? body_error_ : transport_->eof_error();
    if (error) {
      close_with(error, unanswered, error);
      return;
    }
    keep_alive_ = false;
    complete_head(false);
  }

  void on_error(std::error_code ec) override {
    closed_ = true;  // the transport closed itself
    close_with(ec, ec, ec);
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
    closing_ = closing_ || !keep_alive_;  // RFC 9112 §9.6: send nothing more on it
    ExchangeHandler* ex = queue_.front().exchange;
    // Moved, not copied: an idle connection keeps no headers (head_.status stays for the checks).
    ex->on_response_head(std::move(head_));
    // RFC 9112 §6.3: a response to HEAD never has a body, whatever its headers say.
    return method_is(ex->request(), "HEAD") ? BodyMode::none : BodyMode::normal;
  }

  void on_body(std::span<const std::uint8_t> data) override {
    if (body_error_ || queue_.empty()) {
      return;
    }
    auto r = queue_.front().exchange->on_response_body(data);
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
  // One request on the connection, in the order written (= the order responses come back).
  struct InFlight {
    ExchangeHandler* exchange = nullptr;  // null: aborted while waiting for its turn
    FailureFacts facts;
    bool sent = false;  // every byte handed to the transport
  };

  [[nodiscard]] bool is_informational() const {
    return head_.status >= 100 && head_.status < 200 && head_.status != 101;
  }

  // Idle: the transport drops its buffers, and the connection its queue and parse buffer.
  void release_idle_memory() {
    transport_->release_idle_memory();
    std::vector<InFlight>().swap(queue_);
    if (pending_.empty()) {
      std::string().swap(pending_);
    }
    head_ = ResponseHead{};
  }

  // The front exchange's response starts: fresh parser state.
  void begin_response() {
    head_ = ResponseHead{};
    parser_.reset();
    message_done_ = false;
    body_error_ = {};
  }

  // Parses responses for the exchanges in order; returns the bytes used (all, once closed).
  std::size_t consume(std::span<const std::uint8_t> input) {
    std::size_t used = 0;
    while (used < input.size() && !closed_ && !queue_.empty()) {
      InFlight& front = queue_.front();
      if (!front.facts.response_bytes_seen) {
        front.facts.response_bytes_seen = true;
        front.exchange->on_first_byte();
      }
      used += parse(input.subspan(used));
      if (closed_) {
        return input.size();
      }
      if (body_error_) {
        close_with(body_error_, make_error_code(Errc::closed_before_response), body_error_);
        return input.size();
      }
      if (!message_done_) {
        break;  // the response goes on in the next read
      }
      complete_head(used < input.size());
    }
    return used;
  }

  // Feeds the parser until the response is complete, the input is used up, or an error.
  std::size_t parse(std::span<const std::uint8_t> data) {
    std::size_t used = 0;
    while (used < data.size() && !message_done_ && !body_error_) {
      auto n = parser_.feed(data.subspan(used));
      if (!n) {
        close_with(n.error(), make_error_code(Errc::closed_before_response), n.error());
        return data.size();
      }
      if (*n == 0) {
        break;  // an incomplete head: wait for more bytes
      }
      used += *n;
    }
    return used;
  }

  // The front exchange's response is complete. `bytes_follow`: more input after it.
  void complete_head(bool bytes_follow) {
    ++served_;
    ExchangeHandler* done = queue_.front().exchange;
    queue_.erase(queue_.begin());
    // Bytes after the last response are unsolicited; a response that came before its request body
    // was sent leaves the request stream unfinished; an aborted exchange's response is unread.
    const bool reusable = keep_alive_ && writer_ == nullptr &&
                          (queue_.empty() ? !bytes_follow : queue_.front().exchange != nullptr);
    if (!reusable) {
      closed_ = true;
      transport_->close();
      done->on_response_complete();
      close_with({}, make_error_code(Errc::closed_before_response), {});
      return;
    }
    if (queue_.empty()) {
      release_idle_memory();
    } else {
      begin_response();
      if (queue_.front().sent) {
        queue_.front().exchange->on_request_sent();
      }
    }
    done->on_response_complete();
    owner_->on_connection_ready(this);
  }

  // Closes the connection (if still open). The front exchange fails with `front_ec` (empty: it is
  // not in the queue), those behind it with `rest_ec`, the last first so that their retries queue
  // up in the original order; then the owner hears of the close with `why`.
  void close_with(std::error_code front_ec, std::error_code rest_ec, std::error_code why) {
    if (!std::exchange(closed_, true)) {
      transport_->close();
    }
    writer_ = nullptr;
    std::vector<InFlight> lost = std::exchange(queue_, {});
    for (std::size_t i = lost.size(); i-- > 0;) {
      const std::error_code ec = i == 0 && front_ec ? front_ec : rest_ec;
      if (lost[i].exchange != nullptr) {
        lost[i].exchange->on_exchange_error(ec, lost[i].facts);
      }
    }
    owner_->on_connection_closed(this, why);
  }

  void shut(std::error_code why) {
    closed_ = true;
    transport_->close();
    owner_->on_connection_closed(this, why);
  }

  Result<std::string> build_head(const ExchangeHandler& exchange) {
    const Request& req = exchange.request();
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
    bool chunked = false;
    if (req.body_source) {
      if (auto cl = req.headers.get("Content-Length")) {
        length = parse_length(*cl);
        if (!length) {
          return fail(Errc::invalid_argument);
        }
      } else {
        chunked = true;
      }
    } else if (!req.body.empty() || method_is(req, "POST") || method_is(req, "PUT") ||
               method_is(req, "PATCH")) {
      length = req.body.size();  // RFC 9110 §8.6: a POST without body still says 0
    }
    std::string out;
    HOLDFAST_TRY(http1::serialize_request_head(out, req.method, exchange.target(),
                                               exchange.host_header(), fields, length, chunked));
    chunked_ = chunked;
    return out;
  }

  // Streams writer_'s body while the transport's queue is short (it is the only request in
  // flight: nothing is pipelined behind a streamed body).
  void pump_body() {
    std::array<std::uint8_t, kBodyPiece> piece{};
    while (writer_ != nullptr && transport_->pending_output() < kBodyHighWater) {
      auto n = writer_->request().body_source(piece);
      if (!n) {
        const auto ec = make_error_code(Errc::body_source_failed);
        close_with(ec, make_error_code(Errc::closed_before_response), ec);
        return;
      }
      std::string out;
      if (*n == 0) {
        if (chunked_) {
          (void)http1::serialize_last_chunk(out);  // no trailers: cannot fail
          transport_->write(std::move(out));
        }
        writer_ = nullptr;
        queue_.front().sent = true;
        queue_.front().exchange->on_request_sent();
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
  std::size_t depth_;  // requests in flight at most (1: no pipelining)
  // In flight; the front one's response is being read. A vector, not a deque: an empty deque
  // allocates ~576 B up front, on every idle connection.
  std::vector<InFlight> queue_;
  ExchangeHandler* writer_ = nullptr;  // the exchange whose body_source is being sent
  ResponseHead head_;
  std::string pending_;  // response bytes not parsed yet (an incomplete head, a next response)
  std::error_code body_error_;
  std::uint64_t served_ = 0;
  bool connected_ = false;
  bool closed_ = false;
  bool closing_ = false;  // a response said "Connection: close": pipeline nothing more
  bool keep_alive_ = false;
  bool message_done_ = false;
  bool chunked_ = false;
};

}  // namespace

bool is_idempotent(const Request& request) {
  for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    if (method_is(request, m)) {
      return true;
    }
  }
  return request.headers.contains("Idempotency-Key");
}

std::unique_ptr<ClientConnection> make_http1_client_connection(
    std::unique_ptr<transport::Transport> transport, ConnectionOwner* owner,
    Http1ClientLimits limits) {
  return std::make_unique<Http1ClientConnection>(std::move(transport), owner, limits);
}

}  // namespace holdfast::http
