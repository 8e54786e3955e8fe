// Back-pressure over one TLS connection: thousands of 64 KiB exchanges through 4 KiB socket
// buffers with server KeyUpdates, on both TLS record paths, HTTP/2 and HTTP/1.1 (incident 004).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <string>

#include <gtest/gtest.h>

#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/server.h"
#include "support/tls_fixture.h"
#include "tls/engine.h"

namespace holdfast::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kBodySize = 64 * 1024;
constexpr int kSocketBuffer = 4 * 1024;     // SO_SNDBUF and SO_RCVBUF, both ends
constexpr int kKeyUpdateEvery = 100;        // requests between two server KeyUpdates
constexpr int kInFlight = 32;               // requests the test keeps outstanding at once
constexpr int kUploadEvery = 10;            // requests that carry a 64 KiB body: one in ten
constexpr std::size_t kPipelineDepth = 16;  // HTTP/1.1 requests in flight on the connection

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// 10,000 exchanges per variant; fewer under ASan, where each byte costs several times more
// (HOLDFAST_BACKPRESSURE_REQUESTS overrides both).
int request_count() {
  if (const char* env = std::getenv("HOLDFAST_BACKPRESSURE_REQUESTS"); env != nullptr) {
    const int n = std::atoi(env);
    if (n >= 2) {
      return n;
    }
  }
  return kSanitized ? 1'000 : 10'000;
}

// Pseudo-random bytes, made once: bodies are windows into them.
const std::string& random_block() {
  static const std::string block = [] {
    std::string b(2 * kBodySize, '\0');
    std::uint32_t x = 12345;
    for (auto& c : b) {
      x = x * 1664525u + 1013904223u;  // LCG
      c = static_cast<char>('a' + (x >> 24) % 26);
    }
    return b;
  }();
  return block;
}

// A body no other index produces: the index in the first bytes, then a window into
// random_block() at an offset derived from the index and `salt` (request and response bodies
// differ), so a response matched to the wrong request, or bytes shifted or lost in a record,
// cannot compare equal.
std::string body_for(int index, char salt) {
  const std::string head = std::to_string(index) + (salt == 'q' ? ":request:" : ":response:");
  const std::size_t offset =
      (static_cast<std::size_t>(index) * 7919 + static_cast<unsigned char>(salt)) % kBodySize;
  std::string body = head;
  body.append(random_block(), offset, kBodySize - head.size());
  return body;
}

// The index in a path "/r/<index>", or -1.
int index_of(const std::string& url) {
  constexpr std::string_view kPrefix = "/r/";
  if (url.compare(0, kPrefix.size(), kPrefix) != 0) {
    return -1;
  }
  return std::atoi(url.c_str() + kPrefix.size());
}

// What the server saw: KeyUpdates queued and refused, socket buffer sizes in effect.
struct ServerSide {
  std::atomic<int> handled{0};
  std::atomic<int> key_updates{0};
  std::atomic<int> key_update_failures{0};
  std::atomic<int> bad_requests{0};
};

// Answers PUT /r/<i> carrying body_for(i, 'q') with body_for(i, 's') and "x-index: i"; any other
// request body gets 400. Every kKeyUpdateEvery-th request makes the server send a KeyUpdate
// (asking the client to update too) before its response.
Handler echo_handler(ServerSide& side) {
  return [&side](const Request& request, const ResponseWriter& w) {
    const int index = index_of(request.url);
    Response response;
    const bool upload = index % kUploadEvery == 0;
    if (index < 0 || request.body != (upload ? body_for(index, 'q') : std::string())) {
      side.bad_requests.fetch_add(1);
      response.status = 400;
      w.send(std::move(response));
      return;
    }
    if (side.handled.fetch_add(1) % kKeyUpdateEvery == kKeyUpdateEvery - 1) {
      w.request_tls_key_update(true, [&side](Result<void> r) {
        (r ? side.key_updates : side.key_update_failures).fetch_add(1);
      });
    }
    response.headers.add("x-index", std::to_string(index));
    response.body = body_for(index, 's');
    w.send(std::move(response));
  };
}

