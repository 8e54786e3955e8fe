// What -i and -v print: request and response heads, and the per-phase timing table.
#pragma once

#include <cstdio>
#include <string>

#include "holdfast/http.h"
#include "holdfast/url.h"

namespace holdfast::cli {

/// The response head as received: "HTTP/1.1 200 OK\r\n", each header "Name: value\r\n", then
/// "\r\n" (what -i writes before the body).
std::string response_head(const Response& response);

/// -v: writes the request line and the headers about to be sent, each prefixed with "> ", to `out`.
/// The Host, User-Agent and Content-Length the client adds are shown as it adds them.
void print_request_head(std::FILE* out, const Request& request, const Url& url,
                        const std::string& user_agent);

/// -v: writes the response status line and headers, each prefixed with "< ", to `out`.
void print_response_head(std::FILE* out, const Response& response);

/// -v: writes a table of the phases of `timings` (DNS, connect, TLS with version, cipher, ALPN and
/// resumption, first byte, total), each line prefixed with "* ", to `out`.
void print_timings(std::FILE* out, const Timings& timings);

}  // namespace holdfast::cli
