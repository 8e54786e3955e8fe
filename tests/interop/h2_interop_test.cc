// HTTP/2 against real peers: nghttp, h2load and curl --http2 against `holdfast serve`, and the
// holdfast client (library and CLI) against a Debian nginx with http2 on loopback.
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/certs.h"
#include "holdfast/client.h"
#include "holdfast/error.h"
#include "interop_support.h"

namespace holdfast::interop {
namespace {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// The path of `program`; a missing one fails the test in CI and skips it (loudly) elsewhere.
#define HOLDFAST_REQUIRE_PROGRAM(var, program, package)                                           \
  const std::string var = find_program(program);                                                  \
  if (var.empty()) {                                                                              \
    if (in_ci()) {                                                                                \
      FAIL() << program " is not installed: apt-get install " package;                            \
    }                                                                                             \
    GTEST_SKIP() << "SKIPPED LOUDLY: " program " is not installed (apt-get install " package ")"; \
  }

class ServeH2 : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built (HOLDFAST_CLI_PATH empty)";
    serve_ = start_serve({"--write-cert", cert()}, dir_.file("serve.log"));
    ASSERT_FALSE(serve_.url.empty()) << "holdfast serve did not print its address; stderr:\n"
                                     << read_file(dir_.file("serve.log"));
  }

  [[nodiscard]] std::string cert() const { return dir_.file("cert.pem"); }

  TempDir dir_;
  ServeProcess serve_;
};

