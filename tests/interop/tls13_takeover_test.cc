// TLS 1.3 record take-over against real peers: the holdfast server (own record layer after the
// handshake) with openssl s_client (KeyUpdate mid-connection), curl, gnutls-cli (rekey), Python
// ssl and Go crypto/tls clients; the holdfast client with openssl s_server, gnutls-serv, nginx
// (plus resumption) and a Go server. Each TLS 1.3 suite runs at least once per direction.
#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "holdfast/client.h"
#include "holdfast/server.h"
#include "support/tls_fixture.h"
#include "tls/engine.h"
#include "tls13_support.h"

namespace holdfast::interop {
namespace {

constexpr const char* kAes128 = "TLS_AES_128_GCM_SHA256";
constexpr const char* kAes256 = "TLS_AES_256_GCM_SHA384";
constexpr const char* kChaCha = "TLS_CHACHA20_POLY1305_SHA256";

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// /size/N answers N bytes of 'h'; anything else 5 bytes.
void size_handler(const Request& request, const ResponseWriter& writer) {
  std::size_t n = 5;
  const std::string prefix = "/size/";
  if (request.url.rfind(prefix, 0) == 0) {
    n = std::stoul(request.url.substr(prefix.size()));
  }
  Response response;
  response.body.assign(n, 'h');
  writer.send(std::move(response));
}

// The holdfast server (in process, take-over on by default) restricted to one TLS 1.3 suite.
class Tls13HoldfastServer : public ::testing::Test {
 protected:
  void start(const std::string& suite) {
    ServerOptions options;
    ServerTlsOptions tls;
    tls.cert_pem = testing::test_certificate().cert.cert_pem;
    tls.key_pem = testing::test_certificate().cert.key_pem;
    tls.min_version = TlsVersion::tls1_3;
    tls.ciphersuites = suite;
    options.tls = tls;
    auto server = Server::start(std::move(options), size_handler);
    ASSERT_TRUE(server.has_value()) << server.error().message();
    server_ = std::move(*server);
    port_ = std::to_string(server_->port());
    takeovers_before_ = tls::Engine::takeovers();
  }

  [[nodiscard]] std::uint64_t takeovers() const {
    return tls::Engine::takeovers() - takeovers_before_;
  }
  [[nodiscard]] static const std::string& cert() { return testing::test_certificate().cert_file; }

  // Two requests on one connection written with pauses, `between` typed in the middle (a
  // KeyUpdate command), into `client_command` (a shell pipeline tail).
  RunResult two_requests_with(const std::string& between, const std::string& client_command) {
    const std::string first = "GET /size/200000 HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n";
    const std::string second = "GET /size/1000 HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n";
    const std::string script = "( printf '" + first + "'; sleep 0.4; printf '" + between +
                               "\\n'; sleep 0.3; printf '" + second + "'; sleep 0.5 ) | " +
                               client_command;
    return run({"/bin/sh", "-c", script}, milliseconds(15'000));
  }

  std::unique_ptr<Server> server_;
  std::string port_;
  std::uint64_t takeovers_before_ = 0;
};

TEST_F(Tls13HoldfastServer, OpensslSClientKeyUpdateMidConnectionAes128) {
  HOLDFAST_REQUIRE_PROGRAM(openssl, "openssl", "openssl");
  start(kAes128);
  const RunResult r = two_requests_with(
      "K", shell_quote(openssl) + " s_client -connect 127.0.0.1:" + port_ +
               " -tls1_3 -ciphersuites " + kAes128 + " -CAfile " + shell_quote(cert()) + " 2>&1");
  EXPECT_NE(r.out.find("KEYUPDATE"), std::string::npos) << r.out.substr(0, 3000);
  EXPECT_EQ(count(r.out, "HTTP/1.1 200"), 2u) << r.out.substr(0, 3000);
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), 'h'), 201000);
  EXPECT_NE(r.out.find(kAes128), std::string::npos);
  EXPECT_GE(takeovers(), 1u);
}

TEST_F(Tls13HoldfastServer, CurlTwoRequestsOnOneConnectionAes256) {
  HOLDFAST_REQUIRE_PROGRAM(curl, "curl", "curl");
  start(kAes256);
  const std::string url = "https://127.0.0.1:" + port_;
  const RunResult r =
      run({curl, "-sS", "--max-time", "10", "--tlsv1.3", "--tls13-ciphers", kAes256, "--cacert",
           cert(), "-o", "/dev/null", "-o", "/dev/null", "-w", "%{size_download}:%{num_connects} ",
           url + "/size/300000", url + "/size/7"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "300000:1 7:0 ");
  EXPECT_GE(takeovers(), 1u);
}

TEST_F(Tls13HoldfastServer, GnutlsCliRekeyBothWaysChaCha20) {
  HOLDFAST_REQUIRE_PROGRAM(gnutls, "gnutls-cli", "gnutls-bin");
  start(kChaCha);
  const RunResult r = two_requests_with(
      "^rekey^", shell_quote(gnutls) + " --x509cafile=" + shell_quote(cert()) + " --port=" + port_ +
                     " --priority=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305"
                     " --inline-commands 127.0.0.1 2>&1");
  EXPECT_EQ(count(r.out, "HTTP/1.1 200"), 2u) << r.out.substr(0, 3000);
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), 'h'), 201000);
  EXPECT_NE(r.out.find("CHACHA20-POLY1305"), std::string::npos) << r.out.substr(0, 3000);
  EXPECT_GE(takeovers(), 1u);
}

