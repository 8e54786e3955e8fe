// HTTP/2 GOAWAY on the client: a scripted h2c peer (http2::Session over a loopback socket) sends
// GOAWAY with a low last-stream-id; streams above it are retried on a new connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/client.h"
#include "holdfast/error.h"
#include "http2/session.h"

namespace holdfast::testing {
namespace {

using Steady = std::chrono::steady_clock;

/// A one-thread h2c server for two connections: on the first it waits for three requests, then
/// sends GOAWAY(last-stream-id 1) and answers stream 1 only; on the second it answers everything.
class ScriptedH2Server final : public http2::SessionHandler {
 public:
  ScriptedH2Server() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 8) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedH2Server() {
    thread_.join();
    ::close(listen_fd_);
  }
  ScriptedH2Server(const ScriptedH2Server&) = delete;
  ScriptedH2Server& operator=(const ScriptedH2Server&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  std::atomic<int> connections{0};
  std::atomic<int> requests{0};

 private:
  void on_head(std::int32_t id, http2::Head head, bool) override { paths_[id] = head.path; }
  void on_body(std::int32_t, std::span<const std::uint8_t>) override {}
  void on_end_stream(std::int32_t id) override {
    ++requests;
    ended_.push_back(id);
  }
  void on_stream_closed(std::int32_t, std::error_code) override {}

  void answer(std::int32_t id) {
    (void)session_->submit_response(id, 200, {}, true);
    session_->write(id, paths_[id]);
    session_->end_stream(id);
  }

  void run() {
    for (int c = 0; c < 2; ++c) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 10'000) != 1) {
        return;
      }
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      ++connections;
      serve(fd, /*goaway=*/c == 0);
      ::close(fd);
    }
  }

  void serve(int fd, bool goaway) {
    session_ = std::move(*http2::Session::server(this, {}));
    ended_.clear();
    bool sent_goaway = false;
    const auto deadline = Steady::now() + std::chrono::seconds(10);
    while (Steady::now() < deadline) {
      std::string out;
      (void)session_->send(out);
      if (goaway && !sent_goaway && ended_.size() == 3) {
        // RFC 9113 §6.8: GOAWAY, last-stream-id 1, NO_ERROR; then stream 1 is still answered.
        const std::uint8_t frame[] = {0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
        out.append(reinterpret_cast<const char*>(frame), sizeof frame);
        sent_goaway = true;
        answer(1);
        (void)session_->send(out);
      } else if (!goaway) {
        for (std::int32_t id : ended_) {
          answer(id);
        }
        ended_.clear();
        (void)session_->send(out);
      }
      if (!out.empty() && ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) < 0) {
        return;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) == 1) {
        char buf[16384];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
          return;  // the client closed (after the GOAWAY, or at the end)
        }
        (void)session_->receive(
            {reinterpret_cast<const std::uint8_t*>(buf), static_cast<std::size_t>(n)});
      }
    }
  }

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::unique_ptr<http2::Session> session_;
  std::map<std::int32_t, std::string> paths_;
  std::vector<std::int32_t> ended_;
};

TEST(Http2Goaway, StreamsAboveLastStreamIdAreRetriedOnANewConnection) {
  ScriptedH2Server server;
  ClientOptions options;
  options.h2c_prior_knowledge = true;
  Client client(options);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  std::vector<std::promise<Result<Response>>> done(3);
  for (int i = 0; i < 3; ++i) {
    Request request;
    request.url = base + "/r" + std::to_string(i);
    client.request_async(std::move(request), {},
                         [&done, i](Result<Response> r) { done[i].set_value(std::move(r)); });
  }
  for (int i = 0; i < 3; ++i) {
    auto f = done[i].get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(15)), std::future_status::ready) << i;
    auto r = f.get();
    ASSERT_TRUE(r.has_value()) << i << ": " << describe(r.error());
    EXPECT_EQ(r->version, HttpVersion::http2);
    EXPECT_EQ(r->body, "/r" + std::to_string(i));
  }
  EXPECT_EQ(client.stats().retries, 2u) << "streams 3 and 5 were above last-stream-id 1";
  EXPECT_EQ(client.stats().connections_opened, 2u);
  client.close_idle_connections();
}

}  // namespace
}  // namespace holdfast::testing
