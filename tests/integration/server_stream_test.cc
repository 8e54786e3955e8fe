// Server: streamed request bodies (ServerOptions::stream_body, ResponseWriter::read_body) and
// response back-pressure (ResponseWriter::when_writable), over plain HTTP/1.1 for byte control.
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "holdfast/error.h"
#include "holdfast/server.h"
#include "support/raw_client.h"

namespace holdfast::testing {
namespace {

// What the streaming handler saw, read from the test thread.
struct Seen {
  std::mutex mutex;
  std::string body;
  std::size_t chunks = 0;
  bool handler_ran = false;
  bool ended = false;
  std::error_code error;

  void reset() {
    const std::lock_guard lock(mutex);
    body.clear();
    chunks = 0;
    handler_ran = ended = false;
    error = {};
  }
};

ServerOptions stream_everything() {
  ServerOptions options;
  options.stream_body = [](const Request&) { return true; };
  return options;
}

// A handler that reads the whole body through read_body and answers with its size.
Handler counting_handler(Seen& seen) {
  return [&seen](const Request&, const ResponseWriter& w) {
    {
      const std::lock_guard lock(seen.mutex);
      seen.handler_ran = true;
    }
    w.read_body(
        [&seen](std::span<const std::uint8_t> chunk) -> Result<void> {
          const std::lock_guard lock(seen.mutex);
          seen.body.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
          ++seen.chunks;
          return {};
        },
        [&seen, w](Result<void> end) {
          std::size_t size = 0;
          {
            const std::lock_guard lock(seen.mutex);
            seen.ended = true;
            seen.error = end ? std::error_code() : end.error();
            size = seen.body.size();
          }
          if (end) {
            w.send(text("got " + std::to_string(size)));
          }
        });
  };
}

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// The answer to a big upload comes only once the whole body is read, which on a loaded machine can
// take longer than one read_response() wait (3 s without a byte): wait for the reader to see the
// end of the body first, with a bound far above any load.
bool body_ended(Seen& seen) {
  return wait_for(
      [&] {
        const std::lock_guard lock(seen.mutex);
        return seen.ended;
      },
      60s);
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  }
  return s;
}

TEST(ServerStream, HandlerRunsAtTheHeadBeforeTheBodyArrives) {
  Seen seen;
  auto server = start(counting_handler(seen), stream_everything());
  RawClient c(server->port());
  c.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
  ASSERT_TRUE(wait_for([&] {
    const std::lock_guard lock(seen.mutex);
    return seen.handler_ran && seen.body == "01234";
  })) << "the handler must run, and get the first bytes, before the body is complete";
  {
    const std::lock_guard lock(seen.mutex);
    EXPECT_FALSE(seen.ended);
  }
  c.send("56789");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "got 10");
  const std::lock_guard lock(seen.mutex);
  EXPECT_EQ(seen.body, "0123456789");
  EXPECT_FALSE(seen.error);
}

TEST(ServerStream, ChunkedUploadOfManyMegabytesStreamsInPiecesAndKeepsTheConnection) {
  Seen seen;
  auto server = start(counting_handler(seen), stream_everything());
  RawClient c(server->port());
  const std::string body = pattern(8u << 20);
  std::string out = "PUT /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::size_t off = 0; off < body.size(); off += 100'000) {
    const std::size_t n = std::min<std::size_t>(100'000, body.size() - off);
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", n);
    out += size + body.substr(off, n) + "\r\n";
  }
  out += "0\r\n\r\n";
  std::thread sender([&] { c.send(out); });
  const bool ended = body_ended(seen);
  auto r = c.read_response();
  sender.join();
  ASSERT_TRUE(ended) << "the 8 MB body never ended";
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "got " + std::to_string(body.size()));
  {
    const std::lock_guard lock(seen.mutex);
    EXPECT_TRUE(seen.body == body) << "the streamed body differs from the one sent";
    EXPECT_GT(seen.chunks, 4u) << "an 8 MB body arrives in many pieces";
  }
  // Keep-alive: the next request goes over the same connection.
  seen.reset();
  c.send("POST /again HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "got 3");
}

