// http2::Session: a client session and a server session wired back to back in memory.
#include "http2/session.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace holdfast::http2 {
namespace {

/// Records every event of one session; optional hooks answer from inside the callbacks.
struct Recorder final : SessionHandler {
  struct StreamLog {
    Head head;
    bool has_head = false;
    bool head_end_stream = false;
    std::string body;
    bool ended = false;
    bool closed = false;
    std::error_code close_error;
  };

  void on_head(std::int32_t id, Head head, bool end_stream) override {
    auto& s = streams[id];
    s.head = std::move(head);
    s.has_head = true;
    s.head_end_stream = end_stream;
    if (on_head_hook) {
      on_head_hook(id, s.head);
    }
  }
  void on_body(std::int32_t id, std::span<const std::uint8_t> data) override {
    streams[id].body.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
  void on_end_stream(std::int32_t id) override {
    streams[id].ended = true;
    if (on_end_hook) {
      on_end_hook(id);
    }
  }
  void on_stream_closed(std::int32_t id, std::error_code ec) override {
    streams[id].closed = true;
    streams[id].close_error = ec;
  }
  void on_stream_drained(std::int32_t id) override { drained.push_back(id); }
  void on_goaway(std::int32_t last, std::error_code ec) override {
    goaway_last = last;
    goaway_error = ec;
    ++goaways;
  }

  std::map<std::int32_t, StreamLog> streams;
  std::vector<std::int32_t> drained;
  std::function<void(std::int32_t, const Head&)> on_head_hook;
  std::function<void(std::int32_t)> on_end_hook;
  std::int32_t goaway_last = -1;
  std::error_code goaway_error;
  int goaways = 0;
};

class SessionPair : public ::testing::Test {
 protected:
  void make(SessionOptions client_options = {}, SessionOptions server_options = {}) {
    client_ = std::move(*Session::client(&client_log_, client_options));
    server_ = std::move(*Session::server(&server_log_, server_options));
  }

  /// Moves bytes both ways until neither side has anything to send (bounded).
  void pump() {
    for (int round = 0; round < 10'000; ++round) {
      std::string c2s;
      std::string s2c;
      ASSERT_TRUE(client_->send(c2s).has_value());
      if (!c2s.empty()) {
        server_result_ = server_->receive(as_span(c2s));
      }
      ASSERT_TRUE(server_->send(s2c).has_value());
      if (!s2c.empty()) {
        ASSERT_TRUE(client_->receive(as_span(s2c)).has_value());
      }
      if (c2s.empty() && s2c.empty()) {
        return;
      }
    }
    FAIL() << "sessions kept talking for 10000 rounds";
  }

  static std::span<const std::uint8_t> as_span(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
  }

  static Head get(std::string path) {
    Head h;
    h.method = "GET";
    h.scheme = "https";
    h.authority = "example.test";
    h.path = std::move(path);
    return h;
  }

  /// Server side: answers every request head with 200 and body = its path.
  void answer_with_path() {
    server_log_.on_end_hook = [this](std::int32_t id) {
      const std::string& path = server_log_.streams[id].head.path;
      ASSERT_TRUE(server_->submit_response(id, 200, {{"X-Path", path}}, true).has_value());
      server_->write(id, path);
      server_->end_stream(id);
    };
  }

  Recorder client_log_;
  Recorder server_log_;
  std::unique_ptr<Session> client_;
  std::unique_ptr<Session> server_;
  Result<void> server_result_;
};

TEST_F(SessionPair, RequestAndResponseCrossInMemory) {
  make();
  answer_with_path();
  auto id = client_->submit_request(get("/hello"), false);
  ASSERT_TRUE(id.has_value());
  pump();
  const auto& served = server_log_.streams[*id];
  EXPECT_EQ(served.head.method, "GET");
  EXPECT_EQ(served.head.authority, "example.test");
  EXPECT_EQ(served.head.path, "/hello");
  EXPECT_TRUE(served.head_end_stream);
  const auto& got = client_log_.streams[*id];
  EXPECT_EQ(got.head.status, 200);
  EXPECT_EQ(got.head.headers.get("x-path"), "/hello");
  EXPECT_EQ(got.body, "/hello");
  EXPECT_TRUE(got.ended);
  EXPECT_TRUE(got.closed);
  EXPECT_FALSE(got.close_error);
}

TEST_F(SessionPair, ManyStreamsMultiplexOnOneSession) {
  make();
  answer_with_path();
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(*client_->submit_request(get("/r" + std::to_string(i)), false));
  }
  pump();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(client_log_.streams[ids[i]].body, "/r" + std::to_string(i));
  }
  EXPECT_EQ(client_->open_streams(), 0u);
}

