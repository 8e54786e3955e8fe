// Blocking raw HTTP/1.1 test client on a loopback socket, for server tests that need byte control.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "holdfast/error.h"
#include "holdfast/http.h"
#include "holdfast/server.h"

namespace holdfast::testing {

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
  [[nodiscard]] int fd() const { return fd_; }

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

inline std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

inline Response text(std::string body) {
  Response r;
  r.body = std::move(body);
  return r;
}

inline std::unique_ptr<Server> start(Handler handler, ServerOptions options = {}) {
  auto server = Server::start(std::move(options), std::move(handler));
  EXPECT_TRUE(server.has_value()) << (server ? "" : describe(server.error()));
  return server ? std::move(*server) : nullptr;
}

// Echoes the method, target and body: "GET /x body".
inline void echo(const Request& request, const ResponseWriter& w) {
  w.send(text(request.method + " " + request.url + " " + request.body));
}

}  // namespace holdfast::testing