TEST(ServerStream, ReadingPausesUntilTheHandlerAsksForTheBody) {
  Seen seen;
  std::atomic<bool> reading{false};
  Handler handler = [&](const Request& request, const ResponseWriter& w) {
    // Reads the body only 300 ms later: meanwhile at most ~256 KiB is buffered.
    w.after(300ms, [&, h = counting_handler(seen), request](const ResponseWriter& later) {
      reading = true;
      h(request, later);
    });
  };
  auto server = start(handler, stream_everything());
  RawClient c(server->port());
  const std::string body = pattern(4u << 20);
  std::thread sender([&] {
    c.send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body);
  });
  const bool ended = body_ended(seen);
  auto r = c.read_response();
  sender.join();
  ASSERT_TRUE(ended) << "the 4 MB body never ended";
  ASSERT_TRUE(r);
  EXPECT_TRUE(reading);
  EXPECT_EQ(r->body, "got " + std::to_string(body.size()));
  const std::lock_guard lock(seen.mutex);
  EXPECT_TRUE(seen.body == body);
}

TEST(ServerStream, AnAnswerBeforeTheBodyEndsTellsTheReaderAndClosesTheConnection) {
  Seen seen;
  Handler handler = [&](const Request&, const ResponseWriter& w) {
    w.read_body([](std::span<const std::uint8_t>) -> Result<void> { return {}; },
                [&seen](Result<void> end) {
                  const std::lock_guard lock(seen.mutex);
                  seen.ended = true;
                  seen.error = end ? std::error_code() : end.error();
                });
    Response r;
    r.status = 403;
    r.body = "no";
    w.send(std::move(r));
  };
  auto server = start(handler, stream_everything());
  RawClient c(server->port());
  c.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\npartial");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.closed_within(3000ms));
  const std::lock_guard lock(seen.mutex);
  EXPECT_TRUE(seen.ended);
  EXPECT_EQ(seen.error, make_error_code(Errc::cancelled));
}

TEST(ServerStream, ASilentClientMidBodyGivesTheReaderATimeoutAndTheClient408) {
  Seen seen;
  auto options = stream_everything();
  options.timeouts.body_read = 300ms;
  auto server = start(counting_handler(seen), options);
  RawClient c(server->port());
  c.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly this");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  const std::lock_guard lock(seen.mutex);
  EXPECT_TRUE(seen.ended);
  EXPECT_EQ(seen.error, make_error_code(Errc::body_read_timeout));
}

TEST(ServerStream, AClientThatHalfClosesMidBodyEndsTheBodyWithConnectionClosed) {
  Seen seen;
  auto server = start(counting_handler(seen), stream_everything());
  RawClient c(server->port());
  c.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly this");
  ASSERT_TRUE(wait_for([&] {
    const std::lock_guard lock(seen.mutex);
    return seen.body == "only this";
  }));
  ::shutdown(c.fd(), SHUT_WR);
  ASSERT_TRUE(wait_for([&] {
    const std::lock_guard lock(seen.mutex);
    return seen.ended;
  }));
  const std::lock_guard lock(seen.mutex);
  EXPECT_EQ(seen.error, make_error_code(Errc::connection_closed));
}

TEST(ServerStream, AStreamedBodyOverTheLimitEndsWith413) {
  Seen seen;
  auto options = stream_everything();
  options.limits.max_body = 1000;
  auto server = start(counting_handler(seen), options);
  RawClient c(server->port());
  c.send("POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" +
         std::string(1000, 'x') + "\r\n");
  ASSERT_TRUE(wait_for([&] {
    const std::lock_guard lock(seen.mutex);
    return seen.body.size() == 1000;
  }));
  c.send("1\r\ny\r\n0\r\n\r\n");  // one byte too many
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  const std::lock_guard lock(seen.mutex);
  EXPECT_EQ(seen.error, make_error_code(Errc::body_too_large));
}