TEST_F(Tls13HoldfastServer, PythonSslThreeRequestsOnOneConnection) {
  HOLDFAST_REQUIRE_PROGRAM(python, "python3", "python3");
  start("");
  const std::string script = R"PY(
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="127.0.0.1")
f = s.makefile("rb")
total = 0
for size in (100000, 10, 65536):
    s.sendall(b"GET /size/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % size)
    length = 0
    while True:
        line = f.readline().strip()
        if not line:
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    total += len(f.read(length))
print("ok", total, s.version(), s.cipher()[0])
)PY";
  const RunResult r = run({python, "-c", script, port_, cert()}, milliseconds(15'000));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ok 165546 TLSv1.3 TLS_", 0), 0u) << r.out << r.err;
  EXPECT_GE(takeovers(), 1u);
}

TEST_F(Tls13HoldfastServer, GoCryptoTlsClientKeepAlive) {
  HOLDFAST_REQUIRE_PROGRAM(go, "go", "golang-go");
  std::string error;
  const std::string peer = go_peer_binary(go, &error);
  ASSERT_FALSE(peer.empty()) << error;
  start("");
  const RunResult r =
      run({peer, "client", "127.0.0.1:" + port_, cert(), "4", "70000"}, milliseconds(15'000));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ok 280000 TLS_", 0), 0u) << r.out << r.err;
  EXPECT_GE(takeovers(), 1u);
}

// The holdfast client (take-over on by default) offering one TLS 1.3 suite to a real server.
class Tls13HoldfastClient : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(write_file(key(), testing::test_certificate().cert.key_pem));
    takeovers_before_ = tls::Engine::takeovers();
  }

  static Client make_client(const std::string& suite) {
    ClientOptions options;
    options.tls.ca_file = testing::test_certificate().cert_file;
    options.tls.min_version = TlsVersion::tls1_3;
    options.tls.ciphersuites = suite;
    options.timeouts.deadline = std::chrono::seconds(10);
    return Client(options);
  }

  // Starts the peer made by `argv_for(port)` on a free loopback port and waits for it to listen;
  // another process may take the port in between, so a few ports are tried. Returns the port.
  template <typename ArgvFor>
  std::uint16_t start_peer(ArgvFor argv_for) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      const std::uint16_t port = unused_port();
      peer_ = ChildProcess::start(argv_for(std::to_string(port)), dir_.file("peer.stderr"));
      const auto deadline = SteadyClock::now() + milliseconds(10'000);
      while (peer_ && peer_->is_running() && SteadyClock::now() < deadline) {
        if (wait_for_port(port, milliseconds(200))) {
          return port;
        }
      }
      peer_.reset();
    }
    ADD_FAILURE() << "the peer did not listen: " << read_file(dir_.file("peer.stderr"));
    return 0;
  }

  [[nodiscard]] std::uint64_t takeovers() const {
    return tls::Engine::takeovers() - takeovers_before_;
  }
  [[nodiscard]] static const std::string& cert() { return testing::test_certificate().cert_file; }
  [[nodiscard]] std::string key() const { return dir_.file("key.pem"); }

  TempDir dir_;
  std::optional<ChildProcess> peer_;
  std::uint64_t takeovers_before_ = 0;
};

TEST_F(Tls13HoldfastClient, OpensslSServerWwwChaCha20) {
  HOLDFAST_REQUIRE_PROGRAM(openssl, "openssl", "openssl");
  const std::uint16_t port = start_peer([&](const std::string& p) {
    return std::vector<std::string>{openssl, "s_server", "-accept",       "127.0.0.1:" + p,
                                    "-www",  "-tls1_3",  "-ciphersuites", kChaCha,
                                    "-cert", cert(),     "-key",          key()};
  });
  ASSERT_NE(port, 0);
  Client client = make_client(kChaCha);
  auto r = client.get("https://127.0.0.1:" + std::to_string(port) + "/");
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find(std::string("Cipher is ") + kChaCha), std::string::npos) << r->body;
  EXPECT_EQ(r->timings.tls_cipher, kChaCha);
  EXPECT_GE(takeovers(), 1u);
}

TEST_F(Tls13HoldfastClient, GnutlsServAes128) {
  HOLDFAST_REQUIRE_PROGRAM(gnutls, "gnutls-serv", "gnutls-bin");
  const std::uint16_t port = start_peer([&](const std::string& p) {
    return std::vector<std::string>{gnutls,          "--http", "--x509certfile", cert(),
                                    "--x509keyfile", key(),    "--port",         p};
  });
  ASSERT_NE(port, 0);
  Client client = make_client(kAes128);
  for (int i = 0; i < 2; ++i) {
    auto r = client.get("https://127.0.0.1:" + std::to_string(port) + "/");
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->body.find("TLS1.3"), std::string::npos) << r->body.substr(0, 2000);
    EXPECT_EQ(r->timings.tls_cipher, kAes128);
  }
  EXPECT_GE(takeovers(), 1u);
}