TEST_F(SessionPair, ConnectionSpecificAndInvalidHeadersAreNotSent) {
  make();
  answer_with_path();
  Head h = get("/");
  h.headers.add("Connection", "keep-alive");
  h.headers.add("Transfer-Encoding", "chunked");
  h.headers.add("X-Keep", "yes");
  h.headers.add("X-Split", "a\r\nInjected: 1");
  h.headers.add("Bad Name", "v");
  (void)client_->submit_request(h, false);
  pump();
  const auto& served = server_log_.streams[1];
  EXPECT_FALSE(served.head.headers.contains("connection"));
  EXPECT_FALSE(served.head.headers.contains("transfer-encoding"));
  EXPECT_EQ(served.head.headers.get("x-keep"), "yes");
  EXPECT_FALSE(served.head.headers.contains("x-split"));
  EXPECT_FALSE(served.head.headers.contains("injected"));
  EXPECT_EQ(served.head.headers.size(), 1u) << "only x-keep arrives";
}

TEST_F(SessionPair, ResetStreamLeavesOtherStreams) {
  make();
  server_log_.on_end_hook = [this](std::int32_t id) {
    if (server_log_.streams[id].head.path == "/reset") {
      server_->reset(id, Http2Errc::internal_error);
      return;
    }
    (void)server_->submit_response(id, 200, {}, true);
    server_->write(id, "ok");
    server_->end_stream(id);
  };
  auto a = *client_->submit_request(get("/a"), false);
  auto r = *client_->submit_request(get("/reset"), false);
  auto b = *client_->submit_request(get("/b"), false);
  pump();
  EXPECT_EQ(client_log_.streams[r].close_error, make_error_code(Http2Errc::internal_error));
  EXPECT_FALSE(client_log_.streams[r].has_head);
  EXPECT_EQ(client_log_.streams[a].body, "ok");
  EXPECT_EQ(client_log_.streams[b].body, "ok");
  EXPECT_FALSE(client_log_.streams[b].close_error);
}

TEST_F(SessionPair, GoawayExposesLastStreamIdAndFailsLaterStreamsAsRetryable) {
  make();
  auto first = *client_->submit_request(get("/first"), false);
  pump();  // the server has processed stream 1, not answered yet
  server_->goaway();
  auto late = *client_->submit_request(get("/late"), false);
  pump();
  EXPECT_EQ(client_log_.goaways, 1);
  EXPECT_EQ(client_log_.goaway_last, first);
  EXPECT_TRUE(client_->peer_sent_goaway());
  EXPECT_EQ(client_->peer_last_stream_id(), first);
  // The late stream (above last-stream-id) is refused as "goaway": safe to retry elsewhere.
  EXPECT_EQ(client_log_.streams[late].close_error, make_error_code(Http2Errc::goaway));
  // The first one still completes.
  (void)server_->submit_response(first, 204, {}, false);
  pump();
  EXPECT_EQ(client_log_.streams[first].head.status, 204);
  EXPECT_FALSE(client_log_.streams[first].close_error);
  EXPECT_FALSE(client_->submit_request(get("/after"), false).has_value());
}

TEST_F(SessionPair, OversizedHeaderListIsFlaggedForThatStreamOnly) {
  SessionOptions server_options;
  server_options.max_header_list_size = 4096;
  make({}, server_options);
  server_log_.on_end_hook = [this](std::int32_t id) {
    const int status = server_log_.streams[id].head.too_large ? 431 : 200;
    (void)server_->submit_response(id, status, {}, false);
  };
  Head big = get("/big");
  for (int i = 0; i < 20; ++i) {
    big.headers.add("x-filler-" + std::to_string(i), std::string(400, 'v'));
  }
  auto b = *client_->submit_request(big, false);
  auto s = *client_->submit_request(get("/small"), false);
  pump();
  EXPECT_TRUE(server_log_.streams[b].head.too_large);
  EXPECT_FALSE(server_log_.streams[s].head.too_large);
  EXPECT_EQ(client_log_.streams[b].head.status, 431);
  EXPECT_EQ(client_log_.streams[s].head.status, 200);
}

