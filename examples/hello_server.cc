// Example: an HTTPS server with a generated certificate that answers every request.
#include <csignal>
#include <cstdio>
#include <thread>

#include "holdfast/holdfast.h"

int main() {
  if (auto r = holdfast::init(); !r) {  // one-time TLS work at start-up, before large heaps
    return 1;
  }
  auto cert = holdfast::generate_self_signed_certificate({"localhost"}, {"127.0.0.1"});
  if (!cert) {
    return 1;
  }
  holdfast::ServerOptions options;
  options.port = 8443;
  holdfast::ServerTlsOptions tls;
  tls.cert_pem = cert->cert_pem;
  tls.key_pem = cert->key_pem;
  options.tls = tls;
  auto server = holdfast::Server::start(
      options, [](const holdfast::Request& request, const holdfast::ResponseWriter& response) {
        holdfast::Response r;
        r.body = "hello, you asked for " + request.url + "\n";
        response.send(std::move(r));
      });
  if (!server) {
    std::fprintf(stderr, "error: %s\n", holdfast::describe(server.error()).c_str());
    return 1;
  }
  std::printf("listening on https://%s\n", (*server)->address().c_str());
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  int sig = 0;
  sigwait(&set, &sig);    // until Ctrl-C
  (*server)->shutdown();  // graceful: finish in-flight requests
  return 0;
}
