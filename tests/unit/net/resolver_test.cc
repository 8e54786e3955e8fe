// Unit tests of the c-ares Resolver on a Loop. No outside network: names that need DNS are sent
// to a silent or NXDOMAIN-answering fake server on 127.0.0.1, or may fail in any of the DNS ways.
#include "net/resolver.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "holdfast/error.h"
#include "net_test_util.h"

namespace holdfast::net {
namespace {

using std::chrono::milliseconds;
using testing::make_loop;
using testing::run_until;
using Answer = std::optional<Result<std::vector<SocketAddress>>>;

std::unique_ptr<Resolver> make_resolver(event::Loop& loop, ResolverOptions opts = {}) {
  auto r = Resolver::create(loop, std::move(opts));
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? std::move(*r) : nullptr;
}

// A UDP "DNS server" on 127.0.0.1: silent, or answering every query with NXDOMAIN.
class FakeDns final : public event::IoHandler {
 public:
  FakeDns(event::Loop& loop, bool answer_nxdomain) : loop_(loop), nxdomain_(answer_nxdomain) {
    fd_ = Fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const auto any_port = SocketAddress::loopback_v4(0);
    EXPECT_EQ(::bind(fd_.get(), any_port.data(), any_port.size()), 0);
    address_ = *local_address(fd_.get());
    EXPECT_TRUE(loop_.watch(fd_.get(), event::kReadable, this));
  }
  ~FakeDns() { loop_.unwatch(fd_.get()); }
  const SocketAddress& address() const { return address_; }
  int queries() const { return queries_; }

  void on_io(std::uint32_t) override {
    std::uint8_t buf[512];
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const auto n =
        ::recvfrom(fd_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 12) {
      return;
    }
    ++queries_;
    if (!nxdomain_) {
      return;
    }
    // RFC 1035 §4.1.1: same ID and question; QR=1, RA=1, RCODE=3 (name error), no answers.
    buf[2] = static_cast<std::uint8_t>(0x80 | (buf[2] & 0x01));
    buf[3] = 0x83;
    ::sendto(fd_.get(), buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from),
             len);
  }

 private:
  event::Loop& loop_;
  bool nxdomain_;
  Fd fd_;
  SocketAddress address_;
  int queries_ = 0;
};

TEST(Resolver, NumericAddressAnswersWithoutLookupAndAsynchronously) {
  auto loop = make_loop();
  auto resolver = make_resolver(*loop);
  Answer answer;
  resolver->resolve("127.0.0.1", 8080, [&](auto r) { answer = std::move(r); });
  EXPECT_FALSE(answer.has_value());  // never before resolve() returns
  ASSERT_TRUE(run_until(*loop, [&] { return answer.has_value(); }));
  ASSERT_TRUE(*answer);
  ASSERT_EQ((*answer)->size(), 1u);
  EXPECT_EQ((*answer)->front().to_string(), "127.0.0.1:8080");
}

TEST(Resolver, NumericIpv6InBrackets) {
  auto loop = make_loop();
  auto resolver = make_resolver(*loop);
  Answer answer;
  resolver->resolve("[::1]", 443, [&](auto r) { answer = std::move(r); });
  ASSERT_TRUE(run_until(*loop, [&] { return answer.has_value(); }));
  ASSERT_TRUE(*answer);
  EXPECT_EQ((*answer)->front().to_string(), "[::1]:443");
}

TEST(Resolver, LocalhostResolvesToLoopbackIpv4First) {
  auto loop = make_loop();
  auto resolver = make_resolver(*loop);
  Answer answer;
  resolver->resolve("localhost", 80, [&](auto r) { answer = std::move(r); });
  ASSERT_TRUE(run_until(*loop, [&] { return answer.has_value(); }));
  ASSERT_TRUE(*answer) << answer->error().message();
  ASSERT_FALSE((*answer)->empty());
  EXPECT_EQ((*answer)->front().to_string(), "127.0.0.1:80");
  for (const auto& a : **answer) {
    EXPECT_TRUE(a.is_loopback()) << a.to_string();
  }
}

// The first name of /etc/hosts mapped to a 127.x.y.z address other than "localhost*", or "".
std::pair<std::string, std::string> loopback_name_from_etc_hosts() {
  std::ifstream in("/etc/hosts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line.substr(0, line.find('#')));
    std::string ip;
    std::string name;
    words >> ip;
    if (ip.rfind("127.", 0) != 0) {
      continue;
    }
    while (words >> name) {
      if (name.rfind("localhost", 0) != 0) {
        return {name, ip};
      }
    }
  }
  return {};
}

TEST(Resolver, EtcHostsNamesResolveWithoutDns) {
  const auto [name, ip] = loopback_name_from_etc_hosts();
  if (name.empty()) {
    GTEST_SKIP() << "/etc/hosts has no loopback name besides localhost";
  }
  auto loop = make_loop();
  FakeDns dns(*loop, true);  // would answer NXDOMAIN if c-ares asked DNS instead of /etc/hosts
  ResolverOptions opts;
  opts.servers = {dns.address()};
  auto resolver = make_resolver(*loop, opts);
  Answer answer;
  resolver->resolve(name, 8443, [&](auto r) { answer = std::move(r); });
  ASSERT_TRUE(run_until(*loop, [&] { return answer.has_value(); }));
  ASSERT_TRUE(*answer) << name << ": " << answer->error().message();
  ASSERT_FALSE((*answer)->empty());
  EXPECT_EQ((*answer)->front().to_string(), ip + ":8443");
  EXPECT_EQ(dns.queries(), 0);
}

TEST(Resolver, NxdomainFromServerIsHostNotFound) {
  auto loop = make_loop();
  FakeDns dns(*loop, true);
  ResolverOptions opts;
  opts.servers = {dns.address()};
  opts.timeout = milliseconds{2000};
  auto resolver = make_resolver(*loop, opts);
  Answer answer;
  resolver->resolve("localhost.localdomain.holdfast-test", 1,
                    [&](auto r) { answer = std::move(r); });
  ASSERT_TRUE(run_until(*loop, [&] { return answer.has_value(); }));
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error(), Errc::host_not_found);
  EXPECT_GE(dns.queries(), 1);
  EXPECT_EQ(resolver->pending(), 0u);
}

