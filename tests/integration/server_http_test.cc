// Server integration: keep-alive, pipelining, HEAD, chunked bodies, streaming, 100-continue, threads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/error.h"
#include "holdfast/http.h"
#include "holdfast/server.h"

namespace holdfast {
namespace {

using namespace std::chrono_literals;

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

// Echoes the method, target and body: "GET /x body".
void echo(const Request& request, const ResponseWriter& w) {
  Response r;
  r.body = request.method + " " + request.url + " " + request.body;
  w.send(std::move(r));
}

TEST(ServerHttp, KeepAliveServesManyRequestsOnOneConnection) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    c.send(get("/n" + std::to_string(i)));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET /n" + std::to_string(i) + " ");
    EXPECT_EQ(r->headers.count("connection"), 0u);
  }
  EXPECT_EQ(server->stats().connections_accepted, 1u);
  EXPECT_EQ(server->stats().requests, 3u);
}

TEST(ServerHttp, ResponsesCarryDateAndServerHeaders) {
  ServerOptions options;
  options.server_header = "test-server";
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["server"], "test-server");
  ASSERT_EQ(r->headers["date"].size(), 29u);  // "Sun, 06 Nov 1994 08:49:37 GMT"
  EXPECT_EQ(r->headers["date"].substr(25), " GMT");
}

TEST(ServerHttp, PipelinedRequestsAreAnsweredInOrderWhenTheFirstIsSlow) {
  auto server = start([](const Request& request, const ResponseWriter& w) {
    if (request.url == "/slow") {
      w.after(150ms, [](const ResponseWriter& later) { later.send(text("slow")); });
      return;
    }
    w.send(text(request.url));
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/slow") + get("/fast1") + get("/fast2"));
  for (std::string expected : {"slow", "/fast1", "/fast2"}) {
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, expected);
  }
}

TEST(ServerHttp, PipeliningBeyondTheReadAheadLimitStillAnswersEveryRequestInOrder) {
  ServerOptions options;
  options.limits.max_pipelined = 1;
  auto server = start(
      [](const Request& request, const ResponseWriter& w) {
        w.after(10ms, [url = request.url](const ResponseWriter& later) {
          later.send(text(url));
        });
      },
      options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  std::string batch;
  for (int i = 0; i < 6; ++i) {
    batch += get("/" + std::to_string(i));
  }
  c.send(batch);
  for (int i = 0; i < 6; ++i) {
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "/" + std::to_string(i));
  }
}

TEST(ServerHttp, HeadGetsTheContentLengthOfGetButNoBody) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.send(text("hello"));
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto head = c.read_response(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->headers["content-length"], "5");
  // Had a body been sent, it would be read as the next status line.
  c.send(get("/"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
}

TEST(ServerHttp, ChunkedRequestBodyReachesTheHandlerDecoded) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /up hello world");
}

TEST(ServerHttp, StreamedResponseIsSentChunked) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.start(200, Headers{{"Content-Type", "text/plain"}});
    w.write("one ");
    w.after(20ms, [](const ResponseWriter& later) {
      later.write("two");
      later.finish();
    });
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["transfer-encoding"], "chunked");
  EXPECT_EQ(r->body, "one two");
  c.send(get("/"));  // the connection is still usable after the last chunk
  EXPECT_TRUE(c.read_response());
}

TEST(ServerHttp, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  auto interim = c.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  c.send("data");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "PUT /x data");
}

TEST(ServerHttp, HandlerCanAnswerFromAnotherThread) {
  std::mutex mutex;
  std::vector<std::thread> workers;
  auto server = start([&](const Request& request, const ResponseWriter& w) {
    std::lock_guard lock(mutex);
    workers.emplace_back([w, url = request.url] {
      std::this_thread::sleep_for(20ms);
      w.start(201, {});
      w.write(url);
      w.finish();
    });
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/a") + get("/b"));
  auto a = c.read_response();
  auto b = c.read_response();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->status, 201);
  EXPECT_EQ(a->body, "/a");
  EXPECT_EQ(b->body, "/b");
  std::lock_guard lock(mutex);
  for (auto& t : workers) {
    t.join();
  }
}

TEST(ServerHttp, ConnectionCloseIsHonouredAfterTheResponse) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/", "Connection: close\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.closed_within(1000ms));
}

TEST(ServerHttp, Http10ClosesUnlessKeepAliveIsAsked) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  {
    RawClient c(server->port());
    c.send("GET /old HTTP/1.0\r\n\r\n");
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "GET /old ");
    EXPECT_TRUE(c.closed_within(1000ms));
  }
  RawClient c(server->port());
  c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["connection"], "keep-alive");
  c.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto second = c.read_response();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "GET /b ");
}

TEST(ServerHttp, Http10StreamedResponseIsDelimitedByTheClose) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.start(200, {});
    w.write("abc");
    w.finish();
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "abc");
  EXPECT_EQ(r->headers.count("transfer-encoding"), 0u);
}

TEST(ServerHttp, ConnectionsAreSpreadOverLoopThreads) {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  ServerOptions options;
  options.threads = 2;
  auto server = start(
      [&](const Request& request, const ResponseWriter& w) {
        {
          std::lock_guard lock(mutex);
          threads.insert(std::this_thread::get_id());
        }
        echo(request, w);
      },
      options);
  ASSERT_TRUE(server);
  for (int i = 0; i < 4; ++i) {
    RawClient c(server->port());
    c.send(get("/"));
    ASSERT_TRUE(c.read_response());
  }
  std::lock_guard lock(mutex);
  EXPECT_EQ(threads.size(), 2u);
}

}  // namespace
}  // namespace holdfast