TEST_F(ServeH2, NghttpFetchesRootOverH2) {
  HOLDFAST_REQUIRE_PROGRAM(nghttp, "nghttp", "nghttp2-client");
  const RunResult r = run({nghttp, "-v", serve_.url + "/"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("hello from holdfast"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(":status: 200"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("The negotiated protocol: h2"), std::string::npos) << r.out;
}

TEST_F(ServeH2, NghttpMultiplexesConcurrentStreamsWithoutErrors) {
  HOLDFAST_REQUIRE_PROGRAM(nghttp, "nghttp", "nghttp2-client");
  const RunResult r = run({nghttp, "-n", "-s", "-m", "50", serve_.url + "/"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(r.err.find("RST_STREAM"), std::string::npos) << r.err;
}

TEST_F(ServeH2, H2loadCompletesEveryRequestOnMultiplexedStreams) {
  HOLDFAST_REQUIRE_PROGRAM(h2load, "h2load", "nghttp2-client");
  const RunResult r = run({h2load, "-n", "2000", "-c", "2", "-m", "10", serve_.url + "/"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("2000 succeeded, 0 failed, 0 errored"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("status codes: 2000 2xx"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Application protocol: h2"), std::string::npos) << r.out;
}

TEST_F(ServeH2, CurlHttp2EchoesRequestsAsHttp2) {
  HOLDFAST_REQUIRE_PROGRAM(curl, "curl", "curl");
  const RunResult r = run({curl, "-sS", "--max-time", "20", "--http2", "--cacert", cert(), "-w",
                           "\n%{http_version}", serve_.url + "/echo?q=2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("GET /echo?q=2 HTTP/2\n", 0), 0u) << r.out;
  EXPECT_TRUE(r.out.ends_with("\n2")) << r.out;
  const RunResult post = run({curl, "-sS", "--max-time", "20", "--http2", "--cacert", cert(),
                              "--data-binary", "ping\npong", serve_.url + "/echo"});
  ASSERT_EQ(post.exit_code, 0) << post.err;
  EXPECT_EQ(post.out, "ping\npong");
}

TEST_F(ServeH2, HoldfastGetVerboseShowsHttp2) {
  const RunResult r =
      run({cli_path(), "get", "-v", "--max-time", "20", "--cacert", cert(), serve_.url + "/"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("* protocol: HTTP/2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("< HTTP/2 200"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ALPN h2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("records: holdfast"), std::string::npos) << r.err;  // take-over is default
  const RunResult kept = run({cli_path(), "get", "-v", "--no-tls-record-takeover", "--max-time",
                              "20", "--cacert", cert(), serve_.url + "/"});
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_NE(kept.err.find("records: OpenSSL"), std::string::npos) << kept.err;
  const RunResult h1 = run({cli_path(), "get", "-v", "--http1.1", "--max-time", "20", "--cacert",
                            cert(), serve_.url + "/"});
  ASSERT_EQ(h1.exit_code, 0) << h1.err;
  EXPECT_NE(h1.err.find("< HTTP/1.1 200"), std::string::npos) << h1.err;
}

constexpr const char* kStaticText = "static file served by nginx over h2\n";

// nginx with `listen ... ssl http2` on a loopback port, everything it writes inside one TempDir.
class NginxH2 : public testing::Test {
 protected:
  void SetUp() override {
    HOLDFAST_REQUIRE_PROGRAM(nginx, "nginx", "nginx");
    const Result<GeneratedCertificate> cert =
        generate_self_signed_certificate({"localhost"}, {"127.0.0.1"}, 1);
    ASSERT_TRUE(cert.has_value()) << cert.error().message();
    ASSERT_TRUE(write_file(cert_path(), cert->cert_pem));
    ASSERT_TRUE(write_file(dir_.file("key.pem"), cert->key_pem));
    std::filesystem::create_directories(dir_.file("nginx/html"));
    std::filesystem::create_directories(dir_.file("nginx/tmp"));
    ASSERT_TRUE(write_file(dir_.file("nginx/html/hello.txt"), kStaticText));
    // The port is picked before nginx binds it: try a few in case another process takes it.
    for (int attempt = 0; attempt < 3 && !started_; ++attempt) {
      port_ = unused_port();
      ASSERT_TRUE(write_file(dir_.file("nginx/nginx.conf"), config()));
      nginx_ = ChildProcess::start({nginx, "-e", dir_.file("nginx/error.log"), "-p",
                                    dir_.file("nginx"), "-c", dir_.file("nginx/nginx.conf")},
                                   dir_.file("nginx.stderr"));
      started_ = nginx_ && wait_for_port(port_, milliseconds(10'000)) && nginx_->is_running();
    }
    ASSERT_TRUE(started_) << "nginx did not start; error.log:\n"
                          << read_file(dir_.file("nginx/error.log"));
  }

  [[nodiscard]] std::string config() const {
    const std::string d = dir_.file("nginx");
    const std::string port = std::to_string(port_);
    return "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + d +
           "/nginx.pid;\nerror_log " + d +
           "/error.log info;\nevents { worker_connections 256; }\n" + "http {\n  access_log " + d +
           "/access.log;\n  client_body_temp_path " + d + "/tmp/body;\n  proxy_temp_path " + d +
           "/tmp/proxy;\n  fastcgi_temp_path " + d + "/tmp/fastcgi;\n  uwsgi_temp_path " + d +
           "/tmp/uwsgi;\n  scgi_temp_path " + d +
           "/tmp/scgi;\n  server {\n    listen 127.0.0.1:" + port + " ssl http2;\n" +
           "    ssl_certificate " + cert_path() + ";\n    ssl_certificate_key " +
           dir_.file("key.pem") + ";\n    root " + d + "/html;\n  }\n}\n";
  }

  [[nodiscard]] std::string cert_path() const { return dir_.file("cert.pem"); }
  [[nodiscard]] std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + path;
  }

  TempDir dir_;
  std::uint16_t port_ = 0;
  bool started_ = false;
  std::optional<ChildProcess> nginx_;
};

TEST_F(NginxH2, HoldfastGetSpeaksHttp2ToNginx) {
  ASSERT_FALSE(cli_path().empty());
  const RunResult r = run(
      {cli_path(), "get", "-v", "--max-time", "20", "--cacert", cert_path(), url("/hello.txt")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kStaticText);
  EXPECT_NE(r.err.find("* protocol: HTTP/2"), std::string::npos) << r.err;
}

TEST_F(NginxH2, ClientMultiplexesConcurrentRequestsOnOneConnection) {
  ClientOptions options;
  options.tls.ca_file = cert_path();
  Client client(options);
  constexpr int kRequests = 60;
  std::vector<std::promise<Result<Response>>> done(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    Request request;
    request.url = url(i % 2 == 0 ? "/hello.txt" : "/missing");
    client.request_async(std::move(request), {},
                         [&done, i](Result<Response> r) { done[i].set_value(std::move(r)); });
  }
  for (int i = 0; i < kRequests; ++i) {
    auto f = done[i].get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready) << i;
    auto r = f.get();
    ASSERT_TRUE(r.has_value()) << i << ": " << describe(r.error());
    EXPECT_EQ(r->version, HttpVersion::http2);
    EXPECT_EQ(r->status, i % 2 == 0 ? 200 : 404);
    if (i % 2 == 0) {
      EXPECT_EQ(r->body, kStaticText);
    }
  }
  EXPECT_EQ(client.stats().connections_opened, 1u);
}

}  // namespace
}  // namespace holdfast::interop
