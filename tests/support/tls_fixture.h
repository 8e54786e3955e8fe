// Test fixture pieces: a generated certificate written to a temp file, and a TLS holdfast::Server.
#pragma once

#include <memory>
#include <string>

#include "holdfast/certs.h"
#include "holdfast/server.h"

namespace holdfast::testing {

/// A self-signed certificate for localhost/127.0.0.1/::1, generated once per process, with its
/// PEM also written to a temporary file (for ClientTlsOptions::ca_file and curl --cacert).
struct TestCertificate {
  GeneratedCertificate cert;
  std::string cert_file;
};
const TestCertificate& test_certificate();

/// Starts a holdfast Server on 127.0.0.1:0 with `handler`; TLS with the test certificate unless
/// `plain`. Aborts the test binary if the server cannot start (a broken environment).
std::unique_ptr<Server> start_server(Handler handler, bool plain = false,
                                     ServerOptions options = {});

/// "https://127.0.0.1:PORT" (or http://) for a server from start_server().
std::string base_url(const Server& server, bool plain = false);

}  // namespace holdfast::testing
