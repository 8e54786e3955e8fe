// Shared test certificate and server start-up helpers.
#include "support/tls_fixture.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

namespace holdfast::testing {

const TestCertificate& test_certificate() {
  static const TestCertificate cert = [] {
    auto generated = generate_self_signed_certificate({"localhost"}, {"127.0.0.1", "::1"}, 2);
    if (!generated) {
      std::cerr << "cannot generate a test certificate: " << generated.error().message() << "\n";
      std::abort();
    }
    std::string path = "/tmp/holdfast-test-cert-" + std::to_string(::getpid()) + ".pem";
    std::ofstream(path) << generated->cert_pem;
    return TestCertificate{*generated, path};
  }();
  return cert;
}

std::unique_ptr<Server> start_server(Handler handler, bool plain, ServerOptions options) {
  if (!plain) {
    ServerTlsOptions tls;
    tls.cert_pem = test_certificate().cert.cert_pem;
    tls.key_pem = test_certificate().cert.key_pem;
    options.tls = tls;
  }
  options.bind = "127.0.0.1";
  options.port = 0;
  auto server = Server::start(std::move(options), std::move(handler));
  if (!server) {
    std::cerr << "cannot start a test server: " << server.error().message() << "\n";
    std::abort();
  }
  return std::move(*server);
}

std::string base_url(const Server& server, bool plain) {
  return std::string(plain ? "http" : "https") + "://127.0.0.1:" + std::to_string(server.port());
}

}  // namespace holdfast::testing
