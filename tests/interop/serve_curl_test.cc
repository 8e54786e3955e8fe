// curl (Debian) against `holdfast serve`: a real peer's view of the server over TLS.
#include <csignal>
#include <string>

#include <gtest/gtest.h>

#include "interop_support.h"

namespace holdfast::interop {
namespace {

class ServeCurl : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built (HOLDFAST_CLI_PATH empty)";
    curl_ = find_program("curl");
    ASSERT_FALSE(curl_.empty()) << "curl is not installed: apt-get install curl";
    serve_ = start_serve({"--write-cert", cert()}, dir_.file("serve.log"));
    ASSERT_FALSE(serve_.url.empty()) << "holdfast serve did not print its address; stderr:\n"
                                     << read_file(dir_.file("serve.log"));
  }

  [[nodiscard]] std::string cert() const { return dir_.file("cert.pem"); }

  RunResult curl(std::vector<std::string> args) const {
    args.insert(args.begin(), {curl_, "-sS", "--max-time", "20"});
    return run(args);
  }

  TempDir dir_;
  std::string curl_;
  ServeProcess serve_;
};

TEST_F(ServeCurl, FirstLinesNameTheAddressAndFingerprint) {
  EXPECT_EQ(serve_.url.rfind("https://127.0.0.1:", 0), 0u) << serve_.url;
  const std::optional<std::string> second = serve_.process->read_line(milliseconds(5000));
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->find("sha256 fingerprint"), std::string::npos) << *second;
  EXPECT_NE(read_file(cert()).find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST_F(ServeCurl, CurlFetchesRootWithWrittenCertificate) {
  const RunResult r = curl({"--cacert", cert(), serve_.url + "/"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello from holdfast\n");
}

TEST_F(ServeCurl, CurlEchoesPostBodyAndHeaders) {
  const RunResult r = curl({"--cacert", cert(), "-i", "-H", "X-Probe: abc 123", "--data-binary",
                            "ping\npong", serve_.url + "/echo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains_nocase(r.out, "X-Echo-Method: POST")) << r.out;
  EXPECT_TRUE(contains_nocase(r.out, "X-Echo-Header-X-Probe: abc 123")) << r.out;
  EXPECT_TRUE(r.out.ends_with("\r\n\r\nping\npong")) << r.out;
}

TEST_F(ServeCurl, CurlGetOfEchoRendersRequest) {
  const RunResult r =
      curl({"--http1.1", "--cacert", cert(), "-H", "X-Probe: seen", serve_.url + "/echo?q=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("GET /echo?q=1 HTTP/1.1\n", 0), 0u) << r.out;
  EXPECT_TRUE(contains_nocase(r.out, "X-Probe: seen\n")) << r.out;
}

TEST_F(ServeCurl, CurlReceivesEveryByteOfALargeBody) {
  const std::string file = dir_.file("bytes.bin");
  const RunResult r = curl({"--cacert", cert(), "-o", file, serve_.url + "/bytes/1000000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string body = read_file(file);
  ASSERT_EQ(body.size(), 1000000u);
  EXPECT_EQ(body.substr(0, 4), "ABCD");
  EXPECT_EQ(body[64], 'A');
  EXPECT_EQ(body[999999],
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[999999 % 64]);
}

TEST_F(ServeCurl, CurlSeesRequestedStatus) {
  const RunResult r = curl(
      {"--cacert", cert(), "-o", "/dev/null", "-w", "%{http_code}", serve_.url + "/status/418"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "418");
}

TEST_F(ServeCurl, CurlWithoutCacertFailsVerification) {
  const RunResult r = curl({serve_.url + "/"});
  EXPECT_EQ(r.exit_code, 60) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_F(ServeCurl, SigtermShutsDownGracefully) {
  const std::optional<int> status = serve_.process->signal_and_wait(SIGTERM, milliseconds(15'000));
  ASSERT_TRUE(status.has_value()) << "holdfast serve did not exit within 15 s of SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

}  // namespace
}  // namespace holdfast::interop