TEST_F(SessionPair, LargeBodyCrossesSmallWindowsUnderFlowControl) {
  SessionOptions small;
  small.initial_window_size = 1024;
  small.connection_window_size = 65535;
  make(small, small);
  const std::string body(1 << 20, 'x');
  server_log_.on_end_hook = [this, &body](std::int32_t id) {
    (void)server_->submit_response(id, 200, {}, true);
    server_->write(id, body);
    server_->end_stream(id);
  };
  Head post = get("/upload");
  post.method = "POST";
  auto id = *client_->submit_request(post, true);
  client_->write(id, std::string(300'000, 'u'));
  client_->end_stream(id);
  pump();
  EXPECT_EQ(server_log_.streams[id].body.size(), 300'000u);
  EXPECT_EQ(client_log_.streams[id].body.size(), body.size());
  EXPECT_TRUE(client_log_.streams[id].ended);
}

TEST_F(SessionPair, UnconsumedBodyStopsTheSenderAfterOneWindow) {
  SessionOptions server_options;
  server_options.initial_window_size = 16 * 1024;
  server_options.auto_window_update = false;
  make({}, server_options);
  pump();  // SETTINGS first: before them the sender may use the default 65,535-byte window
  Head post = get("/upload");
  post.method = "POST";
  auto id = *client_->submit_request(post, true);
  client_->write(id, std::string(100'000, 'u'));
  client_->end_stream(id);
  pump();
  EXPECT_EQ(server_log_.streams[id].body.size(), 16u * 1024) << "the window is not reopened";
  EXPECT_GT(client_->buffered(id), 0u);
  for (int i = 0; i < 100 && !server_log_.streams[id].ended; ++i) {
    server_->consume(id, server_log_.streams[id].body.size());  // the reader takes it all
    pump();
  }
  EXPECT_EQ(server_log_.streams[id].body.size(), 100'000u);
  EXPECT_TRUE(server_log_.streams[id].ended);
}

TEST_F(SessionPair, DeferredBodyResumesWhenMoreIsWritten) {
  make();
  server_log_.on_head_hook = [this](std::int32_t id, const Head&) {
    (void)server_->submit_response(id, 200, {}, true);
  };
  auto id = *client_->submit_request(get("/stream"), false);
  pump();
  EXPECT_TRUE(client_log_.streams[id].has_head);
  EXPECT_FALSE(client_log_.streams[id].ended);
  server_->write(id, "part1,");
  pump();
  EXPECT_EQ(client_log_.streams[id].body, "part1,");
  EXPECT_EQ(server_log_.drained, std::vector<std::int32_t>{id});
  server_->write(id, "part2");
  server_->end_stream(id);
  pump();
  EXPECT_EQ(client_log_.streams[id].body, "part1,part2");
  EXPECT_TRUE(client_log_.streams[id].ended);
}

TEST_F(SessionPair, ServerRefusesStreamsBeyondItsConcurrencyLimit) {
  SessionOptions server_options;
  server_options.max_concurrent_streams = 2;
  make({}, server_options);
  pump();  // SETTINGS exchanged: the client now knows the limit
  EXPECT_EQ(client_->peer_max_concurrent_streams(), 2u);
  for (int i = 0; i < 5; ++i) {
    (void)client_->submit_request(get("/" + std::to_string(i)), false);
  }
  pump();
  EXPECT_EQ(server_log_.streams.size(), 2u);  // the rest wait in the client session
  answer_with_path();
  for (auto& [id, log] : server_log_.streams) {
    server_log_.on_end_hook(id);
  }
  pump();
  EXPECT_EQ(client_log_.streams.size(), 5u);
  for (auto& [id, log] : client_log_.streams) {
    EXPECT_EQ(log.head.status, 200) << "stream " << id;
  }
}

TEST_F(SessionPair, GarbageInsteadOfThePrefaceIsAConnectionError) {
  make();
  std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  auto r = server_->receive(as_span(junk));
  EXPECT_FALSE(r.has_value());
}

TEST_F(SessionPair, PushPromiseFromTheServerIsAConnectionErrorForTheClient) {
  make();
  auto id = *client_->submit_request(get("/"), false);
  pump();
  // A hand-made PUSH_PROMISE frame for stream `id` promising stream 2, with an empty header block
  // fragment: type 0x5, flags END_HEADERS (0x4).
  const std::uint8_t frame[] = {0, 0, 4, 0x5, 0x4, 0, 0, 0, static_cast<std::uint8_t>(id),
                                0, 0, 0, 2};
  (void)client_->receive({frame, sizeof frame});
  std::string out;
  ASSERT_TRUE(client_->send(out).has_value());
  EXPECT_FALSE(client_->is_alive());  // GOAWAY sent: push is refused (ENABLE_PUSH = 0)
}

}  // namespace
}  // namespace holdfast::http2
