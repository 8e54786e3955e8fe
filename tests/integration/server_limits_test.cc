// Server integration: limits (400/413/414/431/501), timeouts, graceful shutdown, TLS through curl.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "holdfast/certs.h"
#include "holdfast/error.h"
#include "holdfast/http.h"
#include "holdfast/server.h"

namespace holdfast {
namespace {

using namespace std::chrono_literals;

// The same blocking test client as server_http_test.cc (kept per file: each test file is
// self-contained).
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// A blocking HTTP/1.1 client on one loopback socket: sends raw bytes, parses responses (with
// Content-Length, chunked, or until close). Every wait is bounded.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }

  void send(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      auto n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      off += static_cast<std::size_t>(n);
    }
  }

  // Reads more bytes into the buffer; false on EOF, error or timeout.
  bool fill(std::chrono::milliseconds timeout = 3000ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
      return false;
    }
    char buf[16384];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  // Exactly `n` bytes (or nullopt).
  std::optional<std::string> take(std::size_t n) {
    while (buffer_.size() < n) {
      if (!fill()) {
        return std::nullopt;
      }
    }
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return out;
  }

  std::optional<std::string> line() {
    std::size_t pos;
    while ((pos = buffer_.find("\r\n")) == std::string::npos) {
      if (!fill()) {
        return std::nullopt;
      }
    }
    std::string out = buffer_.substr(0, pos);
    buffer_.erase(0, pos + 2);
    return out;
  }

  std::optional<RawResponse> read_response(bool head_request = false) {
    RawResponse r;
    auto status_line = line();
    if (!status_line || status_line->size() < 12) {
      return std::nullopt;
    }
    r.status = std::stoi(status_line->substr(9, 3));
    while (true) {
      auto l = line();
      if (!l) {
        return std::nullopt;
      }
      if (l->empty()) {
        break;
      }
      auto colon = l->find(':');
      std::string name = l->substr(0, colon);
      for (auto& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      r.headers[name] = l->substr(l->find_first_not_of(' ', colon + 1));
    }
    if (head_request || r.status < 200 || r.status == 204 || r.status == 304) {
      return r;
    }
    if (r.headers.count("content-length") != 0) {
      auto body = take(std::stoul(r.headers["content-length"]));
      if (!body) {
        return std::nullopt;
      }
      r.body = *body;
    } else if (auto te = r.headers.find("transfer-encoding");
               te != r.headers.end() && te->second == "chunked") {
      while (true) {
        auto size_line = line();
        if (!size_line) {
          return std::nullopt;
        }
        const auto size = std::stoul(*size_line, nullptr, 16);
        auto data = take(size + 2);
        if (!data) {
          return std::nullopt;
        }
        if (size == 0) {
          break;
        }
        r.body += data->substr(0, size);
      }
    } else {
      while (fill()) {
      }
      r.body = std::move(buffer_);
      buffer_.clear();
    }
    return r;
  }

  // True when the server closes the connection (EOF or reset) within `timeout`; bytes that
  // arrive meanwhile are kept in the buffer.
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return false;
      }
      fill(left);
    }
    return true;
  }

  [[nodiscard]] const std::string& buffered() const { return buffer_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

Response text(std::string body) {
  Response r;
  r.body = std::move(body);
  return r;
}

std::unique_ptr<Server> start(Handler handler, ServerOptions options = {}) {
  auto server = Server::start(std::move(options), std::move(handler));
  EXPECT_TRUE(server.has_value()) << (server ? "" : describe(server.error()));
  return server ? std::move(*server) : nullptr;
}

void echo(const Request& request, const ResponseWriter& w) {
  w.send(text(request.method + " " + request.url + " " + request.body));
}

// Sends `request` on a fresh connection; expects `status`, then the server's close.
void expect_rejected(Server& server, const std::string& request, int status) {
  RawClient c(server.port());
  c.send(request);
  auto r = c.read_response();
  ASSERT_TRUE(r) << "no response for a request that should get " << status;
  EXPECT_EQ(r->status, status);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.closed_within(3000ms));
}

TEST(ServerLimits, GarbageGets400AndAClose) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  expect_rejected(*server, "\x16\x03\x01 hello there\r\n\r\n", 400);
  expect_rejected(*server, "GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400);
  EXPECT_EQ(server->stats().protocol_errors, 2u);
  EXPECT_EQ(server->stats().requests, 0u);
}

TEST(ServerLimits, HugeHeadersGet431) {
  ServerOptions options;
  options.limits.max_header_bytes = 1024;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  expect_rejected(*server, get("/", "X-Big: " + std::string(4000, 'a') + "\r\n"), 431);
  std::string many;
  for (int i = 0; i < 150; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  options.limits.max_header_bytes = 64 * 1024;
  auto other = start(echo, options);
  ASSERT_TRUE(other);
  expect_rejected(*other, get("/", many), 431);
}

TEST(ServerLimits, LongTargetGets414) {
  ServerOptions options;
  options.limits.max_start_line = 256;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  expect_rejected(*server, get("/" + std::string(1000, 'x')), 414);
}

TEST(ServerLimits, BodyOverTheLimitGets413) {
  ServerOptions options;
  options.limits.max_body = 16;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  // Declared too large: refused before the body (and instead of 100 Continue).
  expect_rejected(*server,
                  "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n"
                  "Expect: 100-continue\r\n\r\n",
                  413);
  // Chunked, growing over the limit.
  expect_rejected(*server,
                  "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
                  413);
  // At the limit: accepted.
  RawClient c(server->port());
  c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n\r\n0123456789abcdef");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(ServerLimits, UnknownTransferCodingGets501) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  expect_rejected(*server,
                  "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: zstd-magic, chunked\r\n\r\n"
                  "0\r\n\r\n",
                  501);
}

