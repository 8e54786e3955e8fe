// `holdfast get` against a Debian nginx started on loopback with a certificate the library made.
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "holdfast/certs.h"
#include "interop_support.h"

namespace holdfast::interop {
namespace {

constexpr const char* kStaticText = "static file served by nginx\n";

class CliNginx : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built (HOLDFAST_CLI_PATH empty)";
    ASSERT_FALSE(find_program("nginx").empty()) << "nginx is not installed: apt-get install nginx";
    const Result<GeneratedCertificate> cert =
        generate_self_signed_certificate({"localhost"}, {"127.0.0.1"}, 1);
    ASSERT_TRUE(cert.has_value()) << cert.error().message();
    ASSERT_TRUE(write_file(cert_path(), cert->cert_pem));
    ASSERT_TRUE(write_file(dir_.file("key.pem"), cert->key_pem));
    std::filesystem::create_directories(dir_.file("nginx/html"));
    ASSERT_TRUE(write_file(dir_.file("nginx/html/hello.txt"), kStaticText));
    // The port is picked before nginx binds it, so another process may take it in between:
    // try a few ports before giving up.
    for (int attempt = 0; attempt < 3 && !started_; ++attempt) {
      start_nginx();
    }
    ASSERT_TRUE(started_) << "nginx did not start; error.log:\n"
                          << read_file(dir_.file("nginx/error.log"));
  }

  void start_nginx() {
    port_ = unused_port();
    nginx_ = ChildProcess::start(
        {"/bin/sh", std::string(HOLDFAST_SOURCE_DIR) + "/scripts/interop/start_nginx.sh",
         dir_.file("nginx"), std::to_string(port_), cert_path(), dir_.file("key.pem")},
        dir_.file("nginx.stderr"));
    started_ = nginx_ && wait_for_port(port_, milliseconds(10'000)) && nginx_->is_running();
  }

  [[nodiscard]] std::string cert_path() const { return dir_.file("cert.pem"); }
  [[nodiscard]] std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + path;
  }

  static RunResult holdfast(std::vector<std::string> args) {
    args.insert(args.begin(), {cli_path(), "get", "--max-time", "20"});
    return run(args);
  }

  TempDir dir_;
  std::uint16_t port_ = 0;
  bool started_ = false;
  std::optional<ChildProcess> nginx_;
};

TEST_F(CliNginx, GetFetchesStaticFileWithCacert) {
  const RunResult r = holdfast({"--cacert", cert_path(), url("/hello.txt")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kStaticText);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(CliNginx, GetWritesBinaryBodyExactlyToStdoutAndFile) {
  std::string blob(3'000'000, '\0');
  std::mt19937 random(42);
  for (char& c : blob) {
    c = static_cast<char>(random() & 0xFF);
  }
  ASSERT_TRUE(write_file(dir_.file("nginx/html/blob.bin"), blob));
  const RunResult to_stdout = holdfast({"--cacert", cert_path(), url("/blob.bin")});
  EXPECT_EQ(to_stdout.exit_code, 0) << to_stdout.err;
  EXPECT_TRUE(to_stdout.out == blob) << "stdout differs; " << to_stdout.out.size() << " bytes";
  const RunResult to_file =
      holdfast({"--cacert", cert_path(), "-o", dir_.file("copy.bin"), url("/blob.bin")});
  EXPECT_EQ(to_file.exit_code, 0) << to_file.err;
  EXPECT_TRUE(read_file(dir_.file("copy.bin")) == blob);
}

TEST_F(CliNginx, VerboseShowsHeadsAndTimings) {
  const RunResult r = holdfast({"-v", "--cacert", cert_path(), url("/hello.txt")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kStaticText);
  EXPECT_NE(r.err.find("> GET /hello.txt HTTP/1.1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("< HTTP/1.1 200"), std::string::npos) << r.err;
  EXPECT_TRUE(contains_nocase(r.err, "< Server: nginx")) << r.err;
  for (const char* row : {"DNS lookup", "TCP connect", "TLS handshake", "first byte", "total"}) {
    EXPECT_NE(r.err.find(row), std::string::npos) << row << " missing in:\n" << r.err;
  }
  EXPECT_NE(r.err.find("TLSv1.3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ALPN"), std::string::npos) << r.err;
}

TEST_F(CliNginx, IncludePrintsStatusLineAndHeadersBeforeBody) {
  const RunResult r = holdfast({"-i", "--cacert", cert_path(), url("/hello.txt")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("HTTP/1.1 200", 0), 0u) << r.out;
  EXPECT_TRUE(contains_nocase(r.out, "\r\nContent-Length: 28\r\n")) << r.out;
  EXPECT_TRUE(r.out.ends_with(std::string("\r\n\r\n") + kStaticText)) << r.out;
}

TEST_F(CliNginx, SelfSignedServerRefusedWithoutInsecure) {
  const RunResult r = holdfast({url("/hello.txt")});
  EXPECT_EQ(r.exit_code, 60) << r.err;
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("certificate verify failed: self-signed certificate"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--cacert"), std::string::npos) << r.err;
}

TEST_F(CliNginx, SelfSignedServerAcceptedWithInsecure) {
  const RunResult r = holdfast({"-k", url("/hello.txt")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kStaticText);
}

TEST_F(CliNginx, FailExits22OnMissingFile) {
  const RunResult r = holdfast({"--fail", "--cacert", cert_path(), url("/missing.txt")});
  EXPECT_EQ(r.exit_code, 22) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("404"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace holdfast::interop
