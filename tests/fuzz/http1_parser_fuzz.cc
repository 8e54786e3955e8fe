// libFuzzer target for the HTTP/1.1 parser: any bytes, fed whole and in pieces, must give the same
// events and verdict, never read out of bounds, never consume more than given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "http1/parser.h"

namespace {

using holdfast::http1::MessageKind;
using holdfast::http1::Parser;
using holdfast::http1::ParserHandler;
using holdfast::http1::ParserLimits;

// Records events into one string, so two runs can be compared; body bytes are appended as they
// come, so splitting a body differently gives the same string.
class Recorder : public ParserHandler {
 public:
  std::string log;
  BodyMode mode = BodyMode::normal;

  void on_message_begin() override { log += "B|"; }
  void on_request_line(std::string_view m, std::string_view t, int v) override {
    log.append(m).append(" ").append(t).append(" ").append(std::to_string(v)).append("|");
  }
  void on_status_line(int v, int s, std::string_view r) override {
    log.append(std::to_string(v)).append(" ").append(std::to_string(s)).append(r).append("|");
  }
  void on_header(std::string_view n, std::string_view v) override {
    log.append("H").append(n).append(":").append(v).append("|");
  }
  BodyMode on_headers_complete() override {
    log += "HC|";
    return mode;
  }
  void on_body(std::span<const std::uint8_t> d) override {
    log.append(reinterpret_cast<const char*>(d.data()), d.size());
  }
  void on_trailer(std::string_view n, std::string_view v) override {
    log.append("T").append(n).append(":").append(v).append("|");
  }
  void on_message_complete() override { log += "|C|"; }
};

struct Run {
  std::string log;
  int error = 0;
};

// Feeds `input` in pieces of `step` bytes (0: all at once), re-passing unconsumed bytes.
Run run(MessageKind kind, ParserHandler::BodyMode mode, const ParserLimits& limits,
        std::string_view input, std::size_t step) {
  Recorder rec;
  rec.mode = mode;
  Parser parser(kind, rec, limits);
  std::string pending;
  std::size_t offered = 0;
  Run out;
  while (offered < input.size() && out.error == 0) {
    const std::size_t n = step == 0 ? input.size() : std::min(step, input.size() - offered);
    pending.append(input.substr(offered, n));
    offered += n;
    while (!pending.empty()) {
      auto used =
          parser.feed({reinterpret_cast<const std::uint8_t*>(pending.data()), pending.size()});
      if (!used) {
        out.error = used.error().value();
        break;
      }
      if (*used > pending.size()) {
        std::abort();
      }
      if (*used == 0) {
        break;
      }
      pending.erase(0, *used);
    }
  }
  if (out.error == 0) {
    auto fin = parser.finish();
    out.error = fin ? 0 : 1000 + fin.error().value();
  }
  out.log = std::move(rec.log);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const MessageKind kind = (data[0] & 1) != 0 ? MessageKind::response : MessageKind::request;
  const auto mode =
      (data[0] & 2) != 0 ? ParserHandler::BodyMode::none : ParserHandler::BodyMode::normal;
  ParserLimits limits;
  if ((data[0] & 4) != 0) {  // small limits reach the limit paths quickly
    limits.max_start_line = 64;
    limits.max_header_bytes = 256;
    limits.max_headers = 4;
    limits.max_chunk_ext = 16;
  }
  const std::size_t step = 1 + data[1] % 7;
  const std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  const Run whole = run(kind, mode, limits, input, 0);
  const Run pieces = run(kind, mode, limits, input, step);
  if (whole.error != pieces.error || whole.log != pieces.log) {
    std::abort();  // the feeding pattern changed the result
  }
  return 0;
}