TEST(ServerLimits, ErrorIsAnsweredAfterEarlierPipelinedResponses) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/ok") + "GET /\x01 HTTP/1.1\r\n\r\n");
  auto first = c.read_response();
  auto second = c.read_response();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 400);
  EXPECT_TRUE(c.closed_within(3000ms));
}

TEST(ServerLimits, RandomBytesNeverCrashOrHangTheServer) {
  ServerOptions options;
  options.timeouts.header_read = 300ms;
  options.timeouts.body_read = 300ms;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  std::uint32_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return static_cast<char>((seed >> 16) & 0xff);
  };
  const std::string prefixes[] = {"", "GET / HTTP/1.1\r\n", "POST / HTTP/1.1\r\nHost: t\r\n",
                                  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"};
  for (int i = 0; i < 40; ++i) {
    RawClient c(server->port());
    std::string junk = prefixes[i % 4];
    for (int j = 0; j < 64 + i * 50; ++j) {
      junk += next();
    }
    c.send(junk);
    EXPECT_TRUE(c.closed_within(3000ms)) << "connection " << i << " was not closed";
  }
  RawClient c(server->port());
  c.send(get("/still-alive"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /still-alive ");
}

TEST(ServerLimits, MaxConnectionsHoldsNewConnectionsUntilOneCloses) {
  ServerOptions options;
  options.limits.max_connections = 1;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  auto first = std::make_unique<RawClient>(server->port());
  first->send(get("/1"));
  ASSERT_TRUE(first->read_response());
  RawClient second(server->port());  // the kernel completes the handshake; holdfast waits
  second.send(get("/2"));
  EXPECT_FALSE(second.fill(200ms));
  first.reset();
  auto r = second.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /2 ");
}

TEST(ServerTimeouts, SlowlorisHeadIsCutOffAfterTheHeaderTimeout) {
  ServerOptions options;
  options.timeouts.header_read = 200ms;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  const auto begin = std::chrono::steady_clock::now();
  c.send("GET / HTTP/1.1\r\n");
  bool closed = false;
  // Trickle a header byte every 50 ms: progress must not extend the deadline.
  for (int i = 0; i < 40 && !closed; ++i) {
    c.send("X");
    closed = c.closed_within(50ms);
  }
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_TRUE(closed);
  EXPECT_LT(took, 1500ms);
  EXPECT_NE(c.buffered().find("408"), std::string::npos);
}

TEST(ServerTimeouts, IdleKeepAliveConnectionIsClosedQuietly) {
  ServerOptions options;
  options.timeouts.keepalive_idle = 200ms;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));
  ASSERT_TRUE(c.read_response());
  EXPECT_TRUE(c.closed_within(2000ms));
  EXPECT_TRUE(c.buffered().empty());
}

TEST(ServerTimeouts, BodyReadTimeoutCutsAStalledUpload) {
  ServerOptions options;
  options.timeouts.body_read = 200ms;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial");
  EXPECT_TRUE(c.closed_within(2000ms));
}

TEST(ServerTimeouts, WriteStallClosesAConnectionWhoseReaderStopped) {
  ServerOptions options;
  options.timeouts.write = 200ms;
  options.socket.send_buffer = 4096;
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.send(text(std::string(32u << 20, 'x')));  // far more than the socket buffers hold
  }, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));  // and never read
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (server->stats().connections_open != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server->stats().connections_open, 0u);
}

TEST(ServerShutdown, InFlightRequestFinishesAndNewConnectionsAreRefused) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.after(300ms, [](const ResponseWriter& later) { later.send(text("done")); });
  });
  ASSERT_TRUE(server);
  const auto port = server->port();
  RawClient busy(port);
  RawClient idle(port);
  busy.send(get("/slow"));
  std::this_thread::sleep_for(50ms);  // the request is in the handler's hands
  auto stopping = std::async(std::launch::async, [&] { server->shutdown(5s); });
  EXPECT_TRUE(idle.closed_within(1000ms));  // idle connections close at once
  RawClient late(port);
  EXPECT_FALSE(late.connected());  // the listening socket is closed
  auto r = busy.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(busy.closed_within(2000ms));
  EXPECT_EQ(stopping.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(server->stats().connections_open, 0u);
}

TEST(ServerShutdown, GracePeriodBoundsAHandlerThatNeverAnswers) {
  auto server = start([](const Request&, const ResponseWriter&) {});
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));
  std::this_thread::sleep_for(50ms);
  const auto begin = std::chrono::steady_clock::now();
  server->shutdown(200ms);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1500ms);
  EXPECT_TRUE(c.closed_within(1000ms));
}

TEST(ServerTls, CurlGetsAnAnswerOverTls) {
  auto cert = generate_self_signed_certificate({"localhost"}, {"127.0.0.1"});
  ASSERT_TRUE(cert) << describe(cert.error());
  ServerOptions options;
  ServerTlsOptions tls;
  tls.cert_pem = cert->cert_pem;
  tls.key_pem = cert->key_pem;
  options.tls = tls;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  const std::string command = "curl -sk --max-time 5 https://127.0.0.1:" +
                              std::to_string(server->port()) + "/tls 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[256];
  while (auto n = std::fread(buf, 1, sizeof buf, pipe)) {
    out.append(buf, n);
  }
  ::pclose(pipe);
  EXPECT_EQ(out, "GET /tls ");
  EXPECT_GE(server->stats().tls_handshakes, 1u);
}

}  // namespace
}  // namespace holdfast