TEST_F(Tls13HoldfastClient, NginxKeepAliveThenResumptionAes256) {
  HOLDFAST_REQUIRE_PROGRAM(nginx, "nginx", "nginx-light");
  std::filesystem::create_directories(dir_.file("nginx/html"));
  ASSERT_TRUE(write_file(dir_.file("nginx/html/big.txt"), std::string(1'000'000, 'n')));
  std::uint16_t port = 0;
  for (int attempt = 0; attempt < 3 && (!peer_ || !peer_->is_running()); ++attempt) {
    port = unused_port();
    peer_ = ChildProcess::start(
        {"/bin/sh", std::string(HOLDFAST_SOURCE_DIR) + "/scripts/interop/start_nginx.sh",
         dir_.file("nginx"), std::to_string(port), cert(), key()},
        dir_.file("nginx.stderr"));
    if (!wait_for_port(port, milliseconds(10'000))) {
      peer_.reset();
    }
  }
  ASSERT_TRUE(peer_) << read_file(dir_.file("nginx/error.log"));
  Client client = make_client(kAes256);
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/big.txt";
  for (int i = 0; i < 3; ++i) {
    auto r = client.get(url);
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(r->body.size(), 1'000'000u);
    EXPECT_EQ(r->timings.tls_cipher, kAes256);
    EXPECT_EQ(r->timings.reused_connection, i > 0);
  }
  client.close_idle_connections();
  auto resumed = client.get(url);
  ASSERT_TRUE(resumed.has_value()) << resumed.error().message();
  EXPECT_TRUE(resumed->timings.tls_resumed) << "the ticket taken before take-over resumes";
  EXPECT_EQ(resumed->body.size(), 1'000'000u);
  EXPECT_GE(takeovers(), 2u);
}

TEST_F(Tls13HoldfastClient, GoCryptoTlsServerKeepAlive) {
  HOLDFAST_REQUIRE_PROGRAM(go, "go", "golang-go");
  std::string error;
  const std::string peer = go_peer_binary(go, &error);
  ASSERT_FALSE(peer.empty()) << error;
  peer_ = ChildProcess::start({peer, "server", cert(), key()}, dir_.file("peer.stderr"));
  ASSERT_TRUE(peer_);
  const std::optional<std::string> line = peer_->read_line(milliseconds(10'000));
  ASSERT_TRUE(line && line->rfind("listening ", 0) == 0) << read_file(dir_.file("peer.stderr"));
  Client client = make_client("");
  for (int i = 0; i < 3; ++i) {
    auto r = client.get("https://" + line->substr(10) + "/size/250000");
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(r->body, std::string(250000, 'g'));
    EXPECT_EQ(r->timings.tls_version, "TLSv1.3");
  }
  EXPECT_GE(takeovers(), 1u);
}

}  // namespace
}  // namespace holdfast::interop

namespace holdfast::interop {
namespace {

// SSLKEYLOGFILE: secrets are written only when the variable is set, by clients and servers alike.
TEST(Tls13Keylog, CliClientAndServerWriteSecretsOnlyWhenAsked) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built (HOLDFAST_CLI_PATH empty)";
  TempDir dir;
  const std::string server_log = dir.file("server.keys");
  const std::string client_log = dir.file("client.keys");
  auto serve = ChildProcess::start({"/usr/bin/env", "SSLKEYLOGFILE=" + server_log, cli_path(),
                                    "serve", "--port", "0", "--write-cert", dir.file("cert.pem")},
                                   dir.file("serve.stderr"));
  ASSERT_TRUE(serve);
  const std::optional<std::string> line = serve->read_line(milliseconds(10'000));
  ASSERT_TRUE(line && line->rfind("listening on ", 0) == 0) << read_file(dir.file("serve.stderr"));
  const std::string url = line->substr(13) + "/";
  const RunResult with = run({"/usr/bin/env", "SSLKEYLOGFILE=" + client_log, cli_path(), "get",
                              "--max-time", "10", "--cacert", dir.file("cert.pem"), url});
  EXPECT_EQ(with.exit_code, 0) << with.err;
  const RunResult without = run({"/usr/bin/env", "-u", "SSLKEYLOGFILE", cli_path(), "get",
                                 "--max-time", "10", "--cacert", dir.file("cert.pem"), url});
  EXPECT_EQ(without.exit_code, 0) << without.err;
  const std::string client_keys = read_file(client_log);
  EXPECT_EQ(count(client_keys, "CLIENT_TRAFFIC_SECRET_0 "), 1u) << client_keys;
  EXPECT_EQ(count(client_keys, "SERVER_TRAFFIC_SECRET_0 "), 1u) << client_keys;
  EXPECT_EQ(count(read_file(server_log), "SERVER_TRAFFIC_SECRET_0 "), 2u)
      << "both connections, from the server's side";
}

}  // namespace
}  // namespace holdfast::interop
