// Test helper: a ParserHandler that records every event as a readable string, and feed drivers.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "http1/parser.h"

namespace holdfast::http1::testing {

/// Records events as strings: "begin", "method=GET", "url=/", "version=1.1", "reason=OK",
/// "header Name: value", "headers_complete ...", "body <bytes>" (consecutive body bytes of one
/// message merged), "trailer Name: value", "complete".
class EventRecorder : public ParserHandler {
 public:
  /// The parser whose properties are recorded at on_headers_complete (set after construction).
  Parser* parser = nullptr;
  /// What on_headers_complete returns.
  BodyMode body_mode = BodyMode::normal;
  std::vector<std::string> events;
  std::size_t completed = 0;

  void on_message_begin() override { events.emplace_back("begin"); }
  void on_request_line(std::string_view method, std::string_view target, int minor) override {
    events.push_back("method=" + std::string(method));
    events.push_back("url=" + std::string(target));
    events.push_back("version=1." + std::to_string(minor));
  }
  void on_status_line(int minor, int /*status*/, std::string_view reason) override {
    events.push_back("version=1." + std::to_string(minor));
    if (!reason.empty()) {
      events.push_back("reason=" + std::string(reason));
    }
  }
  void on_header(std::string_view name, std::string_view value) override {
    events.push_back("header " + std::string(name) + ": " + std::string(value));
  }
  BodyMode on_headers_complete() override {
    std::string e = "headers_complete ";
    if (parser->status() != 0) {
      e += "status=" + std::to_string(parser->status()) + " ";
    }
    e += "v=" + std::to_string(parser->version_major()) + "/" +
         std::to_string(parser->version_minor());
    const int status = parser->status();
    const bool bodiless = (status >= 100 && status < 200) || status == 204 || status == 304;
    e += std::string(" chunked=") + (bodiless ? "-" : parser->is_chunked() ? "1" : "0");
    e += " cl=" + std::to_string(parser->content_length().value_or(0));
    events.push_back(e);
    return body_mode;
  }
  void on_body(std::span<const std::uint8_t> data) override {
    if (data.empty()) {
      return;
    }
    const std::string bytes(reinterpret_cast<const char*>(data.data()), data.size());
    if (!events.empty() && events.back().starts_with("body ")) {
      events.back() += bytes;
    } else {
      events.push_back("body " + bytes);
    }
  }
  void on_trailer(std::string_view name, std::string_view value) override {
    events.push_back("trailer " + std::string(name) + ": " + std::string(value));
  }
  void on_message_complete() override {
    events.emplace_back("complete");
    ++completed;
  }
};

/// What a run of the parser over an input produced.
struct Outcome {
  std::vector<std::string> events;
  std::error_code error;
  std::size_t completed = 0;
  bool upgraded = false;
  bool idle = true;
};

/// Feeds `input` in one buffer, calling feed() again after each message, as a caller would.
inline Outcome run_one_shot(MessageKind kind, std::string_view input,
                            ParserHandler::BodyMode mode = ParserHandler::BodyMode::normal) {
  EventRecorder rec;
  rec.body_mode = mode;
  Parser parser(kind, rec);
  rec.parser = &parser;
  Outcome out;
  auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
  while (!bytes.empty()) {
    auto used = parser.feed(bytes);
    if (!used) {
      out.error = used.error();
      break;
    }
    if (*used == 0) {
      break;
    }
    bytes = bytes.subspan(*used);
  }
  out.events = rec.events;
  out.completed = rec.completed;
  out.upgraded = parser.is_upgrade() && !out.error;
  out.idle = parser.is_idle();
  return out;
}

/// Feeds `input` one byte at a time, keeping unconsumed bytes and passing them again in front of
/// the next byte, as a caller reading from a slow socket would.
inline Outcome run_drip(MessageKind kind, std::string_view input,
                        ParserHandler::BodyMode mode = ParserHandler::BodyMode::normal) {
  EventRecorder rec;
  rec.body_mode = mode;
  Parser parser(kind, rec);
  rec.parser = &parser;
  Outcome out;
  std::string pending;
  for (char c : input) {
    pending.push_back(c);
    while (!pending.empty() && !out.error) {
      auto used = parser.feed(
          std::span(reinterpret_cast<const std::uint8_t*>(pending.data()), pending.size()));
      if (!used) {
        out.error = used.error();
      } else if (*used == 0) {
        break;
      } else {
        pending.erase(0, *used);
      }
    }
    if (out.error) {
      break;
    }
  }
  out.events = rec.events;
  out.completed = rec.completed;
  out.upgraded = parser.is_upgrade() && !out.error;
  out.idle = parser.is_idle();
  return out;
}

}  // namespace holdfast::http1::testing
