// Client <-> Server over loopback TLS and plain TCP: reuse, verification, bodies, retries,
// timeouts.
#include "holdfast/client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/error.h"
#include "holdfast/http1_error.h"
#include "holdfast/server.h"
#include "holdfast/tls_error.h"
#include "support/raw_peer.h"
#include "support/tls_fixture.h"

namespace holdfast {
namespace {

using namespace std::chrono_literals;
using testing::RawPeer;

// Echoes the method, the target and the body; /slow never answers; /close answers with close.
void echo_handler(const Request& req, const ResponseWriter& w) {
  if (req.url == "/never") {
    return;  // the client's timeouts must end this exchange
  }
  Response r;
  r.headers.add("Content-Type", "text/plain");
  r.body = req.method + " " + req.url + " " + req.body;
  if (req.url == "/close") {
    r.headers.add("Connection", "close");
  }
  w.send(std::move(r));
}

ClientOptions trusting_options() {
  ClientOptions o;
  o.tls.ca_file = testing::test_certificate().cert_file;
  return o;
}

TEST(Client, FetchesOverTlsAndReusesTheConnection) {
  auto server = testing::start_server(echo_handler);
  Client client(trusting_options());
  for (int i = 0; i < 20; ++i) {
    auto r = client.get(testing::base_url(*server) + "/hello?i=" + std::to_string(i));
    ASSERT_TRUE(r) << describe(r.error());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET /hello?i=" + std::to_string(i) + " ");
    EXPECT_EQ(r->timings.tls_version, "TLSv1.3");
    EXPECT_EQ(r->timings.reused_connection, i > 0);
  }
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(client.stats().connection_reuses, 19u);
}

TEST(Client, TimingsSayWhichCodeCarriedTheTlsRecords) {
  auto server = testing::start_server(echo_handler);
  Client own(trusting_options());
  ClientOptions kept_options = trusting_options();
  kept_options.tls.record_takeover = false;
  Client kept(kept_options);
  for (int i = 0; i < 3; ++i) {  // the first response too: it completes after the take-over
    auto a = own.get(testing::base_url(*server) + "/own");
    auto b = kept.get(testing::base_url(*server) + "/kept");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->timings.tls_record_path, "holdfast") << i;
    EXPECT_EQ(b->timings.tls_record_path, "openssl") << i;
  }
}

TEST(Client, RefusesASelfSignedServerWithACauseNamingError) {
  auto server = testing::start_server(echo_handler);
  Client client;  // system CA store: the test certificate is not trusted
  auto r = client.get(testing::base_url(*server) + "/");
  ASSERT_FALSE(r);
  EXPECT_TRUE(tls::is_certificate_error(r.error())) << describe(r.error());
  EXPECT_NE(r.error().message().find("self-signed certificate"), std::string::npos)
      << r.error().message();
}

TEST(Client, InsecureOptionSkipsVerification) {
  auto server = testing::start_server(echo_handler);
  ClientOptions o;
  o.tls.insecure_skip_verify = true;
  Client client(o);
  auto r = client.get(testing::base_url(*server) + "/x");
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(r->status, 200);
}

TEST(Client, SendsBodiesFromMemoryAndFromAStream) {
  auto server = testing::start_server(echo_handler);
  Client client(trusting_options());
  Request post;
  post.method = "POST";
  post.url = testing::base_url(*server) + "/p";
  post.body = "payload";
  auto r = client.request(post);
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(r->body, "POST /p payload");

  Request streamed;
  streamed.method = "PUT";
  streamed.url = testing::base_url(*server) + "/s";
  int pieces = 0;
  streamed.body_source = [&pieces](std::span<std::uint8_t> out) -> Result<std::size_t> {
    if (pieces == 100) {
      return std::size_t{0};
    }
    ++pieces;
    const std::string piece = "0123456789";
    std::copy(piece.begin(), piece.end(), out.begin());
    return piece.size();
  };
  auto s = client.request(std::move(streamed));
  ASSERT_TRUE(s) << describe(s.error());
  EXPECT_EQ(s->body.size(), std::string("PUT /s ").size() + 1000);
}

TEST(Client, StreamsAResponseBodyIntoASink) {
  auto server = testing::start_server([](const Request&, const ResponseWriter& w) {
    w.start(200, {});
    for (int i = 0; i < 50; ++i) {
      w.write(std::string(1000, 'a'));
    }
    w.finish();
  });
  Client client(trusting_options());
  Request req;
  req.url = testing::base_url(*server) + "/stream";
  std::size_t received = 0;
  int chunks = 0;
  RequestOptions ro;
  ro.on_body = [&](std::span<const std::uint8_t> c) -> Result<void> {
    received += c.size();
    ++chunks;
    return {};
  };
  auto r = client.request(std::move(req), ro);
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(received, 50'000u);
  EXPECT_GE(chunks, 1);
  EXPECT_TRUE(r->body.empty());
}

TEST(Client, ManyConcurrentRequestsStayWithinThePerOriginLimit) {
  auto server = testing::start_server(echo_handler);
  ClientOptions o = trusting_options();
  o.pool.max_per_origin = 4;
  Client client(o);
  constexpr int kRequests = 200;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  std::promise<void> all_done;
  for (int i = 0; i < kRequests; ++i) {
    Request r;
    r.url = testing::base_url(*server) + "/c" + std::to_string(i);
    client.request_async(std::move(r), {}, [&, i](Result<Response> res) {
      if (res && res->body == "GET /c" + std::to_string(i) + " ") {
        ++ok;
      }
      if (++done == kRequests) {
        all_done.set_value();
      }
    });
  }
  ASSERT_EQ(all_done.get_future().wait_for(30s), std::future_status::ready);
  EXPECT_EQ(ok.load(), kRequests);
  EXPECT_LE(client.stats().connections_opened, 4u);
}

TEST(Client, ResumesTheTlsSessionOnANewConnection) {
  auto server = testing::start_server(echo_handler);
  Client client(trusting_options());
  ASSERT_TRUE(client.get(testing::base_url(*server) + "/a"));
  client.close_idle_connections();
  auto r = client.get(testing::base_url(*server) + "/b");
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_FALSE(r->timings.reused_connection);
  EXPECT_TRUE(r->timings.tls_resumed);
  EXPECT_EQ(client.stats().tls_resumptions, 1u);
}

TEST(Client, RetriesAnIdempotentRequestWhenAReusedConnectionWasClosed) {
  // The peer answers one request per connection without announcing the close, then closes
  // silently: the classic keep-alive race. The second GET must succeed on a fresh connection.
  RawPeer peer([](int fd) {
    RawPeer::read_head(fd);
    RawPeer::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    RawPeer::read_head(fd);  // the next request arrives: drop it unanswered
  });
  Client client;
  auto first = client.get(peer.url("/1"));
  ASSERT_TRUE(first) << describe(first.error());
  auto second = client.get(peer.url("/2"));
  ASSERT_TRUE(second) << describe(second.error());
  EXPECT_EQ(second->body, "ok");
  EXPECT_EQ(client.stats().retries, 1u);
  EXPECT_EQ(peer.accepted(), 2);
}

TEST(Client, DoesNotRetryAPostOnAReusedConnection) {
  RawPeer peer([](int fd) {
    RawPeer::read_head(fd);
    RawPeer::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    RawPeer::read_head(fd);
  });
  Client client;
  ASSERT_TRUE(client.get(peer.url("/1")));
  Request post;
  post.method = "POST";
  post.url = peer.url("/2");
  post.body = "x";
  auto r = client.request(post);
  ASSERT_FALSE(r);
  // The peer closes with the POST's bytes unread or still arriving: its kernel answers them with
  // a reset, so the client sees either the close (FIN read first) or ECONNRESET. Both are the
  // truth; what matters is that the POST, which the server may have acted on, is not sent again.
  const bool closed = r.error() == Errc::closed_before_response;
  const bool reset = r.error() == std::errc::connection_reset;
  EXPECT_TRUE(closed || reset) << describe(r.error());
  EXPECT_EQ(client.stats().retries, 0u);
}

TEST(Client, ReportsATruncatedBody) {
  RawPeer peer([](int fd) {
    RawPeer::read_head(fd);
    RawPeer::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
  });
  Client client;
  auto r = client.get(peer.url("/t"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::connection_closed) << describe(r.error());
}

TEST(Client, ReportsAMalformedResponse) {
  RawPeer peer([](int fd) {
    RawPeer::read_head(fd);
    RawPeer::write_all(fd, "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n");
  });
  Client client;
  auto r = client.get(peer.url("/m"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category(), http1_category()) << describe(r.error());
}

TEST(Client, ResponseHeaderTimeoutEndsASilentExchange) {
  auto server = testing::start_server(echo_handler);
  ClientOptions o = trusting_options();
  o.timeouts.response_headers = 200ms;
  Client client(o);
  const auto start = std::chrono::steady_clock::now();
  auto r = client.get(testing::base_url(*server) + "/never");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::response_header_timeout) << describe(r.error());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(Client, DeadlineEndsTheWholeRequest) {
  auto server = testing::start_server(echo_handler);
  Client client(trusting_options());
  Request req;
  req.url = testing::base_url(*server) + "/never";
  RequestOptions ro;
  ro.timeouts = ClientTimeouts{};
  ro.timeouts->deadline = 300ms;
  auto r = client.request(std::move(req), ro);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::deadline_exceeded) << describe(r.error());
}

TEST(Client, ConnectionRefusedIsASystemError) {
  std::uint16_t port = 0;
  {
    RawPeer peer([](int) {}, 0);
    port = peer.port();
  }  // closed again: nothing listens there now
  Client client;
  auto r = client.get("http://127.0.0.1:" + std::to_string(port) + "/");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::connection_refused) << describe(r.error());
}

TEST(Client, InvalidUrlIsRejectedAtOnce) {
  Client client;
  auto r = client.get("ftp://example.invalid/");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::unsupported_scheme);
}

}  // namespace
}  // namespace holdfast
