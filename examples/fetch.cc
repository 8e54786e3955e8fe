// Example: fetch a URL with holdfast::Client and print status, timings and body.
#include <cstdio>
#include <string>

#include "holdfast/holdfast.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URL [CA-FILE]\n", argv[0]);
    return 2;
  }
  holdfast::ClientOptions options;  // keep-alive on, verification on, pooled connections
  if (argc > 2) {
    options.tls.ca_file = argv[2];  // trust a private CA (e.g. holdfast serve --write-cert)
  }
  holdfast::Client client(options);
  auto response = client.get(argv[1]);
  if (!response) {
    std::fprintf(stderr, "error: %s\n", holdfast::describe(response.error()).c_str());
    return 1;
  }
  std::printf("%d %s, TLS %s, total %lld us\n", response->status, response->reason.c_str(),
              response->timings.tls_version.c_str(),
              static_cast<long long>(response->timings.total.count()));
  std::fwrite(response->body.data(), 1, response->body.size(), stdout);
  return 0;
}