TEST(Resolver, InvalidNameFailsClearlyAndQuickly) {
  auto loop = make_loop();
  ResolverOptions opts;
  opts.timeout = milliseconds{1500};
  opts.tries = 1;
  auto resolver = make_resolver(*loop, opts);
  Answer answer;
  const auto start = event::Clock::now();
  resolver->resolve("no-such-host.invalid", 80, [&](auto r) { answer = std::move(r); });
  ASSERT_TRUE(run_until(
      *loop, [&] { return answer.has_value(); }, milliseconds{4000}));
  EXPECT_LT(event::Clock::now() - start, milliseconds{3000});
  ASSERT_FALSE(*answer);
  const auto ec = answer->error();
  EXPECT_TRUE(ec == Errc::host_not_found || ec == Errc::dns_failure || ec == Errc::dns_timeout)
      << describe(ec);
}

TEST(Resolver, SilentServerTimesOutWithinTheBound) {
  auto loop = make_loop();
  FakeDns dns(*loop, false);
  ResolverOptions opts;
  opts.servers = {dns.address()};
  opts.timeout = milliseconds{300};
  opts.tries = 2;
  auto resolver = make_resolver(*loop, opts);
  Answer answer;
  const auto start = event::Clock::now();
  resolver->resolve("silent.holdfast-test", 80, [&](auto r) { answer = std::move(r); });
  EXPECT_EQ(resolver->pending(), 1u);
  ASSERT_TRUE(run_until(
      *loop, [&] { return answer.has_value(); }, milliseconds{6000}));
  const auto took = event::Clock::now() - start;
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error(), Errc::dns_timeout) << describe(answer->error());
  EXPECT_GE(took, milliseconds{250});
  // opts.timeout bounds the whole query (300 ms over both tries). The bound leaves room for a
  // loaded machine and still catches an ignored timeout (c-ares' default: seconds a try).
  EXPECT_LT(took, milliseconds{3000});
  EXPECT_GE(dns.queries(), 1);  // the query really went out through the loop-watched socket
}

TEST(Resolver, DestructionCancelsPendingQueries) {
  auto loop = make_loop();
  FakeDns dns(*loop, false);
  ResolverOptions opts;
  opts.servers = {dns.address()};
  auto resolver = make_resolver(*loop, opts);
  Answer answer;
  resolver->resolve("pending.holdfast-test", 80, [&](auto r) { answer = std::move(r); });
  loop->run_once(milliseconds{0});
  EXPECT_FALSE(answer.has_value());
  resolver.reset();
  ASSERT_TRUE(answer.has_value());
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error(), Errc::cancelled);
  EXPECT_EQ(loop->watched_count(), 1u);  // only the fake server: c-ares' sockets are unwatched
}

TEST(Resolver, CallbackMayDestroyTheResolver) {
  auto loop = make_loop();
  auto resolver = make_resolver(*loop);
  int calls = 0;
  resolver->resolve("127.0.0.1", 1, [&](auto) {
    ++calls;
    resolver.reset();
  });
  resolver->resolve("127.0.0.2", 1, [&](auto r) {
    ++calls;
    EXPECT_TRUE(r);
  });
  ASSERT_TRUE(run_until(*loop, [&] { return calls == 2; }));
  EXPECT_EQ(resolver, nullptr);
}

TEST(Resolver, EmptyNameAndBadOptionsAreInvalid) {
  auto loop = make_loop();
  ResolverOptions bad;
  bad.tries = 0;
  auto r = Resolver::create(*loop, bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::invalid_argument);
  auto resolver = make_resolver(*loop);
  Answer answer;
  resolver->resolve("", 80, [&](auto res) { answer = std::move(res); });
  ASSERT_TRUE(run_until(*loop, [&] { return answer.has_value(); }));
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error(), Errc::invalid_argument);
}

}  // namespace
}  // namespace holdfast::net