TEST(ServerStream, ThePredicateChoosesAndReadBodyAlsoWorksForABufferedBody) {
  Seen seen;
  ServerOptions options;
  options.stream_body = [](const Request& head) { return head.url == "/stream"; };
  std::atomic<bool> saw_buffered_body{false};
  Handler inner = counting_handler(seen);
  Handler handler = [&](const Request& request, const ResponseWriter& w) {
    if (request.url == "/buffered") {
      saw_buffered_body = request.body == "hello";
    } else {
      EXPECT_TRUE(request.body.empty()) << "a streamed body is not in Request::body";
    }
    inner(request, w);
  };
  auto server = start(handler, options);
  RawClient c(server->port());
  c.send("POST /buffered HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "got 5");
  EXPECT_TRUE(saw_buffered_body);
  seen.reset();
  c.send("POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd");
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "got 4");
}

// Streams `total` bytes in 16 KiB pieces, each written from when_writable.
struct Pump {
  std::size_t total = 0;
  std::size_t sent = 0;
  std::atomic<std::size_t> written{0};

  void next(const ResponseWriter& w) {
    if (sent >= total) {
      w.finish();
      return;
    }
    const std::size_t n = std::min<std::size_t>(16384, total - sent);
    sent += n;
    written = sent;
    w.write(std::string(n, 'z'));
    w.when_writable([this](const ResponseWriter& again) { next(again); });
  }
};

TEST(ServerStream, WhenWritableKeepsAStreamedResponseToASlowReaderBounded) {
  Pump pump;
  pump.total = 256u << 20;  // 256 MiB: far more than any socket buffer
  Handler handler = [&](const Request&, const ResponseWriter& w) {
    Headers h;
    h.add("Content-Length", std::to_string(pump.total));
    w.start(200, std::move(h));
    pump.next(w);
  };
  auto server = start(handler);
  RawClient c(server->port());
  const int small = 64 * 1024;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  c.send(get("/big"));
  // The handler has started (on a loaded machine that may take a while); then the client reads
  // nothing for 500 ms.
  ASSERT_TRUE(wait_for([&] { return pump.written.load() > 0; }, 30s));
  std::this_thread::sleep_for(500ms);
  const std::size_t stalled = pump.written.load();
  EXPECT_GT(stalled, 0u);
  EXPECT_LT(stalled, 16u << 20) << "the handler was not held back by when_writable";
  // Then the client reads a few MB: the pump resumes.
  auto head = c.line();
  ASSERT_TRUE(head);
  EXPECT_EQ(*head, "HTTP/1.1 200 OK");
  for (int i = 0; i < 300 && c.fill(); ++i) {
  }
  EXPECT_GT(pump.written.load(), stalled);
}

TEST(ServerStream, WhenWritableWaitsForTheTurnOfAPipelinedResponse) {
  std::atomic<int> order{0};
  std::atomic<int> second_ran_at{-1};
  Handler handler = [&](const Request& request, const ResponseWriter& w) {
    if (request.url == "/first") {
      w.after(200ms, [&](const ResponseWriter& later) {
        order = 1;
        later.send(text("first"));
      });
      return;
    }
    Headers h;
    w.start(200, std::move(h));
    w.write("second");
    w.when_writable([&](const ResponseWriter& again) {
      second_ran_at = order.load();
      again.finish();
    });
  };
  auto server = start(handler);
  RawClient c(server->port());
  c.send(get("/first") + get("/second"));
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->body, "first");
  EXPECT_EQ(r2->body, "second");
  EXPECT_EQ(second_ran_at.load(), 1) << "when_writable ran before the first response went out";
}

}  // namespace
}  // namespace holdfast::testing
