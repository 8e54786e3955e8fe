// `holdfast serve` routes. Handlers run on loop threads and must not block (server.h): delays and
// large bodies are driven by ResponseWriter::after instead of sleeping or looping.
#include "routes.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace holdfast::cli {
namespace {

constexpr std::string_view kPattern =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// /bytes writes this many pieces at a time, then waits until the connection has handed them to
// the kernel (ResponseWriter::when_writable): a slow reader holds back the pump, not memory.
constexpr int kPiecesPerTurn = 4;

void log_line(const Request& request, int status, std::uint64_t length) {
  static std::mutex mutex;
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const std::string_view version = to_string(request.version);
  const std::lock_guard lock(mutex);
  std::fprintf(stderr, "%s \"%s %s %.*s\" %d %llu\n", stamp, request.method.c_str(),
               request.url.c_str(), static_cast<int>(version.size()), version.data(), status,
               static_cast<unsigned long long>(length));
  std::fflush(stderr);
}

Response text_response(int status, std::string body) {
  Response response;
  response.status = status;
  response.headers.add("Content-Type", "text/plain; charset=utf-8");
  response.body = std::move(body);
  return response;
}

// The request rendered as text (for methods without a body) or its body (POST, PUT, PATCH), with
// the method, target and every header also returned as X-Echo-* response headers.
Response echo(const Request& request) {
  Response response;
  response.headers.add("X-Echo-Method", request.method);
  response.headers.add("X-Echo-Target", request.url);
  for (const HeaderField& field : request.headers) {
    response.headers.add("X-Echo-Header-" + field.name, field.value);
  }
  if (request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
    const auto type = request.headers.get("Content-Type");
    response.headers.add("Content-Type", type ? std::string(*type) : "application/octet-stream");
    response.body = request.body;
    return response;
  }
  response.headers.add("Content-Type", "text/plain; charset=utf-8");
  response.body =
      request.method + " " + request.url + " " + std::string(to_string(request.version)) + "\n";
  for (const HeaderField& field : request.headers) {
    response.body += field.name + ": " + field.value + "\n";
  }
  return response;
}

template <typename T>
bool parse_number(std::string_view text, T& value) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && !text.empty();
}

struct BytesStream {
  std::uint64_t offset = 0;
  std::uint64_t total = 0;
};

std::string piece_at(std::uint64_t offset, std::size_t size) {
  std::string piece(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    piece[i] = bytes_pattern_at(offset + i);
  }
  return piece;
}

// Queues up to kPiecesPerTurn pieces, then goes on once they are out, until done.
void pump_bytes(const ResponseWriter& writer, const std::shared_ptr<BytesStream>& stream) {
  // Every piece starts at a multiple of kBytesPiece, a multiple of the pattern's period, so one
  // precomputed piece serves all but a shorter last one.
  static const std::string full_piece = piece_at(0, kBytesPiece);
  for (int i = 0; i < kPiecesPerTurn && stream->offset < stream->total; ++i) {
    const std::uint64_t left = stream->total - stream->offset;
    const std::size_t size = left < kBytesPiece ? static_cast<std::size_t>(left) : kBytesPiece;
    writer.write(size == kBytesPiece ? full_piece : piece_at(stream->offset, size));
    stream->offset += size;
  }
  if (stream->offset >= stream->total) {
    writer.finish();
    return;
  }
  writer.when_writable([stream](const ResponseWriter& w) { pump_bytes(w, stream); });
}

class Router {
 public:
  explicit Router(bool access_log) : access_log_(access_log) {}

  void operator()(const Request& request, const ResponseWriter& writer) const {
    std::string_view path = request.url;
    path = path.substr(0, path.find('?'));
    if (path == "/") {
      send(request, writer, text_response(200, "hello from holdfast\n"));
    } else if (path == "/echo") {
      send(request, writer, echo(request));
    } else if (path.starts_with("/delay/")) {
      delay(request, writer, path.substr(7));
    } else if (path.starts_with("/bytes/")) {
      bytes(request, writer, path.substr(7));
    } else if (path.starts_with("/status/")) {
      status(request, writer, path.substr(8));
    } else {
      send(request, writer, text_response(404, "not found\n"));
    }
  }

 private:
  void send(const Request& request, const ResponseWriter& writer, Response response) const {
    if (access_log_) {
      log_line(request, response.status, response.body.size());
    }
    writer.send(std::move(response));
  }

  void delay(const Request& request, const ResponseWriter& writer, std::string_view arg) const {
    double seconds = 0;
    if (!parse_number(arg, seconds) || !std::isfinite(seconds) || seconds < 0 ||
        seconds > kMaxDelaySeconds) {
      send(request, writer, text_response(400, "delay must be 0..86400 seconds\n"));
      return;
    }
    const auto wait = std::chrono::milliseconds(static_cast<long long>(std::ceil(seconds * 1000)));
    Response response = text_response(200, "delayed " + std::string(arg) + " s\n");
    if (access_log_) {
      log_line(request, 200, response.body.size());
    }
    writer.after(wait,
                 [response = std::move(response)](const ResponseWriter& w) { w.send(response); });
  }

  void bytes(const Request& request, const ResponseWriter& writer, std::string_view arg) const {
    std::uint64_t count = 0;
    if (!parse_number(arg, count) || count > kMaxBytes) {
      send(request, writer, text_response(400, "bytes must be 0..1073741824\n"));
      return;
    }
    if (access_log_) {
      log_line(request, 200, count);
    }
    writer.start(200, Headers{{"Content-Type", "application/octet-stream"},
                              {"Content-Length", std::to_string(count)}});
    pump_bytes(writer, std::make_shared<BytesStream>(BytesStream{0, count}));
  }

  void status(const Request& request, const ResponseWriter& writer, std::string_view arg) const {
    int code = 0;
    if (!parse_number(arg, code) || code < 200 || code > 599) {
      send(request, writer, text_response(400, "status must be 200..599\n"));
      return;
    }
    // RFC 9110 §15.3.5, §15.4.5: 204 and 304 responses have no content.
    const bool no_body = code == 204 || code == 304;
    send(request, writer, text_response(code, no_body ? "" : std::to_string(code) + "\n"));
  }

  bool access_log_;
};

}  // namespace

char bytes_pattern_at(std::uint64_t i) { return kPattern[i % kPattern.size()]; }

Handler make_router(bool access_log) { return Router(access_log); }

}  // namespace holdfast::cli
