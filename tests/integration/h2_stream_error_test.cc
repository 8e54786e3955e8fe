// Stream errors end one stream and leave the rest: handler resets (ResponseWriter::reset), an
// oversized header list, and the per-stream header_read / body_read timeouts of the HTTP/2 server.
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/http2_error.h"
#include "holdfast/server.h"
#include "http2/session.h"
#include "support/raw_client.h"
#include "support/tls_fixture.h"

namespace holdfast::testing {
namespace {

using namespace std::chrono_literals;

// A client trusting the test certificate; `http1`: never HTTP/2, and no transparent retry (the
// test sees the failure itself).
ClientOptions client_options(bool http1 = false) {
  ClientOptions options;
  options.tls.ca_file = test_certificate().cert_file;
  options.force_http1 = http1;
  options.retry = !http1;
  return options;
}

// "/reset": starts a streamed response, writes a piece, then gives up (INTERNAL_ERROR);
// "/cancel": resets with CANCEL before any response; "/slow": answers after 200 ms (so the other
// streams are still open when the resets happen); anything else: its path.
Handler resetting_handler() {
  return [](const Request& request, const ResponseWriter& w) {
    if (request.url == "/reset") {
      w.start(200, {});
      w.write("partial");
      w.reset();
      return;
    }
    if (request.url == "/cancel") {
      w.reset(Http2Errc::cancel);
      return;
    }
    if (request.url == "/slow") {
      w.after(200ms, [](const ResponseWriter& later) {
        Response r;
        r.body = "slow";
        later.send(std::move(r));
      });
      return;
    }
    Response r;
    r.body = request.url;
    w.send(std::move(r));
  };
}

// Starts every request at once and waits (bounded) for all of them.
std::vector<Result<Response>> run_all(Client& client, std::vector<Request> requests) {
  std::vector<std::promise<Result<Response>>> done(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    client.request_async(std::move(requests[i]), {},
                         [&done, i](Result<Response> r) { done[i].set_value(std::move(r)); });
  }
  std::vector<Result<Response>> results;
  for (auto& d : done) {
    auto f = d.get_future();
    if (f.wait_for(20s) != std::future_status::ready) {
      ADD_FAILURE() << "a request never completed";
      results.emplace_back(fail(Errc::deadline_exceeded));
      continue;
    }
    results.push_back(f.get());
  }
  return results;
}

Request request_for(const std::string& url) {
  Request request;
  request.url = url;
  return request;
}

TEST(Http2StreamErrors, HandlerResetsAndAnOversizedHeaderEndOnlyTheirStreams) {
  ServerOptions server_options;
  server_options.limits.http2_max_header_list_size = 8 * 1024;
  auto server = start_server(resetting_handler(), false, server_options);
  Client client(client_options());
  const std::string base = base_url(*server);
  ASSERT_TRUE(client.get(base + "/warm").has_value());  // one connection, SETTINGS known

  std::vector<Request> requests;
  const std::vector<std::string> paths = {"/a", "/slow", "/reset", "/b", "/cancel", "/slow", "/c"};
  for (const auto& path : paths) {
    requests.push_back(request_for(base + path));
  }
  Request big = request_for(base + "/big");
  for (int i = 0; i < 20; ++i) {  // ~20 KiB of fields against the server's 8 KiB
    big.headers.add("x-filler-" + std::to_string(i), std::string(1000, 'v'));
  }
  requests.push_back(std::move(big));
  auto results = run_all(client, std::move(requests));

  for (std::size_t i = 0; i < paths.size(); ++i) {
    const auto& r = results[i];
    if (paths[i] == "/reset") {
      ASSERT_FALSE(r.has_value()) << "a reset stream must not look like a whole response";
      EXPECT_EQ(r.error(), Http2Errc::internal_error) << describe(r.error());
    } else if (paths[i] == "/cancel") {
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error(), Http2Errc::cancel) << describe(r.error());
    } else {
      ASSERT_TRUE(r.has_value()) << paths[i] << ": " << describe(r.error());
      EXPECT_EQ(r->body, paths[i] == "/slow" ? "slow" : paths[i]);
    }
  }
  // RFC 9113 §10.5.1 / RFC 6585 §5: a header list over the limit is answered 431 on its stream.
  ASSERT_TRUE(results.back().has_value()) << describe(results.back().error());
  EXPECT_EQ(results.back()->status, 431);

