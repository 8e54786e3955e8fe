// ServerOptions::listen_fd: a Server adopts a socket that already listens (pre-forked workers).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/server.h"
#include "support/tls_fixture.h"

namespace holdfast {
namespace {

// A blocking TCP socket bound to 127.0.0.1:0; listening if `listen`.
int loopback_socket(bool listen) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  if (listen) {
    EXPECT_EQ(::listen(fd, 16), 0);
  }
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  return ntohs(address.sin_port);
}

void hello(const Request&, const ResponseWriter& w) {
  Response r;
  r.body = "adopted";
  w.send(std::move(r));
}

TEST(ServerListenFd, ServesOnAnAdoptedListeningSocketAndIgnoresBindAndPort) {
  const int fd = loopback_socket(true);
  const std::uint16_t port = port_of(fd);
  ServerOptions options;
  options.listen_fd = fd;
  options.bind = "not an address";  // ignored: the socket is already bound
  options.port = 1;
  options.tls = ServerTlsOptions{};
  options.tls->cert_pem = testing::test_certificate().cert.cert_pem;
  options.tls->key_pem = testing::test_certificate().cert.key_pem;
  auto started = Server::start(options, hello);
  ASSERT_TRUE(started) << describe(started.error());
  auto& server = *started;
  EXPECT_EQ(server->port(), port);
  ClientOptions client_options;
  client_options.tls.ca_file = testing::test_certificate().cert_file;
  Client client(client_options);
  auto r = client.get("https://127.0.0.1:" + std::to_string(port) + "/");
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(r->body, "adopted");
  server->shutdown(std::chrono::milliseconds(0));
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);  // the server owned it and closed it
}

TEST(ServerListenFd, RefusesASocketThatDoesNotListenAndClosesIt) {
  const int fd = loopback_socket(false);
  ServerOptions options;
  options.listen_fd = fd;
  auto server = Server::start(options, hello);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error(), make_error_code(Errc::invalid_argument));
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace holdfast
