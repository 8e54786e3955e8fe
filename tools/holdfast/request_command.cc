// `holdfast get` / `holdfast request`: builds the Request and ClientOptions from flags, runs it,
// and writes the body (streamed unless -i or --fail need the head first) to stdout or -o FILE.
#include "request_command.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include <CLI/CLI.hpp>

#include "exit_codes.h"
#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/url.h"
#include "transcript.h"

namespace holdfast::cli {
namespace {

// --http1.1 / --http2-prior-knowledge. Process-wide (a process runs one command), kept here
// rather than in RequestFlags, which other commands share.
struct ProtocolChoice {
  bool http1_only = false;
  bool h2c_prior_knowledge = false;
  bool no_record_takeover = false;
};

ProtocolChoice& protocol_choice() {
  static ProtocolChoice choice;
  return choice;
}

void add_common_flags(CLI::App& cmd, RequestFlags& f) {
  cmd.add_flag("--http1.1", protocol_choice().http1_only,
               "speak HTTP/1.1 only (no h2 in the TLS ALPN offer)");
  cmd.add_flag("--http2-prior-knowledge", protocol_choice().h2c_prior_knowledge,
               "http:// URLs: speak HTTP/2 without upgrade (h2c)");
  cmd.add_flag("--no-tls-record-takeover", protocol_choice().no_record_takeover,
               "keep OpenSSL's record layer after a TLS 1.3 handshake (for comparison)");
  cmd.add_option("url", f.url, "absolute http:// or https:// URL")->required();
  cmd.add_option("-H,--header", f.headers, "extra header \"Name: value\" (repeatable)");
  cmd.add_option("-o,--output", f.output, "write the body to FILE instead of stdout");
  cmd.add_flag("-k,--insecure", f.insecure, "do not verify the server certificate (tests only)");
  // Not checked here: the library reports an unreadable file as ca_load_failed (exit 77, as curl).
  cmd.add_option("--cacert", f.cacert, "trust the CA certificates in this PEM FILE");
  cmd.add_option("--connect-timeout", f.connect_timeout,
                 "SECONDS for each of DNS, TCP connect and TLS handshake (fractional ok)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("-m,--max-time", f.max_time, "SECONDS for the whole request (fractional ok)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_flag("-i,--include", f.include, "write the status line and headers before the body");
  cmd.add_flag("-v,--verbose", f.verbose, "request, response heads and timings on stderr");
  cmd.add_flag("-s,--silent", f.silent, "no error messages");
  cmd.add_flag("-S,--show-error", f.show_error, "error messages even with -s");
  cmd.add_flag("-f,--fail", f.fail, "exit 22 without output when the status is >= 400");
  add_socket_flags(cmd, f.socket);
}

// Rounds up so that a tiny positive value never becomes 0, which means "no limit".
std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(std::ceil(seconds * 1000.0)));
}

// Headers as curl takes them: "Name: value"; the name must be non-empty and have no spaces.
bool add_header(Request& request, const std::string& text) {
  const std::size_t colon = text.find(':');
  if (colon == 0 || colon == std::string::npos || text.find_first_of(" \t") < colon) {
    return false;
  }
  std::size_t start = text.find_first_not_of(" \t", colon + 1);
  request.headers.add(text.substr(0, colon),
                      start == std::string::npos ? std::string() : text.substr(start));
  return true;
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// Fills in the body; returns the exit code of a failure, or ok.
ExitCode set_body(const RequestFlags& f, Request& request, std::string& error) {
  for (const std::string& piece : f.data) {
    request.body += request.body.empty() ? piece : "&" + piece;
  }
  if (f.data_binary) {
    const std::string& arg = *f.data_binary;
    std::string content = arg;
    if (!arg.empty() && arg[0] == '@' && !read_file(arg.substr(1), content)) {
      error = "could not read " + arg.substr(1) + ": " + std::strerror(errno);
      return ExitCode::read_error;
    }
    request.body += (!request.body.empty() && !f.data.empty()) ? "&" + content : content;
  }
  const bool has_body = !f.data.empty() || f.data_binary.has_value();
  if (has_body && !request.headers.contains("Content-Type")) {
    request.headers.add("Content-Type", "application/x-www-form-urlencoded");
  }
  request.method = !f.method.empty() ? f.method : (has_body ? "POST" : "GET");
  return ExitCode::ok;
}

ClientOptions client_options(const RequestFlags& f, bool buffered) {
  ClientOptions options;
  options.tls.ca_file = f.cacert;
  options.tls.insecure_skip_verify = f.insecure;
  if (f.connect_timeout > 0) {
    const auto limit = to_ms(f.connect_timeout);
    options.timeouts.dns = limit;
    options.timeouts.connect = limit;
    options.timeouts.tls_handshake = limit;
  }
  options.timeouts.deadline = to_ms(f.max_time);
  apply_socket_flags(f.socket, options.socket);
  // With -i or --fail the body is held until the head is known; allow up to 1 GiB then.
  options.max_response_body = buffered ? (std::size_t{1} << 30) : options.max_response_body;
  options.threads = 1;
  options.force_http1 = protocol_choice().http1_only;
  options.h2c_prior_knowledge = protocol_choice().h2c_prior_knowledge;
  options.tls.record_takeover = !protocol_choice().no_record_takeover;
  return options;
}

// The body's destination: stdout or -o FILE, binary safe; remembers the first write failure.
class Output {
 public:
  bool open(const std::string& path) {
    if (path.empty() || path == "-") {
      file_ = stdout;
      return true;
    }
    file_ = std::fopen(path.c_str(), "wb");
    owned_ = file_ != nullptr;
    if (!owned_) {
      error_ = errno;
    }
    return owned_;
  }
  ~Output() {
    if (owned_) {
      std::fclose(file_);
    }
  }
  Output() = default;
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  bool write(const void* data, std::size_t size) {
    if (error_ == 0 && size > 0 && std::fwrite(data, 1, size, file_) != size) {
      error_ = errno != 0 ? errno : EIO;
    }
    return error_ == 0;
  }
  bool write(const std::string& text) { return write(text.data(), text.size()); }
  bool finish() {
    if (error_ == 0 && std::fflush(file_) != 0) {
      error_ = errno != 0 ? errno : EIO;
    }
    if (owned_) {
      owned_ = false;
      if (std::fclose(file_) != 0 && error_ == 0) {
        error_ = errno != 0 ? errno : EIO;
      }
    }
    return error_ == 0;
  }
  [[nodiscard]] int error() const { return error_; }

 private:
  std::FILE* file_ = nullptr;
  bool owned_ = false;
  int error_ = 0;
};

class Reporter {
 public:
  explicit Reporter(const RequestFlags& f) : quiet_(f.silent && !f.show_error) {}
  int fail(ExitCode code, const std::string& message) const {
    if (!quiet_) {
      print_error(message);
    }
    return static_cast<int>(code);
  }
  int fail(std::error_code ec, const std::string& url) const {
    if (!quiet_) {
      print_error(ec, url);
    }
    return static_cast<int>(exit_code_for(ec));
  }

 private:
  bool quiet_;
};

int write_error(const Reporter& report, const RequestFlags& f, int error) {
  const std::string where = f.output.empty() ? "stdout" : f.output;
  return report.fail(ExitCode::write_error,
                     "could not write the output to " + where + ": " + std::strerror(error));
}

// Writes what a successful exchange produced; returns the exit code.
int finish_response(const RequestFlags& f, const Reporter& report, const Response& response,
                    Output& output, bool buffered) {
  if (f.verbose) {
    std::fprintf(stderr, "* protocol: %s\n", std::string(to_string(response.version)).c_str());
    print_response_head(stderr, response);
    print_timings(stderr, response.timings);
  }
  if (f.fail && response.status >= 400) {
    return report.fail(ExitCode::http_error,
                       "the server answered HTTP " + std::to_string(response.status));
  }
  if (f.include) {
    output.write(response_head(response));
  }
  if (buffered) {
    output.write(response.body);
  }
  if (!output.finish()) {
    return write_error(report, f, output.error());
  }
  return 0;
}

// Builds the request from the flags; returns the exit code of a failure, or ok.
int build_request(const RequestFlags& f, const Reporter& report, Request& request) {
  request.url = f.url;
  for (const std::string& header : f.headers) {
    if (!add_header(request, header)) {
      return report.fail(ExitCode::usage, "invalid header \"" + header + "\": use \"Name: value\"");
    }
  }
  std::string error;
  if (const ExitCode code = set_body(f, request, error); code != ExitCode::ok) {
    return report.fail(code, error);
  }
  return 0;
}

}  // namespace

void add_request_commands(CLI::App& app, RequestFlags& get_flags, RequestFlags& request_flags) {
  CLI::App* get = app.add_subcommand("get", "GET a URL and write the body to stdout");
  add_common_flags(*get, get_flags);

  CLI::App* request = app.add_subcommand("request", "send any HTTP request (curl-like flags)");
  add_common_flags(*request, request_flags);
  request->add_option("-X,--request", request_flags.method, "METHOD (default GET, POST with -d)");
  request->add_option("-d,--data", request_flags.data, "TEXT body (repeatable, joined with &)");
  request->add_option("--data-binary", request_flags.data_binary,
                      "body sent as is: @FILE for a file's bytes, else the text");
}

int run_request(const RequestFlags& f) {
  const Reporter report(f);
  const Result<Url> url = parse_url(f.url);
  if (!url) {
    return report.fail(url.error(), f.url);
  }
  Request request;
  if (const int code = build_request(f, report, request); code != 0) {
    return code;
  }
  Output output;
  if (!output.open(f.output)) {
    return write_error(report, f, output.error());
  }
  const bool buffered = f.include || f.fail;
  Client client(client_options(f, buffered));
  RequestOptions per_request;
  bool sink_failed = false;
  if (!buffered) {
    per_request.on_body = [&output,
                           &sink_failed](std::span<const std::uint8_t> chunk) -> Result<void> {
      if (!output.write(chunk.data(), chunk.size())) {
        sink_failed = true;
        return fail(std::error_code(output.error(), std::system_category()));
      }
      return {};
    };
  }
  if (f.verbose) {
    print_request_head(stderr, request, *url, ClientOptions{}.user_agent);
  }
  const Result<Response> response = client.request(std::move(request), per_request);
  if (!response) {
    return sink_failed ? write_error(report, f, output.error())
                       : report.fail(response.error(), f.url);
  }
  return finish_response(f, report, *response, output, buffered);
}

}  // namespace holdfast::cli
