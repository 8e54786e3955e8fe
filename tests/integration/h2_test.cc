// HTTP/2 end to end: the holdfast client and server over TLS with ALPN h2 (and h2c), in one
// process.
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/http2_error.h"
#include "holdfast/server.h"
#include "support/tls_fixture.h"

namespace holdfast::testing {
namespace {

using namespace std::chrono_literals;

ClientOptions trusting_client() {
  ClientOptions options;
  options.tls.ca_file = test_certificate().cert_file;
  return options;
}

// Answers "/echo" with the request body, "/reset" by resetting the stream (a handler that gives
// up: the server ends that stream only), "/slow" after 300 ms, anything else with its path.
Handler test_handler() {
  return [](const Request& request, const ResponseWriter& w) {
    Response response;
    if (request.url == "/echo") {
      response.body = request.body;
    } else if (request.url == "/slow") {
      w.after(300ms, [](const ResponseWriter& later) {
        Response r;
        r.body = "slow";
        later.send(std::move(r));
      });
      return;
    } else {
      response.body = request.url;
    }
    response.headers.add("X-Version", std::string(to_string(request.version)));
    w.send(std::move(response));
  };
}

Result<Response> get(Client& client, const std::string& url) { return client.get(url); }

TEST(Http2, ClientAndServerNegotiateH2ByDefault) {
  auto server = start_server(test_handler());
  Client client(trusting_client());
  auto r = get(client, base_url(*server) + "/hello");
  ASSERT_TRUE(r.has_value()) << describe(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->version, HttpVersion::http2);
  EXPECT_EQ(r->timings.alpn, "h2");
  EXPECT_EQ(r->body, "/hello");
  EXPECT_EQ(r->headers.get("x-version"), "HTTP/2");
}

TEST(Http2, ForceHttp1KeepsHttp11) {
  auto server = start_server(test_handler());
  ClientOptions options = trusting_client();
  options.force_http1 = true;
  Client client(options);
  auto r = get(client, base_url(*server) + "/one");
  ASSERT_TRUE(r.has_value()) << describe(r.error());
  EXPECT_EQ(r->version, HttpVersion::http1_1);
  EXPECT_EQ(r->headers.get("X-Version"), "HTTP/1.1");
}

TEST(Http2, ManyConcurrentRequestsShareOneConnection) {
  auto server = start_server(test_handler());
  Client client(trusting_client());
  constexpr int kRequests = 100;  // the server's default stream limit
  std::vector<std::promise<Result<Response>>> done(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    Request request;
    request.url = base_url(*server) + "/r" + std::to_string(i);
    client.request_async(std::move(request), {},
                         [&done, i](Result<Response> r) { done[i].set_value(std::move(r)); });
  }
  for (int i = 0; i < kRequests; ++i) {
    auto f = done[i].get_future();
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready) << "request " << i;
    auto r = f.get();
    ASSERT_TRUE(r.has_value()) << i << ": " << describe(r.error());
    EXPECT_EQ(r->body, "/r" + std::to_string(i));
  }
  EXPECT_EQ(server->stats().connections_accepted, 1u);
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(server->stats().requests, static_cast<std::uint64_t>(kRequests));
}

TEST(Http2, SecondConnectionOpensOnlyPastTheStreamLimit) {
  ServerOptions server_options;
  server_options.limits.http2_max_concurrent_streams = 4;
  auto server = start_server(test_handler(), false, server_options);
  Client client(trusting_client());
  ASSERT_TRUE(get(client, base_url(*server) + "/warm").has_value());  // SETTINGS known
  constexpr int kRequests = 8;
  std::vector<std::promise<Result<Response>>> done(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    Request request;
    request.url = base_url(*server) + "/slow";
    client.request_async(std::move(request), {},
                         [&done, i](Result<Response> r) { done[i].set_value(std::move(r)); });
  }
  for (auto& d : done) {
    auto f = d.get_future();
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.has_value()) << describe(r.error());
    EXPECT_EQ(r->body, "slow");
  }
  EXPECT_EQ(server->stats().connections_accepted, 2u);
}