  auto after = client.get(base + "/after");  // the connection is still in service
  ASSERT_TRUE(after.has_value()) << describe(after.error());
  EXPECT_TRUE(after->timings.reused_connection);
  EXPECT_EQ(server->stats().connections_accepted, 1u);
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(client.stats().retries, 0u);
}

TEST(Http2StreamErrors, ResetTellsAStreamedBodyReaderItWasCancelled) {
  ServerOptions server_options;
  server_options.stream_body = [](const Request& r) { return r.url == "/upload"; };
  std::promise<std::error_code> reader_end;
  auto server = start_server(
      [&reader_end](const Request& request, const ResponseWriter& w) {
        if (request.url != "/upload") {
          Response r;
          r.body = "fine";
          w.send(std::move(r));
          return;
        }
        auto reset_once = std::make_shared<bool>(false);
        w.read_body(
            [w, reset_once](std::span<const std::uint8_t>) -> Result<void> {
              if (!*reset_once) {
                *reset_once = true;
                w.reset();  // the handler gives up after the first piece
              }
              return {};
            },
            [&reader_end](Result<void> end) {
              reader_end.set_value(end ? std::error_code() : end.error());
            });
      },
      false, server_options);
  Client client(client_options());
  Request upload = request_for(base_url(*server) + "/upload");
  upload.method = "POST";
  upload.body = std::string(1u << 20, 'u');
  std::vector<Request> requests;
  requests.push_back(std::move(upload));
  requests.push_back(request_for(base_url(*server) + "/other"));
  auto results = run_all(client, std::move(requests));

  ASSERT_FALSE(results[0].has_value());
  EXPECT_EQ(results[0].error(), Http2Errc::internal_error) << describe(results[0].error());
  ASSERT_TRUE(results[1].has_value()) << describe(results[1].error());
  EXPECT_EQ(results[1]->body, "fine");
  auto end = reader_end.get_future();
  ASSERT_EQ(end.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(end.get(), Errc::cancelled);
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

// HTTP/1.1 has no stream to reset: the connection closes, so the client cannot take the part
// already sent for a whole response; the next request opens a new connection.
TEST(Http1Reset, ClosesTheConnectionInsteadOfEndingTheResponseEarly) {
  auto server = start_server(resetting_handler());
  Client client(client_options(true));
  const std::string base = base_url(*server);

  auto partial = client.get(base + "/reset");  // chunked head and one chunk, then the reset
  ASSERT_FALSE(partial.has_value()) << "body: " << partial->body;
  EXPECT_EQ(partial.error(), Errc::connection_closed) << describe(partial.error());

  ASSERT_TRUE(client.get(base + "/warm").has_value());
  auto nothing = client.get(base + "/cancel");  // reset before any response byte
  ASSERT_FALSE(nothing.has_value());
  EXPECT_EQ(nothing.error(), Errc::closed_before_response) << describe(nothing.error());

  auto after = client.get(base + "/after");
  ASSERT_TRUE(after.has_value()) << describe(after.error());
  EXPECT_EQ(after->body, "/after");
  EXPECT_EQ(server->stats().connections_accepted, 3u);
}

// ---- HTTP/2 read timeouts (h2c with prior knowledge, driven frame by frame) ----

// An HTTP/2 client session over a blocking loopback socket, for frame-level control.
class RawH2Client final : public http2::SessionHandler {
 public:
  explicit RawH2Client(std::uint16_t port) : socket_(port) {
    session_ = std::move(*http2::Session::client(this, {}));
  }

  std::int32_t open(const std::string& method, const std::string& path, bool has_body,
                    Headers headers = {}) {
    http2::Head head;
    head.method = method;
    head.scheme = "http";
    head.authority = "127.0.0.1";
    head.path = path;
    head.headers = std::move(headers);
    auto id = session_->submit_request(head, has_body);
    return id ? *id : 0;
  }
  void write(std::int32_t id, const std::string& data) { session_->write(id, data); }
  void end(std::int32_t id) { session_->end_stream(id); }

  // Sends what is queued and reads until `done()` holds or `timeout` passes.
  template <typename Pred>
  bool pump_until(Pred done, std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      std::string out;
      (void)session_->send(out);
      socket_.send(out);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !socket_.fill(std::min(left, 100ms))) {
        if (left.count() <= 0) {
          return false;
        }
        continue;
      }
      auto bytes = *socket_.take(socket_.buffered().size());
      if (!session_->receive({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()})) {
        return false;
      }
    }
    return true;
  }

  struct Stream {
    int status = 0;
    std::string body;
    bool closed = false;
    std::error_code error;
  };
  std::map<std::int32_t, Stream> streams;

 private:
  void on_head(std::int32_t id, http2::Head head, bool) override {
    streams[id].status = head.status;
  }
  void on_body(std::int32_t id, std::span<const std::uint8_t> data) override {
    streams[id].body.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
  void on_end_stream(std::int32_t) override {}
  void on_stream_closed(std::int32_t id, std::error_code ec) override {
    streams[id].closed = true;
    streams[id].error = ec;
  }

  RawClient socket_;
  std::unique_ptr<http2::Session> session_;
};

ServerOptions h2c_options() {
  ServerOptions options;
  options.h2c_prior_knowledge = true;
  options.timeouts.keepalive_idle = 30s;  // only the timeout under test may end anything
  return options;
}

Handler path_handler() {
  return [](const Request& request, const ResponseWriter& w) {
    Response r;
    r.body = request.url;
    w.send(std::move(r));
  };
}

TEST(Http2Timeouts, SilentRequestBodyGets408AndOnlyItsStreamEnds) {
  ServerOptions options = h2c_options();
  options.timeouts.body_read = 300ms;
  auto server = start_server(path_handler(), true, options);
  RawH2Client peer(server->port());
  const auto start = std::chrono::steady_clock::now();
  const std::int32_t stalled = peer.open("POST", "/upload", true, {{"content-length", "100"}});
  peer.write(stalled, std::string(10, 'x'));  // then 90 bytes that never come
  const std::int32_t fine = peer.open("GET", "/fine", false);
  ASSERT_TRUE(peer.pump_until([&] { return peer.streams[stalled].closed; }))
      << "the stalled stream was never ended";
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 290ms);
  EXPECT_EQ(peer.streams[stalled].status, 408);
  EXPECT_FALSE(peer.streams[stalled].error) << "RST_STREAM NO_ERROR after a whole response";
  EXPECT_EQ(peer.streams[fine].status, 200);
  EXPECT_EQ(peer.streams[fine].body, "/fine");

  const std::int32_t later = peer.open("GET", "/later", false);  // same connection, still up
  ASSERT_TRUE(peer.pump_until([&] { return peer.streams[later].closed; }));
  EXPECT_EQ(peer.streams[later].body, "/later");
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

TEST(Http2Timeouts, BodyArrivingSlowerThanTheTimeoutButSteadilyIsRead) {
  ServerOptions options = h2c_options();
  // Pieces every 250 ms, 1.5 s in all: longer than body_read in all, and each gap far inside it
  // even when a loaded machine delays a piece.
  options.timeouts.body_read = 1200ms;
  auto server = start_server(
      [](const Request& request, const ResponseWriter& w) {
        Response r;
        r.body = std::to_string(request.body.size());
        w.send(std::move(r));
      },
      true, options);
  RawH2Client peer(server->port());
  const std::int32_t id = peer.open("POST", "/upload", true);
  for (int i = 0; i < 6; ++i) {
    peer.write(id, "0123456789");
    (void)peer.pump_until([] { return false; }, 250ms);
  }
  peer.end(id);
  ASSERT_TRUE(peer.pump_until([&] { return peer.streams[id].closed; }));
  EXPECT_EQ(peer.streams[id].status, 200);
  EXPECT_EQ(peer.streams[id].body, "60");
}

TEST(Http2Timeouts, HeaderBlockThatNeverEndsClosesTheConnection) {
  ServerOptions options = h2c_options();
  options.timeouts.header_read = 300ms;
  auto server = start_server(path_handler(), true, options);
  RawClient raw(server->port());
  ASSERT_TRUE(raw.connected());
  const auto start = std::chrono::steady_clock::now();
  // Preface, empty SETTINGS, then HEADERS on stream 1 without END_HEADERS (":method: GET",
  // HPACK index 2) and never the CONTINUATION (RFC 9113 §6.10).
  std::string bytes = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  bytes += std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  bytes += std::string("\x00\x00\x01\x01\x00\x00\x00\x00\x01\x82", 10);
  raw.send(bytes);
  ASSERT_TRUE(raw.closed_within(5s)) << "the connection outlived header_read";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 290ms);
  // Frames: 9-byte headers; a GOAWAY (type 7) came before the close.
  bool goaway = false;
  const std::string& in = raw.buffered();
  for (std::size_t at = 0; at + 9 <= in.size();) {
    const std::size_t length = (static_cast<std::uint8_t>(in[at]) << 16) |
                               (static_cast<std::uint8_t>(in[at + 1]) << 8) |
                               static_cast<std::uint8_t>(in[at + 2]);
    goaway = goaway || in[at + 3] == 0x07;
    at += 9 + length;
  }
  EXPECT_TRUE(goaway) << "no GOAWAY before the close";
}

}  // namespace
}  // namespace holdfast::testing