// 4 KiB send and receive buffers, and a check of what the kernel made of them (it doubles the
// value for its bookkeeping: at most 8 KiB).
constexpr int kPathMss = 1400;  // an Ethernet path's MSS

SocketOptions small_buffers(std::atomic<int>& too_large) {
  SocketOptions options;
  options.send_buffer = kSocketBuffer;
  options.receive_buffer = kSocketBuffer;
  options.on_socket = [&too_large](int fd, SocketRole role) -> Result<void> {
    // Loopback's MSS (~64 KiB) against 4 KiB buffers lets the receive window settle just under
    // one MSS: Linux then sends nothing but zero-window probes on an exponential backoff (seen:
    // 8 KiB unsent for minutes, `ss -ti`: rwnd_limited 99.9 %, snd_wnd 2585 < mss 2679). A
    // real path's MSS (the client's SYN clamps both directions) keeps the test about holdfast.
    if (role == SocketRole::client_connect &&
        ::setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &kPathMss, sizeof kPathMss) != 0) {
      too_large.fetch_add(1);
    }
    for (int name : {SO_SNDBUF, SO_RCVBUF}) {
      int value = 0;
      socklen_t len = sizeof value;
      if (::getsockopt(fd, SOL_SOCKET, name, &value, &len) != 0 || value > 2 * kSocketBuffer) {
        too_large.fetch_add(1);
      }
    }
    return {};
  };
  return options;
}

struct Variant {
  const char* name;
  bool http2;
  bool record_takeover;  // own TLS 1.3 record layer (true) or the kept OpenSSL SSL (false)
};

// What the client saw, filled in by completion callbacks on the client's loop thread.
struct ClientSide {
  std::mutex mutex;
  std::string first_failure;
  int failures = 0;
  int not_reused = 0;
  int completed = 0;

  // Checks one response; returns how many have completed, this one included.
  int record(int index, const Result<Response>& r, HttpVersion version) {
    std::string why;
    if (!r) {
      why = describe(r.error());
    } else if (r->status != 200) {
      why = "status " + std::to_string(r->status);
    } else if (r->headers.get("x-index") != std::to_string(index)) {
      why = "x-index " + std::string(r->headers.get("x-index").value_or("(none)"));
    } else if (r->body != body_for(index, 's')) {
      why = "body of " + std::to_string(r->body.size()) + " bytes is not the one for this index";
    } else if (r->version != version) {
      why = "answered over " + std::string(to_string(r->version));
    }
    const std::lock_guard lock(mutex);
    ++completed;
    if (r && !r->timings.reused_connection && index != 0) {
      ++not_reused;
    }
    if (!why.empty() && failures++ == 0) {
      first_failure = "request " + std::to_string(index) + ": " + why;
    }
    return completed;
  }
};

class Backpressure : public ::testing::TestWithParam<Variant> {};

// Every kUploadEvery-th request carries a 64 KiB body too (PUT: idempotent, so HTTP/1.1
// pipelining may carry it); the others are GETs.
Request put_request(const std::string& base, int index) {
  Request request;
  request.url = base + "/r/" + std::to_string(index);
  if (index % kUploadEvery == 0) {
    request.method = "PUT";
    request.body = body_for(index, 'q');
  }
  return request;
}

