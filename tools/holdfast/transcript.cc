// -i / -v output: heads as sent and received, and a readable table of Response::timings.
#include "transcript.h"

#include <chrono>
#include <string_view>

namespace holdfast::cli {
namespace {

std::string status_line(const Response& response) {
  std::string line(to_string(response.version));
  line += ' ';
  line += std::to_string(response.status);
  if (!response.reason.empty()) {
    line += ' ';
    line += response.reason;
  }
  return line;
}

// Milliseconds with microsecond precision: loopback phases take well under a millisecond.
std::string format_ms(std::chrono::microseconds us) {
  char text[32];
  std::snprintf(text, sizeof text, "%10.3f ms", static_cast<double>(us.count()) / 1000.0);
  return text;
}

void print_row(std::FILE* out, std::string_view phase, std::chrono::microseconds us,
               const std::string& detail) {
  std::fprintf(out, "*   %-16.*s %s%s%s\n", static_cast<int>(phase.size()), phase.data(),
               format_ms(us).c_str(), detail.empty() ? "" : "   ", detail.c_str());
}

std::string tls_detail(const Timings& t) {
  if (t.tls_version.empty()) {
    return "";
  }
  std::string detail = t.tls_version + ", " + t.tls_cipher;
  detail += ", ALPN " + (t.alpn.empty() ? std::string("none") : t.alpn);
  detail += t.tls_resumed ? ", session resumed" : ", full handshake";
  if (!t.tls_record_path.empty()) {
    detail += t.tls_record_path == "holdfast" ? ", records: holdfast (own TLS 1.3 record layer)"
                                              : ", records: OpenSSL";
  }
  return detail;
}

}  // namespace

std::string response_head(const Response& response) {
  std::string head = status_line(response) + "\r\n";
  for (const HeaderField& field : response.headers) {
    head += field.name + ": " + field.value + "\r\n";
  }
  head += "\r\n";
  return head;
}

void print_request_head(std::FILE* out, const Request& request, const Url& url,
                        const std::string& user_agent) {
  std::fprintf(out, "* connecting to %s\n", url.origin().c_str());
  std::fprintf(out, "> %s %s HTTP/1.1\n", request.method.c_str(), url.target.c_str());
  if (!request.headers.contains("Host")) {
    std::fprintf(out, "> Host: %s\n", url.host_header().c_str());
  }
  if (!request.headers.contains("User-Agent") && !user_agent.empty()) {
    std::fprintf(out, "> User-Agent: %s\n", user_agent.c_str());
  }
  for (const HeaderField& field : request.headers) {
    std::fprintf(out, "> %s: %s\n", field.name.c_str(), field.value.c_str());
  }
  if (!request.body.empty() && !request.headers.contains("Content-Length")) {
    std::fprintf(out, "> Content-Length: %zu\n", request.body.size());
  }
  std::fprintf(out, ">\n");
}

void print_response_head(std::FILE* out, const Response& response) {
  std::fprintf(out, "< %s\n", status_line(response).c_str());
  for (const HeaderField& field : response.headers) {
    std::fprintf(out, "< %s: %s\n", field.name.c_str(), field.value.c_str());
  }
  std::fprintf(out, "<\n");
}

void print_timings(std::FILE* out, const Timings& t) {
  std::fprintf(out, "* connection: %s%s%s\n", t.reused_connection ? "reused" : "new",
               t.remote_address.empty() ? "" : " to ", t.remote_address.c_str());
  std::fprintf(out, "* timings (a phase that did not happen shows 0):\n");
  print_row(out, "DNS lookup", t.dns, "");
  print_row(out, "TCP connect", t.connect, "");
  print_row(out, "TLS handshake", t.tls, tls_detail(t));
  print_row(out, "first byte", t.first_byte, "since the start of the request");
  print_row(out, "total", t.total, "since the start of the request");
}

}  // namespace holdfast::cli
