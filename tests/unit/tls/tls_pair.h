// Test helper: a client and a server Engine wired back to back in memory (no sockets).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

#include "tls/certificate.h"
#include "tls/context.h"
#include "tls/engine.h"

namespace holdfast::tls::testing {

inline std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// Writes `content` to a fresh file under the test temp directory and returns its path.
inline std::string write_temp_file(const std::string& name, const std::string& content) {
  static int counter = 0;
  std::string path = ::testing::TempDir() + "/holdfast_tls_" + std::to_string(::getpid()) + "_" +
                     std::to_string(counter++) + "_" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

/// One side of a Pair: its engine, what it has read so far, and its first error.
struct Side {
  std::unique_ptr<Engine> engine;
  std::string received;
  std::error_code error;
};

/// Two engines connected in memory. pump() moves ciphertext both ways (in chunks of at most
/// `chunk` bytes) and reads whatever each side can decrypt, until nothing moves.
class Pair {
 public:
  Pair(std::unique_ptr<Engine> client, std::unique_ptr<Engine> server) {
    client_.engine = std::move(client);
    server_.engine = std::move(server);
  }

  Engine& client() { return *client_.engine; }
  Engine& server() { return *server_.engine; }
  Side& client_side() { return client_; }
  Side& server_side() { return server_; }

  void pump(std::size_t chunk = 1 << 20) {
    for (int round = 0; round < 100000; ++round) {
      const bool moved = transfer(client_, server_, chunk) | transfer(server_, client_, chunk);
      drain(client_);
      drain(server_);
      if (!moved) {
        return;
      }
    }
    ADD_FAILURE() << "pump did not settle";
  }

  /// Starts the client and pumps until quiet; true when both handshakes are done without error.
  bool handshake() {
    record(client_, client().start());
    pump();
    return client().is_handshake_done() && server().is_handshake_done() && !client_.error &&
           !server_.error;
  }

 private:
  static void record(Side& side, const Result<void>& r) {
    if (!r && !side.error) {
      side.error = r.error();
    }
  }

  static bool transfer(Side& from, Side& to, std::size_t chunk) {
    if (!from.engine->has_pending_output()) {
      return false;
    }
    auto out = from.engine->pending_output();
    const std::size_t n = std::min(chunk, out.size());
    if (!to.error) {
      record(to, to.engine->feed(out.first(n)));
    }
    from.engine->consume_output(n);
    return true;
  }

  static void drain(Side& side) {
    if (side.error) {
      return;
    }
    std::uint8_t buf[4096];
    for (;;) {
      auto n = side.engine->read(buf);
      if (!n) {
        side.error = n.error();
        return;
      }
      if (*n == 0) {
        return;
      }
      side.received.append(reinterpret_cast<const char*>(buf), *n);
    }
  }

  Side client_;
  Side server_;
};

/// Server options serving `chain`'s leaf.
inline ServerTlsOptions server_options(const GeneratedChain& chain) {
  ServerTlsOptions opts;
  opts.cert_pem = chain.leaf_cert_pem;
  opts.key_pem = chain.leaf_key_pem;
  return opts;
}

/// Client options trusting `chain`'s CA (written to a temp file).
inline ClientTlsOptions client_options(const GeneratedChain& chain) {
  ClientTlsOptions opts;
  opts.ca_file = write_temp_file("ca.pem", chain.ca_cert_pem);
  return opts;
}

/// A chain for "localhost" and 127.0.0.1, generated once per test binary (generation costs ~1 ms).
inline const GeneratedChain& localhost_chain() {
  static const GeneratedChain chain = [] {
    auto made = generate_ca_and_leaf({"localhost"}, {"127.0.0.1"});
    EXPECT_TRUE(made.has_value());
    return made.has_value() ? *made : GeneratedChain{};
  }();
  return chain;
}

/// A connected-in-memory pair from two contexts; asserts the engines could be made.
inline Pair connect_pair(const std::shared_ptr<const Context>& client_ctx,
                         const std::shared_ptr<const Context>& server_ctx,
                         std::string_view server_name = "localhost",
                         std::string_view session_key = "") {
  auto client = Engine::client(client_ctx, server_name, session_key);
  auto server = Engine::server(server_ctx);
  EXPECT_TRUE(client.has_value());
  EXPECT_TRUE(server.has_value());
  return Pair(std::move(*client), std::move(*server));
}

}  // namespace holdfast::tls::testing