TEST_P(Backpressure, EveryResponseMatchesItsRequestOnOneConnectionWithoutResets) {
  const Variant v = GetParam();
  const int n = request_count();
  std::atomic<int> oversized_buffers{0};

  ServerSide side;
  ServerOptions server_options;
  ServerTlsOptions tls;
  tls.cert_pem = test_certificate().cert.cert_pem;
  tls.key_pem = test_certificate().cert.key_pem;
  tls.record_takeover = v.record_takeover;
  server_options.tls = tls;
  server_options.socket = small_buffers(oversized_buffers);
  server_options.limits.max_pipelined = kInFlight;
  auto server = Server::start(server_options, echo_handler(side));
  ASSERT_TRUE(server.has_value()) << describe(server.error());

  ClientOptions client_options;
  client_options.tls.ca_file = test_certificate().cert_file;
  client_options.tls.record_takeover = v.record_takeover;
  client_options.socket = small_buffers(oversized_buffers);
  client_options.force_http1 = !v.http2;
  const std::string base = "https://127.0.0.1:" + std::to_string((*server)->port());
  if (!v.http2) {
    client_options.pool.max_per_origin = 1;  // every request over the one connection
    client_options.pool.pipeline_depth = kPipelineDepth;
    client_options.pool.pipeline_origins = {base};
  }
  const HttpVersion version = v.http2 ? HttpVersion::http2 : HttpVersion::http1_1;
  // Requests 1..n-1, kInFlight at a time: each completion starts the next request from the
  // client's loop thread, so no waiting thread sits between a response and the next request.
  // Declared before the client, which may still complete requests (cancelled) as it goes.
  ClientSide seen;
  std::atomic<int> next{1};
  std::atomic<bool> stop{false};
  std::promise<void> all_done;
  std::function<void()> launch;
  const std::uint64_t takeovers_before = tls::Engine::takeovers();
  Client client(client_options);
  launch = [&] {
    const int i = next.fetch_add(1);
    if (i >= n || stop.load()) {
      return;
    }
    client.request_async(put_request(base, i), {}, [&, i](Result<Response> r) {
      if (seen.record(i, r, version) == n) {
        all_done.set_value();
      }
      launch();
    });
  };
  seen.record(0, client.request(put_request(base, 0)), version);  // the connection, alone
  for (int k = 0; k < kInFlight; ++k) {
    launch();
  }
  const bool finished = all_done.get_future().wait_for(120s) == std::future_status::ready;
  stop = true;
  ASSERT_TRUE(finished) << "stuck after " << next.load() << " requests started";

  EXPECT_EQ(seen.completed, n);
  EXPECT_EQ(seen.failures, 0) << seen.first_failure;
  EXPECT_EQ(seen.not_reused, 0) << "requests after the first that did not reuse the connection";
  const auto client_stats = client.stats();
  EXPECT_EQ(client_stats.connections_opened, 1u);
  EXPECT_EQ(client_stats.retries, 0u);
  EXPECT_EQ(client_stats.requests_sent, static_cast<std::uint64_t>(n));
  if (!v.http2) {
    EXPECT_GT(client_stats.pipelined, 0u) << "HTTP/1.1 requests were not pipelined";
  }
  const auto server_stats = (*server)->stats();
  EXPECT_EQ(server_stats.connections_accepted, 1u);
  EXPECT_EQ(server_stats.connections_open, 1u) << "the one connection must still be up";
  EXPECT_EQ(server_stats.requests, static_cast<std::uint64_t>(n));
  EXPECT_EQ(server_stats.protocol_errors, 0u);
  EXPECT_EQ(side.bad_requests.load(), 0) << "request bodies arrived damaged";
  EXPECT_EQ(side.key_updates.load(), n / kKeyUpdateEvery);
  EXPECT_EQ(side.key_update_failures.load(), 0);
  EXPECT_EQ(oversized_buffers.load(), 0) << "a socket kept buffers above 4 KiB (x2)";
  EXPECT_EQ(tls::Engine::takeovers() - takeovers_before, v.record_takeover ? 2u : 0u)
      << "the connection did not run on the record path under test";
}

INSTANTIATE_TEST_SUITE_P(OneTlsConnection, Backpressure,
                         ::testing::Values(Variant{"Http2Takeover", true, true},
                                           Variant{"Http2KeptSsl", true, false},
                                           Variant{"Http1PipelinedTakeover", false, true},
                                           Variant{"Http1PipelinedKeptSsl", false, false}),
                         [](const ::testing::TestParamInfo<Variant>& param) {
                           return std::string(param.param.name);
                         });

}  // namespace
}  // namespace holdfast::testing
