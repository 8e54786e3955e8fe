// `holdfast get/request` against `holdfast serve` and against failures: exit codes and messages.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "interop_support.h"

namespace holdfast::interop {
namespace {

RunResult holdfast(std::vector<std::string> args) {
  args.insert(args.begin(), cli_path());
  return run(args);
}

class CliAgainstServe : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built (HOLDFAST_CLI_PATH empty)";
    tls_ = start_serve({"--write-cert", cert()}, dir_.file("tls.log"));
    ASSERT_FALSE(tls_.url.empty()) << read_file(dir_.file("tls.log"));
    plain_ = start_serve({"--plain", "--access-log"}, dir_.file("plain.log"));
    ASSERT_FALSE(plain_.url.empty()) << read_file(dir_.file("plain.log"));
  }

  [[nodiscard]] std::string cert() const { return dir_.file("cert.pem"); }

  TempDir dir_;
  ServeProcess tls_;
  ServeProcess plain_;
};

TEST_F(CliAgainstServe, GetFetchesRootOverTls) {
  const RunResult r = holdfast({"get", "--cacert", cert(), tls_.url + "/"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello from holdfast\n");
}

TEST_F(CliAgainstServe, GetStreamsLargeBodyToFile) {
  const std::string file = dir_.file("bytes.bin");
  const RunResult r =
      holdfast({"get", "--cacert", cert(), "-o", file, tls_.url + "/bytes/3000000"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(file).size(), 3000000u);
}

TEST_F(CliAgainstServe, RequestPostsDataAndHeaders) {
  const RunResult r = holdfast({"request", "-X", "PUT", "-i", "-H", "X-Probe: 1", "-d", "a=1", "-d",
                                "b=2", plain_.url + "/echo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains_nocase(r.out, "X-Echo-Method: PUT\r\n")) << r.out;
  EXPECT_TRUE(contains_nocase(r.out, "X-Echo-Header-X-Probe: 1\r\n")) << r.out;
  EXPECT_TRUE(r.out.ends_with("\r\n\r\na=1&b=2")) << r.out;
}

TEST_F(CliAgainstServe, RequestSendsDataBinaryFromFile) {
  const std::string payload = std::string("bin") + '\0' + "ary\r\n\xff";
  ASSERT_TRUE(write_file(dir_.file("payload"), payload));
  const RunResult r =
      holdfast({"request", "--data-binary", "@" + dir_.file("payload"), plain_.url + "/echo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out == payload) << r.out;
}

TEST_F(CliAgainstServe, MaxTimeEndsSlowRequestWith28) {
  const RunResult r = holdfast({"get", "--max-time", "0.5", plain_.url + "/delay/5"});
  EXPECT_EQ(r.exit_code, 28) << r.err;
  EXPECT_LT(r.elapsed, milliseconds(3000));
  EXPECT_NE(r.err.find("holdfast: request deadline exceeded"), std::string::npos) << r.err;
}

TEST_F(CliAgainstServe, DelayAnswersAfterFractionalSeconds) {
  const RunResult r = holdfast({"get", plain_.url + "/delay/0.3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(r.elapsed, milliseconds(300));
}

TEST_F(CliAgainstServe, AnyStatusExits0ButFailExits22) {
  const RunResult plain = holdfast({"get", plain_.url + "/status/503"});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, "503\n");
  const RunResult failed = holdfast({"get", "--fail", plain_.url + "/status/503"});
  EXPECT_EQ(failed.exit_code, 22) << failed.err;
  EXPECT_TRUE(failed.out.empty());
}

TEST_F(CliAgainstServe, UnknownPathIs404) {
  const RunResult r = holdfast({"get", "-i", plain_.url + "/nothing-here"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("HTTP/1.1 404", 0), 0u) << r.out;
}

TEST_F(CliAgainstServe, AccessLogHasOneLinePerRequest) {
  ASSERT_EQ(holdfast({"get", plain_.url + "/status/201"}).exit_code, 0);
  ASSERT_EQ(holdfast({"get", plain_.url + "/"}).exit_code, 0);
  const std::string log = read_file(dir_.file("plain.log"));
  EXPECT_NE(log.find("\"GET /status/201 HTTP/1.1\" 201"), std::string::npos) << log;
  EXPECT_NE(log.find("\"GET / HTTP/1.1\" 200"), std::string::npos) << log;
}

TEST_F(CliAgainstServe, UnwritableOutputExits23) {
  const RunResult r = holdfast({"get", "-o", dir_.file("no/such/dir/out"), plain_.url + "/"});
  EXPECT_EQ(r.exit_code, 23) << r.err;
}

TEST_F(CliAgainstServe, UnreadableCacertExits77) {
  const RunResult r = holdfast({"get", "--cacert", dir_.file("missing.pem"), tls_.url + "/"});
  EXPECT_EQ(r.exit_code, 77) << r.err;
  EXPECT_NE(r.err.find("--cacert"), std::string::npos) << r.err;
}

TEST_F(CliAgainstServe, HttpsToPlainServerIsTlsFailure) {
  std::string url = plain_.url;
  url.replace(0, 4, "https");
  const RunResult r = holdfast({"get", "--max-time", "10", url + "/"});
  EXPECT_EQ(r.exit_code, 35) << r.err;
  EXPECT_NE(r.err.find("holdfast: tls: "), std::string::npos) << r.err;
}

TEST(CliExitCodes, ConnectionRefusedExits7) {
  ASSERT_FALSE(cli_path().empty());
  const std::string url = "http://127.0.0.1:" + std::to_string(unused_port()) + "/";
  const RunResult r = holdfast({"get", url});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("refused"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is a server listening"), std::string::npos) << r.err;
}

TEST(CliExitCodes, InvalidUrlExits3) {
  ASSERT_FALSE(cli_path().empty());
  for (const char* url : {"not a url", "http://exa mple/", "ftp://127.0.0.1/", "http://:80/"}) {
    const RunResult r = holdfast({"get", url});
    EXPECT_EQ(r.exit_code, 3) << url << ": " << r.err;
    EXPECT_EQ(r.err.rfind("holdfast: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("URL"), std::string::npos) << r.err;
  }
}

TEST(CliExitCodes, UsageErrorsExit2) {
  ASSERT_FALSE(cli_path().empty());
  EXPECT_EQ(holdfast({"get", "--no-such-flag", "http://127.0.0.1/"}).exit_code, 2);
  EXPECT_EQ(holdfast({"get"}).exit_code, 2);
  EXPECT_EQ(holdfast({}).exit_code, 2);
  EXPECT_EQ(holdfast({"get", "--max-time", "soon", "http://127.0.0.1/"}).exit_code, 2);
  EXPECT_EQ(holdfast({"request", "-H", "no colon", "http://127.0.0.1:1/"}).exit_code, 2);
}

TEST(CliExitCodes, HelpAndVersionExit0) {
  ASSERT_FALSE(cli_path().empty());
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"get", "--help"}, {"request", "--help"}, {"serve", "--help"}}) {
    const RunResult r = holdfast(args);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
  const RunResult version = holdfast({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("holdfast ", 0), 0u) << version.out;
}

TEST(CliExitCodes, SilentSuppressesTheMessage) {
  ASSERT_FALSE(cli_path().empty());
  const RunResult r = holdfast({"get", "-s", "ftp://127.0.0.1/"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

// A server that accepts and closes at once: the client gets no response byte.
class ClosingListener {
 public:
  ClosingListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    const bool listening =
        ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::listen(fd_, 16) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0;
    port_ = listening ? ntohs(address.sin_port) : 0;
    thread_ = std::thread([this] { serve(); });
  }
  ~ClosingListener() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  ClosingListener(const ClosingListener&) = delete;
  ClosingListener& operator=(const ClosingListener&) = delete;
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) == 1) {
        const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client >= 0) {
          char buffer[4096];
          (void)::recv(client, buffer, sizeof buffer, 0);  // wait for the request first
          ::close(client);
        }
      }
    }
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(CliExitCodes, ClosedBeforeResponseExits52) {
  ASSERT_FALSE(cli_path().empty());
  const ClosingListener listener;
  ASSERT_NE(listener.port(), 0);
  const RunResult r = holdfast(
      {"get", "--max-time", "10", "http://127.0.0.1:" + std::to_string(listener.port()) + "/"});
  EXPECT_EQ(r.exit_code, 52) << r.err;
}

TEST(CliExitCodes, CertificateForOtherAddressExits60) {
  ASSERT_FALSE(cli_path().empty());
  const TempDir dir;
  // 127.0.0.2 is loopback but not in the generated certificate (localhost, 127.0.0.1, ::1).
  ServeProcess serve = start_serve({"--bind", "127.0.0.2", "--write-cert", dir.file("cert.pem")});
  if (serve.url.empty()) {
    GTEST_SKIP() << "cannot bind 127.0.0.2 here";
  }
  const RunResult r = holdfast({"get", "--cacert", dir.file("cert.pem"), serve.url + "/"});
  EXPECT_EQ(r.exit_code, 60) << r.err;
  EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mismatch"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace holdfast::interop