TEST(Http2, RequestAndResponseBodiesStreamBothWays) {
  ServerOptions server_options;
  server_options.stream_body = [](const Request& r) { return r.url == "/upload"; };
  auto server = start_server(
      [](const Request& request, const ResponseWriter& w) {
        if (request.url != "/upload") {
          // A streamed response: 64 pieces of 16 KiB, each written once the last one left.
          auto left = std::make_shared<int>(64);
          w.start(200, {{"content-type", "application/octet-stream"}});
          auto pump = std::make_shared<std::function<void(const ResponseWriter&)>>();
          *pump = [left, pump](const ResponseWriter& out) {
            if ((*left)-- == 0) {
              out.finish();
              *pump = nullptr;
              return;
            }
            out.write(std::string(16 * 1024, 'd'));
            out.when_writable(*pump);
          };
          (*pump)(w);
          return;
        }
        auto size = std::make_shared<std::size_t>(0);
        w.read_body(
            [size](std::span<const std::uint8_t> chunk) -> Result<void> {
              *size += chunk.size();
              return {};
            },
            [size, w](Result<void> end) {
              Response r;
              r.body = end ? std::to_string(*size) : describe(end.error());
              w.send(std::move(r));
            });
      },
      false, server_options);
  Client client(trusting_client());
  Request upload;
  upload.method = "POST";
  upload.url = base_url(*server) + "/upload";
  auto sent = std::make_shared<std::size_t>(0);
  upload.body_source = [sent](std::span<std::uint8_t> out) -> Result<std::size_t> {
    const std::size_t total = 3u << 20;
    const std::size_t n = std::min(out.size(), total - *sent);
    std::fill_n(out.begin(), n, std::uint8_t{'u'});
    *sent += n;
    return n;
  };
  auto up = client.request(std::move(upload));
  ASSERT_TRUE(up.has_value()) << describe(up.error());
  EXPECT_EQ(up->body, std::to_string(3u << 20));
  auto down = get(client, base_url(*server) + "/download");
  ASSERT_TRUE(down.has_value()) << describe(down.error());
  EXPECT_EQ(down->body.size(), 64u * 16 * 1024);
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

TEST(Http2, StreamedRequestBodyWaitsForALateReaderUnderFlowControl) {
  ServerOptions server_options;
  server_options.stream_body = [](const Request&) { return true; };
  auto server = start_server(
      [](const Request&, const ResponseWriter& w) {
        // The reader comes late: meanwhile the client is held by the stream window, not refused.
        w.after(200ms, [](const ResponseWriter& later) {
          auto size = std::make_shared<std::size_t>(0);
          later.read_body(
              [size](std::span<const std::uint8_t> chunk) -> Result<void> {
                *size += chunk.size();
                return {};
              },
              [size, later](Result<void> end) {
                Response r;
                r.body = end ? std::to_string(*size) : describe(end.error());
                later.send(std::move(r));
              });
        });
      },
      false, server_options);
  Client client(trusting_client());
  Request upload;
  upload.method = "POST";
  upload.url = base_url(*server) + "/late";
  upload.body = std::string(2u << 20, 'b');
  auto r = client.request(std::move(upload));
  ASSERT_TRUE(r.has_value()) << describe(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, std::to_string(2u << 20));
}

TEST(Http2, HandlerResetEndsOneStreamWhileOthersComplete) {
  auto server = start_server([](const Request& request, const ResponseWriter& w) {
    if (request.url == "/reset") {
      // A streamed response abandoned midway: the handler starts, writes, then drops the
      // exchange with a Content-Length it never fulfils; the server ends the stream when the
      // handler signals a broken body by finishing early.
      w.start(200, {{"content-length", "100"}});
      w.write("short");
      w.finish();
      return;
    }
    Response r;
    r.body = "fine";
    w.send(std::move(r));
  });
  Client client(trusting_client());
  std::vector<std::promise<Result<Response>>> done(5);
  const char* paths[] = {"/a", "/reset", "/b", "/c", "/d"};
  for (int i = 0; i < 5; ++i) {
    Request request;
    request.url = base_url(*server) + paths[i];
    client.request_async(std::move(request), {},
                         [&done, i](Result<Response> r) { done[i].set_value(std::move(r)); });
  }
  for (int i = 0; i < 5; ++i) {
    auto f = done[i].get_future();
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
    auto r = f.get();
    if (i == 1) {
      EXPECT_FALSE(r.has_value()) << "a body shorter than its content-length must fail";
    } else {
      ASSERT_TRUE(r.has_value()) << paths[i] << ": " << describe(r.error());
      EXPECT_EQ(r->body, "fine");
    }
  }
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

TEST(Http2, OversizedHeaderListEndsOnlyThatStream) {
  ServerOptions server_options;
  server_options.limits.http2_max_header_list_size = 8 * 1024;
  auto server = start_server(test_handler(), false, server_options);
  Client client(trusting_client());
  Request big;
  big.url = base_url(*server) + "/big";
  for (int i = 0; i < 20; ++i) {
    big.headers.add("x-filler-" + std::to_string(i), std::string(1000, 'v'));
  }
  std::promise<Result<Response>> big_done;
  client.request_async(std::move(big), {},
                       [&big_done](Result<Response> r) { big_done.set_value(std::move(r)); });
  auto small = get(client, base_url(*server) + "/small");
  auto b = big_done.get_future().get();
  ASSERT_TRUE(b.has_value()) << describe(b.error());
  EXPECT_EQ(b->status, 431);
  ASSERT_TRUE(small.has_value()) << describe(small.error());
  EXPECT_EQ(small->body, "/small");
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

// Waits (bounded far above any load) until `cond` holds.
bool eventually(const std::function<bool()>& cond) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!cond() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  return cond();
}

TEST(Http2, GoawayLetsRequestsInFlightComplete) {
  std::atomic<int> slow_arrived{0};
  auto server = start_server(
      [&slow_arrived, inner = test_handler()](const Request& request, const ResponseWriter& w) {
        if (request.url == "/slow") {
          ++slow_arrived;
        }
        inner(request, w);
      });
  Client client(trusting_client());
  ASSERT_TRUE(get(client, base_url(*server) + "/warm").has_value());
  std::vector<std::promise<Result<Response>>> done(3);
  for (int i = 0; i < 3; ++i) {
    Request request;
    request.url = base_url(*server) + "/slow";
    client.request_async(std::move(request), {},
                         [&done, i](Result<Response> r) { done[i].set_value(std::move(r)); });
  }
  // The requests reach the server's handler (each is answered 300 ms later).
  EXPECT_TRUE(eventually([&] { return slow_arrived.load() == 3; }));
  std::thread stopper([&] { server->shutdown(5s); });  // GOAWAY, then wait for the streams
  for (auto& d : done) {
    auto f = d.get_future();
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.has_value()) << describe(r.error());
    EXPECT_EQ(r->body, "slow");
  }
  stopper.join();
}

TEST(Http2, IdleServerGoawayMakesTheClientOpenANewConnection) {
  ServerOptions server_options;
  server_options.timeouts.keepalive_idle = 1000ms;  // then GOAWAY and close
  auto server = start_server(test_handler(), false, server_options);
  Client client(trusting_client());
  ASSERT_TRUE(get(client, base_url(*server) + "/first").has_value());
  // The server's idle timeout fires (GOAWAY, close); then the client's loop reads the GOAWAY and
  // the close: nothing public shows that, so a pause (500 ms) stands for it.
  ASSERT_TRUE(eventually([&] { return server->stats().connections_open == 0; }));
  std::this_thread::sleep_for(500ms);
  auto r = get(client, base_url(*server) + "/second");
  ASSERT_TRUE(r.has_value()) << describe(r.error());
  EXPECT_EQ(r->body, "/second");
  EXPECT_EQ(server->stats().connections_accepted, 2u);
  EXPECT_EQ(client.stats().retries, 0u) << "a connection that said GOAWAY is not reused";
}

}  // namespace
}  // namespace holdfast::testing
