// libFuzzer target for the HTTP/2 server session: any bytes after (or instead of) the client
// preface must end in events or a connection error, never a crash, leak or out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "http2/session.h"

namespace {

using holdfast::http2::Head;
using holdfast::http2::Session;
using holdfast::http2::SessionHandler;
using holdfast::http2::SessionOptions;

// Answers every request that ends, and resets every tenth stream, so that the response and
// reset paths run under fuzzed input too.
class Answerer final : public SessionHandler {
 public:
  Session* session = nullptr;
  int heads = 0;

  void on_head(std::int32_t id, Head head, bool) override {
    if (++heads % 10 == 0) {
      session->reset(id, holdfast::Http2Errc::cancel);
    } else if (head.too_large) {
      (void)session->submit_response(id, 431, {}, false);
    }
  }
  void on_body(std::int32_t, std::span<const std::uint8_t>) override {}
  void on_end_stream(std::int32_t id) override {
    if (session->submit_response(id, 200, {{"content-type", "text/plain"}}, true)) {
      session->write(id, "fuzz");
      session->end_stream(id);
    }
  }
  void on_stream_closed(std::int32_t, std::error_code) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Answerer handler;
  SessionOptions options;
  options.max_header_list_size = 8192;
  options.max_concurrent_streams = 16;
  auto session = Session::server(&handler, options);
  if (!session) {
    return 0;
  }
  handler.session = session->get();
  // Feed in two pieces split at a byte chosen by the input, to cover frames cut anywhere.
  const std::size_t split = size > 0 ? data[0] % (size + 1) : 0;
  std::string out;
  if ((*session)->receive({data, split})) {
    (void)(*session)->send(out);
    (void)(*session)->receive({data + split, size - split});
  }
  (void)(*session)->send(out);
  return 0;
}
